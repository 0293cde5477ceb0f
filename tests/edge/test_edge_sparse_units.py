"""The sparse cache's pure parts: extent arithmetic and the multipart/byteranges reader."""

from __future__ import annotations

import itertools
import random

import pytest

from vodedge.edge.byteranges import BadByteRanges, ByteRanges, boundary_of
from vodedge.edge.cache_sparse import MAX_PARTS, SEGMENT, batches
from vodedge.edge.extents import coalesced, merge_in, merged, missing, run_end, split


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
