"""The edge's MP4 index memo: one build per object version however many ask at once, the
parse off the event loop, refusals remembered, memory bounded."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Generator
from pathlib import Path

import pytest

from flv_media import Synthetic, synthetic
from media_matrix import media
from vodedge.edge.cache_body import Body
from vodedge.edge.cache_index import ObjectMeta
from vodedge.edge.driver import run_async
from vodedge.edge.indexes import OFFLOAD_BYTES, FlvIndexMemo, IndexMemo
from vodedge.media.errors import MalformedMedia, MediaError
from vodedge.media.flv.index import FlvIndex
from vodedge.media.flv.plan import flv_clip_plan
from vodedge.media.mp4.index import Mp4Index, TrackIndex, read_index
from vodedge.media.mp4.timeline import ChunkedBytes
from vodedge.media.reading import ReadRequest, run_bytes


class Source:
    """A file's bytes behind an async read_at that counts the reads of the whole moov."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.moov_reads = 0

    async def read_at(self, offset: int, length: int) -> bytes:
        await asyncio.sleep(0)  # a real read yields to the loop
        found = self.data[offset : offset + length]
        if length > 16 and found[4:8] == b"moov":
            self.moov_reads += 1
        return found


def test_concurrent_asks_share_one_build() -> None:
    """Eight requests for clips of one object version read and parse its moov once."""
    data = media("mp4_long_30min").read_bytes()
    source = Source(data)
    memo = IndexMemo()

    async def main() -> None:
        indexes = await asyncio.gather(
            *(memo.get("k", "v1", len(data), source.read_at, 64 << 20, keep=True) for _ in range(8))
        )
        assert all(index is indexes[0] for index in indexes)
        again = await memo.get("k", "v1", len(data), source.read_at, 64 << 20, keep=True)
        assert again is indexes[0]
        other = await memo.get("k", "v2", len(data), source.read_at, 64 << 20, keep=True)
        assert other is not indexes[0]

    asyncio.run(main())
    assert source.moov_reads == 2  # v1 once, v2 once
    assert len(memo) == 2


def test_a_refusal_is_remembered_and_raised_afresh() -> None:
    """A broken moov is read once; each ask gets its own exception."""
    data = bytearray(media("mp4_h264_aac").read_bytes())
    at = data.index(b"mvhd")
    data[at : at + 4] = b"xxxx"  # a moov without mvhd
    source = Source(bytes(data))
    memo = IndexMemo()
    raised: list[MediaError] = []

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(MalformedMedia, match="no mvhd") as caught:
                await memo.get("k", "v", len(data), source.read_at, 64 << 20, keep=True)
            raised.append(caught.value)

    asyncio.run(main())
    assert source.moov_reads == 1
    assert len({id(e) for e in raised}) == 3


def test_memory_stays_within_the_budget() -> None:
    """Past the budget the least recently used indexes go; one over it is not kept."""
    data = media("mp4_h264_bframes_aac").read_bytes()
    source = Source(data)

    async def sizes(memo: IndexMemo, versions: int) -> None:
        for version in range(versions):
            await memo.get("k", str(version), len(data), source.read_at, 64 << 20, keep=True)

    probe = IndexMemo()
    asyncio.run(sizes(probe, 1))
    one = probe.size
    memo = IndexMemo(max_bytes=3 * one)
    asyncio.run(sizes(memo, 10))
    assert len(memo) == 3 and memo.size <= 3 * one
    tiny = IndexMemo(max_bytes=one - 1)
    asyncio.run(sizes(tiny, 2))
    assert len(tiny) == 0


def test_not_kept_while_the_object_is_incomplete() -> None:
    """An index of an object still filling is built for the request and not remembered."""
    data = media("mp4_h264_aac").read_bytes()
    source = Source(data)
    memo = IndexMemo()
    asyncio.run(memo.get("k", "v", len(data), source.read_at, 64 << 20, keep=False))
    assert len(memo) == 0


def _parser(log: list[str]) -> Generator[ReadRequest, bytes, int]:
    small = yield ReadRequest(0, 16)
    log.append(f"small {threading.current_thread() is threading.main_thread()}")
    big = yield ReadRequest(len(small), 1 << 20)
    log.append(f"big {threading.current_thread() is threading.main_thread()}")
    if not big:
        raise MalformedMedia("empty")
    return len(big)


def test_large_answers_are_parsed_in_a_worker_thread() -> None:
    """The parse that a moov-sized answer sets off runs off the loop's thread; its result
    and its errors come back as if it had not."""

    async def read_at(offset: int, length: int) -> bytes:
        return b"x" * length

    async def empty(offset: int, length: int) -> bytes:
        return b"" if length > 16 else b"x" * length

    log: list[str] = []
    assert asyncio.run(run_async(_parser(log), read_at, offload=OFFLOAD_BYTES)) == 1 << 20
    assert log == ["small True", "big False"]
    log.clear()
    assert asyncio.run(run_async(_parser(log), read_at)) == 1 << 20
    assert log == ["small True", "big True"]
    with pytest.raises(MalformedMedia):
        asyncio.run(run_async(_parser([]), empty, offload=1))


def test_flv_index_built_once_and_plans_as_the_scan() -> None:
    """Eight seeks of one FLV version scan its tags once (the answers, over
    `OFFLOAD_BYTES`, scanned in worker threads), and each start's plan from the index is
    the scanning planner's."""
    data = _long_flv()
    assert len(data) >= OFFLOAD_BYTES
    reads: list[int] = []

    async def read_at(offset: int, length: int) -> bytes:
        await asyncio.sleep(0)
        if offset == 0:
            reads.append(length)  # every scan starts with the file's head
        return data[offset : offset + length]

    memo = FlvIndexMemo()

    async def main() -> list[FlvIndex | None]:
        return await asyncio.gather(
            *(memo.get("k", "v1", len(data), read_at, keep=True) for _ in range(8))
        )

    indexes = asyncio.run(main())
    assert len(reads) == 1 and len(memo) == 1
    index = indexes[0]
    assert index is not None and all(other is index for other in indexes)
    for start in (0.0, 3.3, 17.0, 59.0):
        for audio_only in (False, True):
            expected = run_bytes(flv_clip_plan(len(data), start, None, True, audio_only), data)
            assert index.clip_plan(start, None, True, audio_only) == expected


def _long_flv() -> bytes:
    """A one-minute generated FLV."""
    return synthetic(Synthetic(seconds=60.0, fps=25, gop=50, audio_ms=23))


def test_flv_peek_builds_nothing() -> None:
    """`peek` (a sparse object's clip, which a scan answers from its head) answers only
    from an index already built."""
    data = _long_flv()
    reads: list[int] = []

    async def read_at(offset: int, length: int) -> bytes:
        reads.append(offset)
        return data[offset : offset + length]

    memo = FlvIndexMemo()
    assert memo.peek("k", "v") is None and not reads
    built = asyncio.run(memo.get("k", "v", len(data), read_at, keep=True))
    assert built is not None and memo.peek("k", "v") is built
    assert memo.peek("k", "other") is None


def _body(path: Path) -> Body:
    """A reader's handle on a complete cached object: its own descriptor, as each
    request opens one."""
    meta = ObjectMeta("k", path.stat().st_size, None, None, None, 0.0, 1e12)
    return Body(meta, os.open(path, os.O_RDONLY), None, path)


def test_a_build_outlives_the_request_that_started_it(tmp_path: Path) -> None:
    """The shared build reads through the body of the request that started it; that
    request ends at once (its client gone: cancelled, its body closed), so the build's
    next read fails on the closed descriptor. The other request, waiting on the same
    build, builds again through its own body and gets the index, whose clips are the
    media layer's; a second failure of its own would be its error."""
    data = media("mp4_long_30min").read_bytes()
    path = tmp_path / "object.mp4"
    path.write_bytes(data)
    expected = run_bytes(read_index(len(data)), data)
    memo = IndexMemo()
    first_read = asyncio.Event()

    async def ask(body: Body, leaves: bool) -> Mp4Index:
        async def read_at(offset: int, length: int) -> bytes:
            await asyncio.sleep(0)  # a real read yields to the loop
            found = await body.read_at(offset, length)
            if leaves:
                first_read.set()
            return found

        try:
            return await memo.get("k", "v", len(data), read_at, 64 << 20, keep=True)
        finally:
            body.close()  # as the request's handler does when it ends

    async def main() -> None:
        leaver = asyncio.create_task(ask(_body(path), True))
        await first_read.wait()  # the build started, through the leaver's body
        stayer = asyncio.create_task(ask(_body(path), False))
        await asyncio.sleep(0)
        leaver.cancel()
        index = await stayer
        for start, end, audio_only in (
            (0.0, 10.0, False),
            (917.3, 927.3, False),
            (5.5, None, True),
        ):
            clip = index.clip(start, end, audio_only=audio_only)
            assert clip == expected.clip(start, end, audio_only=audio_only)
        assert len(memo) == 1
        with pytest.raises(asyncio.CancelledError):
            await leaver

    asyncio.run(main())

    # Without another asker, the failed build is the error of no one but is not kept.
    memo = IndexMemo()

    async def alone() -> None:
        body = _body(path)
        body.close()
        with pytest.raises(OSError):
            await memo.get("k", "v", len(data), body.read_at, 64 << 20, keep=True)

    asyncio.run(alone())
    assert len(memo) == 0


def test_an_index_is_finished_from_its_second_ask() -> None:
    """The first ask builds the index and leaves it unfinished (its first clip does not
    wait for the table of the bytes before each sample, nor share the interpreter with
    its making); the second has a worker thread finish it, and clips stay the same."""
    data = media("mp4_long_30min").read_bytes()
    source = Source(data)
    memo = IndexMemo()

    def tables(index: Mp4Index) -> list[bool]:
        tracks = [t for t in index.tracks.values() if isinstance(t, TrackIndex)]
        found = [t.prepared.prefix_view for t in tracks if t.prepared is not None]
        return [isinstance(v, ChunkedBytes) and v.table is not None for v in found]

    async def main() -> None:
        index = await memo.get("k", "v", len(data), source.read_at, 64 << 20, keep=True)
        before = index.clip(917.3, 927.3)
        await asyncio.sleep(0.05)
        assert not index.finishing and not any(tables(index))
        again = await memo.get("k", "v", len(data), source.read_at, 64 << 20, keep=True)
        assert again is index and index.finishing
        for _ in range(200):
            if all(tables(index)):
                break
            await asyncio.sleep(0.01)
        assert tables(index) and all(tables(index))
        # The memo weighs what the finished index holds, not what it held when built
        # (the finish's callbacks run on the loop once its thread is done).
        for _ in range(200):
            if memo.size != built:
                break
            await asyncio.sleep(0.01)
        assert memo.size == index.nbytes > built
        assert index.clip(917.3, 927.3) == before

    built = 0

    def weighed(index: Mp4Index) -> int:
        nonlocal built
        built = built or index.nbytes
        return index.nbytes

    memo.weight = weighed  # type: ignore[method-assign]
    asyncio.run(main())
