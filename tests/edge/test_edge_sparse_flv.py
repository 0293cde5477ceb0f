"""Cold FLV seeks fetched as ranges (the `range` function on), against the ranged origin
that logs every byte range it serves: the head and the tags from the seek's keyframe on,
exactly the ranges the reads need, every body the whole file's answer byte for byte."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edge_config import CUSTOM_SEEK, SEEK, SPLIT, Origins, domain, domains
from edge_harness import Reply, Vodedge, running, union, wait_until
from edge_media import generated

from origins.ranged_origin import RangedOrigin
from vodedge.media.flv.index import FlvIndex, read_flv_index
from vodedge.media.flv.partial import partial_plan, read_head
from vodedge.media.flv.seek import parse_seek
from vodedge.media.reading import run, run_bytes

pytestmark = pytest.mark.xdist_group("edge_sparse_flv")

BYTES = "rflv.test"  # FLV seeks by byte offset (start/end)
TIMES = "rflv-time.test"  # by time (fs/fe)
HEAD = 64 << 10  # edge.app.HEAD: a transform's first request
READ_AHEAD = 64 << 10  # edge.cache_sparse.READ_AHEAD
# Six seconds of noisy 320x240 (a few MB), a keyframe a second, with and without
# ffmpeg's keyframes index in onMetaData.
_ARGS = (
    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=6,noise=alls=30:allf=t",
    "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=6",
    "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "14",
    "-g", "25", "-c:a", "aac", "-b:a", "64k",
)  # fmt: skip
KEYFRAMES = (*_ARGS, "-flvflags", "add_keyframe_index", "-f", "flv")
PLAIN = (*_ARGS, "-f", "flv")


@pytest.fixture(scope="module")
def ranged(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangedOrigin]:
    """The ranged origin, serving the directory nginx serves."""
    with RangedOrigin(origins.media.root, tmp_path_factory.mktemp("ranged-flv")) as server:
        yield server


@pytest.fixture(scope="module")
def edge(
    origins: Origins, ranged: RangedOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vodedge]:
    """One worker, range on (the default)."""
    extra = domain(BYTES, ranged.url, SPLIT, SEEK) + domain(TIMES, ranged.url, SPLIT, CUSTOM_SEEK)
    work = tmp_path_factory.mktemp("vodedge-sparse-flv")
    with running(Vodedge(work, domains(origins, extra=extra), origin_read_timeout=5)) as server:
        yield server


def _source(kind: tuple[str, ...], name: str) -> bytes:
    return generated(name, kind, "flv").read_bytes()


def _publish(origins: Origins, name: str, data: bytes) -> str:
    return origins.media.write(f"sparse-flv/{name}", data)


def _whole(data: bytes, seek: dict[str, Any], audio_only: bool = False) -> bytes:
    """The answer from the whole file's tag index."""
    index = run_bytes(read_flv_index(len(data)), data)
    assert isinstance(index, FlvIndex)
    plan = index.plan(audio_only, parse_seek(**seek))
    assert plan is not None
    return plan.render(data)


def _keyframes(data: bytes) -> list[tuple[float, int]]:
    head = run_bytes(read_head(len(data)), data)
    assert head is not None, "no keyframes index"
    return [(time, int(position)) for time, position in head.pairs]


def _present_end(held: list[tuple[int, int]], offset: int) -> int:
    for start, end in held:
        if start <= offset < end:
            return end
    return offset


def _fetched_for(
    data: bytes, seek: dict[str, Any], prefetch: tuple[int, int] | None
) -> list[tuple[int, int]]:
    """What the sparse cache fetches for the partial plan's reads, in the edge's order:
    the first 64 KiB, the prefetch (if any), then for each read its absent bytes, from
    the first absent one to at least 64 KiB past it (edge.cache_body.read_at); and the
    plan's spans."""
    size = len(data)
    held = [(0, min(HEAD, size))]
    if prefetch is not None:
        held = union([*held, prefetch])

    def read(offset: int, length: int) -> bytes:
        end = min(offset + length, size)
        gap = _present_end(held, offset)
        if gap < end:  # what of the window is absent: the read, 64 KiB past its gap
            held[:] = union([*held, (offset, min(max(end, gap + READ_AHEAD), size))])
        return data[offset:end]

    found = run(partial_plan(size, parse_seek(**seek), False), read)
    assert found is not None
    # Then the plan's spans that are still absent (a scan skips what it need not read:
    # the data of a tag past its block), fetched as the body is sent.
    return union([*held, *((span.offset, span.end) for span in found[0].spans())])


def _extents(edge: Vodedge, host: str, path: str) -> list[tuple[int, int]]:
    uri = f"file:{edge.store / 'index.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        row = db.execute("SELECT file FROM objects WHERE key = ?", (host + path,)).fetchone()
        assert row is not None, f"{path} is not in the index"
        rows = db.execute(
            "SELECT start, end FROM extents WHERE file = ? ORDER BY start", (row[0],)
        ).fetchall()
    return [(int(a), int(b)) for a, b in rows]


def _each_byte_once(ranged: RangedOrigin, path: str) -> list[tuple[int, int]]:
    """The ranges the origin sent (every request ranged), checked to overlap nowhere."""
    served = [s for s in ranged.log(path) if s.method == "GET"]
    assert all(s.range and s.status == 206 for s in served), served
    fetched = ranged.ranges(path)
    assert sum(e - s for s, e in fetched) == sum(e - s for s, e in union(fetched)), fetched
    return union(fetched)


def test_a_cold_byte_offset_seek_fetches_the_head_and_the_bytes_from_the_offset(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """`?start=<a keyframe's file position>`: the head (64 KiB), the tag before the
    keyframe (its PreviousTagSize names it: the keyframe is checked to start a tag), and
    everything from the keyframe on, streamed as it arrives (chunked, as any FLV on a
    miss); the body is the whole file's answer."""
    data = _source(KEYFRAMES, "flv-keyframes")
    path = _publish(origins, "bytes.flv", data)
    keyframes = _keyframes(data)
    _, start = keyframes[len(keyframes) // 2]
    reply = edge.get(BYTES, f"{path}?start={start}", timeout=30)
    want = _whole(data, {"start": start})
    assert reply.status == 200 and reply.body == want
    assert reply.header("Transfer-Encoding") == "chunked"
    previous = int.from_bytes(data[start - 4 : start], "big")
    expected = _fetched_for(data, {"start": start}, (start - 4, len(data)))
    assert expected == union([(0, HEAD), (start - 4 - previous, len(data))])
    assert _each_byte_once(ranged, path) == expected
    wait_until(lambda: _extents(edge, BYTES, path) == expected, 5, "the extents")
    # A byte end, and audio only: from what is held, nothing fetched again.
    seen = len(ranged.log(path))
    for query, seek, audio in (
        (f"start={start}&end={start + 200_000}", {"start": start, "end": start + 200_000}, 0),
        (f"ali_audio_only=1&start={start}", {"start": start}, 1),
    ):
        again = edge.get(BYTES, f"{path}?{query}", timeout=30)
        assert again.status == 200 and again.body == _whole(data, seek, bool(audio)), query
    assert len(ranged.log(path)) == seen


def test_a_cold_byte_offset_seek_with_a_range_is_planned_exactly(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """A Range needs the answer's size: planned from the head and the tags from the
    keyframe on (not streamed), the same ranges fetched."""
    data = _source(KEYFRAMES, "flv-keyframes")
    path = _publish(origins, "bytes-ranged.flv", data)
    _, start = _keyframes(data)[2]
    want = _whole(data, {"start": start})
    reply = edge.get(BYTES, f"{path}?start={start}", {"Range": "bytes=1000-"}, timeout=30)
    assert reply.status == 206 and reply.body == want[1000:]
    assert reply.header("Content-Range") == f"bytes 1000-{len(want) - 1}/{len(want)}"
    previous = int.from_bytes(data[start - 4 : start], "big")
    assert _each_byte_once(ranged, path) == [(0, HEAD), (start - 4 - previous, len(data))]


def test_a_cold_time_seek_reads_from_the_keyframe_the_index_names(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """`?fs=T&fe=T+1` on a file with a keyframes index: the head, then from the last
    indexed keyframe at or before T, as far as the clip's tags reach (read in blocks);
    its onMetaData carries the clip's exact layout, as the whole file's answer does."""
    data = _source(KEYFRAMES, "flv-keyframes")
    path = _publish(origins, "times.flv", data)
    seek = {"start": 3.3, "end": 4.3, "by_time": True}
    reply = edge.get(TIMES, f"{path}?fs=3.3&fe=4.3", timeout=30)
    want = _whole(data, seek)
    assert reply.status == 200 and reply.body == want
    start = max(p for t, p in _keyframes(data) if t <= 3.3)
    expected = _fetched_for(data, seek, None)
    previous = int.from_bytes(data[start - 4 : start], "big")
    assert expected[0] == (0, HEAD) and expected[1][0] == start - 4 - previous
    assert expected[-1][1] < len(data)  # not to the end: the clip's tags, then the block
    assert _each_byte_once(ranged, path) == expected
    open_ended = edge.get(TIMES, f"{path}?fs=1.5", timeout=30)
    assert open_ended.body == _whole(data, {"start": 1.5, "by_time": True})


def test_without_a_keyframes_index_a_cold_seek_reads_the_whole_file(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """No index to place the seek: every tag is walked, so the whole file is fetched (as
    ranges, each byte once); the answers are the whole file's."""
    data = _source(PLAIN, "flv-plain")
    path = _publish(origins, "plain.flv", data)
    offset = len(data) // 2
    reply = edge.get(BYTES, f"{path}?start={offset}", timeout=30)
    assert reply.status == 200 and reply.body == _whole(data, {"start": offset})
    assert _each_byte_once(ranged, path) == [(0, len(data))]
    other = _publish(origins, "plain-time.flv", data)
    timed = edge.get(TIMES, f"{other}?fs=2.5", timeout=30)
    assert timed.status == 200 and timed.body == _whole(data, {"start": 2.5, "by_time": True})
    assert _each_byte_once(ranged, other) == [(0, len(data))]


def _clean(reply: Reply, want: bytes) -> None:
    """The answer, a prefix of it on a connection cut short, or a clean error."""
    if reply.status == 200:
        assert want.startswith(reply.body) and (reply.body == want or not reply.complete)
    else:
        assert 500 <= reply.status < 600 and reply.status != 500, reply
        assert reply.header("X-Vodedge-Error"), reply


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "reset", "after": 30_000},
        {"kind": "short", "after": 30_000},
        {"kind": "content_range", "start_delta": 1000},
        {"kind": "change", "requests": "ranged", "skip": 1},
    ],
    ids=["reset", "short", "content-range", "change"],
)
def test_a_fault_mid_range_never_gives_a_wrong_byte(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin, tmp_path: Path, fault: dict[str, Any]
) -> None:
    """The origin misbehaves on the ranges after the head: each answer is the whole
    file's answer, a prefix of it cut short, or a clean error; asked again, the answer."""
    data = _source(KEYFRAMES, "flv-keyframes")
    name = f"fault-{fault['kind']}.flv"
    path = _publish(origins, name, data)
    if fault["kind"] == "change":
        changed = bytearray(data)
        changed[-100:] = bytes(100)  # another version: only its last tag differs
        origins.media.write(f"sparse-flv/{name}.v2", bytes(changed))
        fault = {**fault, "source": f"sparse-flv/{name}.v2", "count": 1}
        data_after = bytes(changed)
    else:
        fault = {"skip": 1, "count": 1, **fault}
        data_after = data
    ranged.faults(path, fault)
    _, start = _keyframes(data)[3]
    first = edge.get(BYTES, f"{path}?start={start}", timeout=30)
    after = _whole(data_after, {"start": start})
    if not (first.status == 200 and first.complete and first.body == after):
        _clean(first, _whole(data, {"start": start}))
    again = edge.get(BYTES, f"{path}?start={start}", timeout=30)
    assert again.status == 200 and again.body == _whole(data_after, {"start": start})
