"""The sparse cache's pure parts: extent arithmetic and the multipart/byteranges reader."""

from __future__ import annotations

import asyncio
import fcntl
import itertools
import os
import random
import time
from pathlib import Path
from typing import cast

import pytest

from vodedge.edge.byteranges import BadByteRanges, ByteRanges, OtherTotal, boundary_of
from vodedge.edge.cache_body import Body
from vodedge.edge.cache_index import CacheIndex, Entry, ObjectMeta
from vodedge.edge.cache_sparse import (
    AHEAD,
    GAP,
    MAX_PARTS,
    SEGMENT,
    Pump,
    RangeSource,
    SparseObject,
    SparseObjects,
    batches,
)
from vodedge.edge.cache_store import KEEP_ENDS, TRIM_ALIGN, Store, readers_lock, trimmed
from vodedge.edge.extents import coalesced, merge_in, merged, missing, run_end, split
from vodedge.edge.renditions import Renditions
from vodedge.edge.source import IGNORES_RANGES, NOTE_SECONDS, SINGLE_RANGES_ONLY, OriginNotes
from vodedge.media.plan import Plan, Span


def test_extent_arithmetic_agrees_with_a_set_of_bytes() -> None:
    """merged, merge_in, missing and run_end against the plain set of byte offsets."""
    rng = random.Random(13)
    for _ in range(300):
        pieces = [(a, a + rng.randrange(0, 40)) for a in rng.sample(range(400), 12)]
        held = {b for a, e in pieces for b in range(a, e)}
        extents = merged(pieces)
        assert {b for a, e in extents for b in range(a, e)} == held
        assert all(e1 < s2 for (_, e1), (s2, _) in itertools.pairwise(extents))
        more = sorted((a, a + rng.randrange(1, 30)) for a in rng.sample(range(400), 5))
        assert merge_in(extents, more) == merged([*extents, *more])
        start, end = sorted(rng.sample(range(450), 2))
        gaps = missing(extents, start, end)
        assert {b for a, e in gaps for b in range(a, e)} == set(range(start, end)) - held
        offset = rng.randrange(450)
        stop = run_end(extents, offset)
        if offset in held:
            assert set(range(offset, stop)) <= held and stop not in held
        else:
            assert stop == offset


def test_coalescing_joins_only_small_gaps_and_batches_bound_requests() -> None:
    assert coalesced([(0, 10), (15, 20), (600, 700)], 512) == [(0, 20), (600, 700)]
    assert coalesced([(0, 10), (600, 700)], 512) == [(0, 10), (600, 700)]
    assert split([(0, 25)], 10) == [(0, 10), (10, 20), (20, 25)]
    many = [(i * 1000, i * 1000 + 10) for i in range(MAX_PARTS * 2 + 1)]
    assert [len(b) for b in batches(many)] == [MAX_PARTS, MAX_PARTS, 1]
    big = [(0, SEGMENT), (SEGMENT + 1000, SEGMENT + 2000)]
    assert batches(big) == [[(0, SEGMENT)], [(SEGMENT + 1000, SEGMENT + 2000)]]


def _multipart(parts: list[tuple[int, bytes]], total: int, boundary: str = "B0001") -> bytes:
    body = b""
    for offset, data in parts:
        body += (
            f"\r\n--{boundary}\r\nContent-Type: video/mp4\r\n"
            f"Content-Range: bytes {offset}-{offset + len(data) - 1}/{total}\r\n\r\n"
        ).encode() + data
    return body + f"\r\n--{boundary}--\r\n".encode()


@pytest.mark.parametrize("step", [1, 7, 64, 100_000])
def test_multipart_parts_come_out_at_their_offsets_whatever_the_chunking(step: int) -> None:
    data = random.Random(1).randbytes(5000)
    asked = [(10, 20), (100, 400), (4990, 5000)]
    body = _multipart([(a, data[a:b]) for a, b in asked], len(data))
    reader = ByteRanges("B0001", len(data))
    got = bytearray(len(data))
    for at in range(0, len(body), step):
        for offset, piece in reader.feed(body[at : at + step]):
            got[offset : offset + len(piece)] = piece
    reader.close()
    assert reader.parts == asked
    assert all(got[a:b] == data[a:b] for a, b in asked)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\r\n--B0001\r\nContent-Type: x\r\n\r\nabc", "without Content-Range"),
        (b"\r\n--B0001\r\nContent-Range: bytes 0-9/99\r\n\r\n0123456789", "of bytes"),
        (b"garbage\r\n--B0001\r\nContent-Range: bytes 0-0/100\r\n\r\nx", "between parts"),
    ],
)
def test_a_bad_multipart_body_is_refused(body: bytes, why: str) -> None:
    with pytest.raises(BadByteRanges, match=why):
        ByteRanges("B0001", 100).feed(body)


def test_a_part_of_another_total_is_another_version() -> None:
    """A part naming another length than the object's is refused as OtherTotal (the
    object changed: its extents go), not as a malformed body (which is retried)."""
    body = b"\r\n--B0001\r\nContent-Range: bytes 0-9/101\r\n\r\n0123456789"
    with pytest.raises(OtherTotal, match="not /100"):
        ByteRanges("B0001", 100).feed(body)


def test_a_multipart_body_cut_inside_a_part_is_refused() -> None:
    body = _multipart([(0, b"x" * 50)], 100)[:-30]
    reader = ByteRanges("B0001", 100)
    reader.feed(body)
    with pytest.raises(BadByteRanges):
        reader.close()


def test_boundary_of_content_types() -> None:
    assert boundary_of("multipart/byteranges; boundary=00000000000000000001") == (
        "00000000000000000001"
    )
    assert boundary_of('multipart/byteranges; boundary="a b"') == "a b"
    assert boundary_of("video/mp4") is None


# --- partial eviction (cache_store._trim), on the real filesystem ---------------------------

MIB = 1 << 20


def test_trimmed_takes_from_the_end_and_keeps_the_ends() -> None:
    """The coldest extents are the last ones held; KEEP_ENDS at each end never goes."""
    size = 64 * MIB
    extents = [(0, 2 * MIB), (10 * MIB, 30 * MIB), (40 * MIB, size)]
    assert trimmed(extents, size, 3 * MIB) == [(57 * MIB, size - KEEP_ENDS)]
    assert trimmed(extents, size, 25 * MIB) == [(25 * MIB, 30 * MIB), (40 * MIB, size - KEEP_ENDS)]
    assert trimmed(extents, size, 40 * MIB) == [
        (10 * MIB, 30 * MIB),
        (40 * MIB, size - KEEP_ENDS),
    ]
    assert trimmed([(0, KEEP_ENDS), (size - KEEP_ENDS, size)], size, MIB) == []
    # Cut at TRIM_ALIGN: at least what is needed, never less.
    (cut,) = trimmed([(10 * MIB, 30 * MIB)], size, 1000)
    assert cut == (29 * MIB, 30 * MIB) and TRIM_ALIGN == MIB


def _sparse_object(store: Store, key: str, size: int, held: list[tuple[int, int]]) -> bytes:
    """A sparse object of `size` random bytes with `held` written and recorded."""
    data = random.Random(key).randbytes(size)
    file = store.root / "objects" / "aa" / store.digest(key)
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "wb") as out:
        out.truncate(size)
        for start, end in held:
            out.seek(start)
            out.write(data[start:end])
    meta = ObjectMeta(key, size, '"v1"', None, None, time.time(), time.time() + 3600)
    entry = Entry(meta, file, 0)
    store.index.put(entry, 0)
    store.index.add_extents(entry, held, os.stat(file).st_blocks * 512)
    return data


def _holds(store: Store, key: str, data: bytes) -> list[tuple[int, int]]:
    """The object's extents, each checked to hold `data`'s bytes."""
    entry = store.index.get(key)
    assert entry is not None
    extents = store.index.extents(entry.file)
    assert entry.present == sum(e - s for s, e in extents)
    with open(entry.file, "rb") as held:
        for start, end in extents:
            held.seek(start)
            assert held.read(end - start) == data[start:end], (start, end)
    return extents


def test_eviction_trims_the_least_recently_used_sparse_object(tmp_path: Path) -> None:
    """Over the bound, the LRU sparse object loses its last extents (their blocks punched
    out), not the whole object; what the index still claims is on disk, byte for byte."""
    store = Store(tmp_path, 100 * MIB)
    size = 40 * MIB
    held = [(0, MIB), (10 * MIB, 30 * MIB), (size - MIB, size)]
    data = _sparse_object(store, "old", size, held)
    entry = store.index.get("old")
    assert entry is not None
    blocks = os.stat(entry.file).st_blocks * 512
    store.max_bytes = blocks - 5 * MIB  # 5 MiB over
    store.evict(keep="new")
    extents = _holds(store, "old", data)
    assert extents[0] == (0, MIB) and extents[-1] == (size - MIB, size)
    assert extents[1][0] == 10 * MIB and 24 * MIB <= extents[1][1] <= 25 * MIB, extents
    assert store.usage() <= store.max_bytes
    with open(entry.file, "rb") as file:  # a hole where the dropped extent was
        assert os.lseek(file.fileno(), extents[1][1], os.SEEK_HOLE) == extents[1][1]
    # Over by more than the object holds between its ends: trimmed to its ends, then gone.
    store.max_bytes = MIB
    store.evict(keep="new")
    assert store.index.get("old") is None and not entry.file.exists()


@pytest.mark.parametrize("how", ["evict", "reserve"])
def test_an_object_being_read_is_not_trimmed(tmp_path: Path, how: str) -> None:
    """A process reading a sparse object holds its READERS lock: eviction takes a newer
    object that nobody reads first; with none left, it drops the one being read whole
    (unlinking leaves the reader its bytes) rather than punching holes under it."""
    store = Store(tmp_path, 100 * MIB)
    size = 40 * MIB
    data = _sparse_object(store, "read", size, [(10 * MIB, 30 * MIB)])
    time.sleep(0.01)  # "idle" is used later than "read"
    _sparse_object(store, "idle", size, [(10 * MIB, 30 * MIB)])
    entry = store.index.get("read")
    assert entry is not None
    reader = os.open(entry.file, os.O_RDWR)  # another open file: as another process's
    try:
        assert readers_lock(reader, fcntl.F_RDLCK, wait=False)
        store.max_bytes = store.usage() - 2 * MIB
        if how == "evict":
            store.evict(keep="new")
        else:
            with open(tmp_path / "new", "wb") as new:
                assert store.reserve(new.fileno(), MIB, "new")
        assert _holds(store, "read", data) == [(10 * MIB, 30 * MIB)]
        assert store.index.extents(entry.file) == [(10 * MIB, 30 * MIB)]
        idle = store.index.get("idle")
        assert idle is None or idle.present < 20 * MIB  # trimmed or gone instead
        store.max_bytes = MIB
        store.evict(keep="new")
        assert store.index.get("read") is None and store.index.get("idle") is None
        assert os.pread(reader, 20 * MIB, 10 * MIB) == data[10 * MIB : 30 * MIB]
    finally:
        os.close(reader)


def test_origin_notes_are_shared_through_the_index_and_expire(tmp_path: Path) -> None:
    """A note written by one worker's OriginNotes is read by another's over the same
    index; one whose time is up is forgotten (the origin is asked for ranges again)."""
    first = CacheIndex(tmp_path / "index.sqlite")
    second = CacheIndex(tmp_path / "index.sqlite")
    try:
        OriginNotes(first).note("a|http://origin", IGNORES_RANGES)
        other = OriginNotes(second)
        assert other.holds("a|http://origin", IGNORES_RANGES)
        assert not other.holds("a|http://origin", SINGLE_RANGES_ONLY)
        assert not other.holds("b|http://origin", IGNORES_RANGES)
        first.note_origin("a|http://origin", IGNORES_RANGES, time.time() - 1)
        assert not OriginNotes(second).holds("a|http://origin", IGNORES_RANGES)
        assert 60 <= NOTE_SECONDS <= 3600
    finally:
        first.close()
        second.close()


def test_a_rendition_being_written_holds_its_sparse_source(tmp_path: Path) -> None:
    """The request that stores a rendition of a sparse object may end before the rendition
    is written: the object stays locked against trims until it is (else a trim could punch
    holes in bytes being copied, and the rendition would hold zeros)."""
    store = Store(tmp_path, 100 * MIB)
    size = 40 * MIB
    data = _sparse_object(store, "src", size, [(10 * MIB, 30 * MIB)])
    entry = store.index.get("src")
    assert entry is not None
    objects = SparseObjects(store)
    renditions = Renditions(store, set())
    plan = Plan([b"head", Span(10 * MIB, 20 * MIB)])

    def trimmable() -> bool:
        probe = os.open(entry.file, os.O_RDWR)
        try:
            return readers_lock(probe, fcntl.F_WRLCK, wait=False)
        finally:
            os.close(probe)

    async def run() -> None:
        sparse = objects.open(entry)
        body = Body(entry.meta, os.open(entry.file, os.O_RDONLY), None, entry.file, sparse=sparse)
        renditions.store_plan("src", "t", plan, body)
        body.close()  # the request ends before the rendition is written
        assert not trimmable()
        await asyncio.gather(*renditions.tasks)
        assert trimmable()

    asyncio.run(run())
    stored = renditions.open("src", "t")
    assert stored is not None
    assert os.pread(stored.fd, plan.size, 0) == b"head" + data[10 * MIB : 30 * MIB]
    stored.close()


class _Wants:
    """What a Pump asks a sparse object to fetch (the window is pure arithmetic)."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int]] = []

    def want(self, _source: object, ranges: list[tuple[int, int]]) -> None:
        self.asked.extend(ranges)


@pytest.mark.parametrize(("every", "length"), [(16 << 10, 650), (SEGMENT, SEGMENT)])
def test_the_pump_keeps_a_window_of_needed_bytes_ahead(every: int, length: int) -> None:
    """Ahead of the reader go up to AHEAD bytes of what it needs, however sparse (an
    audio track's chunks) or dense (a plain range) they lie in the file."""
    ranges = [(at, at + length) for at in range(0, 4000 * every, every)][:4000]
    wants = _Wants()
    pump = Pump(cast(SparseObject, wants), cast(RangeSource, None), ranges)
    pump.advance(0)
    assert wants.asked and sum(e - s for s, e in wants.asked) <= SEGMENT
    for reader in (1, *range(every, 300 * every, 7 * every)):
        pump.advance(reader)
        assert wants.asked == split(coalesced(ranges, GAP), SEGMENT)[: len(wants.asked)]
        ahead = sum(max(0, e - max(s, reader)) for s, e in wants.asked)
        # At least half the window, at most the window (and the segment it ends in).
        assert ahead >= min(AHEAD // 2, sum(e - max(s, reader) for s, e in ranges if e > reader))
        assert ahead <= AHEAD + SEGMENT
