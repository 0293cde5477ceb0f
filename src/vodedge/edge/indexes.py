"""Media indexes per object version (MP4 `moov`s, FLV tags): built once off the event
loop, shared, bounded."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from vodedge.edge.driver import run_async
from vodedge.media.errors import MediaError
from vodedge.media.flv.index import FlvIndex, read_flv_index
from vodedge.media.mp4.index import Mp4Index, read_index

# Reads of at least this many bytes (a moov) are handed to the parser in a worker
# thread, so the parse they trigger runs off the event loop.
OFFLOAD_BYTES = 64 << 10
# What a remembered refusal weighs against the budget.
ERROR_WEIGHT = 1 << 10

ReadAt = Callable[[int, int], Awaitable[bytes]]
_FINISHING: set[asyncio.Future[None]] = set()
Key = tuple[str, str]  # cache key, object version
T = TypeVar("T")


class VersionMemo(Generic[T]):
    """Indexes of recently asked objects, least recently used first out past
    `max_bytes`; one build per object version however many requests ask at once."""

    def __init__(self, max_bytes: int = 256 << 20) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, tuple[T | MediaError, int]] = OrderedDict()
        self._bytes = 0
        self._building: dict[Key, asyncio.Task[T]] = {}

    @property
    def size(self) -> int:
        """Bytes the remembered indexes hold."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def obtain(
        self, key: str, version: str, build: Callable[[], Awaitable[T]], *, keep: bool
    ) -> T:
        """The index of the object version, built (or joined while building) when absent;
        `keep` remembers it (only for complete objects, whose version is final)."""
        if not keep:
            found = self._found((key, version))
            return await build() if found is None else found[0]
        retried = False
        while True:
            found = self._found((key, version))
            if found is not None:
                return found[0]
            task = self._building.get((key, version))
            started = task is None
            if task is None:
                task = asyncio.create_task(self._build((key, version), build))
                # Retrieved even when every waiter went away, so it is never logged as lost.
                task.add_done_callback(lambda done: done.cancelled() or done.exception())
                self._building[(key, version)] = task
            try:
                # Shielded: a client going away does not cancel a build others wait for.
                return await asyncio.shield(task)
            except MediaError:
                raise  # the object's own fault: every asker's answer
            except Exception:
                # A build reads through the request that started it: when that request
                # ended first (its body closed) or its reads failed, the object may be
                # fine. The others build again, once, through their own reads.
                if started or retried:
                    raise
                retried = True

    def _found(self, at: Key) -> tuple[T] | None:
        """The remembered index of `at` (as a 1-tuple: it may be None), or None; a
        remembered refusal is raised afresh."""
        found = self._entries.get(at)
        if found is None:
            return None
        self._entries.move_to_end(at)
        entry = found[0]
        if isinstance(entry, MediaError):
            raise type(entry)(entry.message)
        return (entry,)

    async def _build(self, at: Key, build: Callable[[], Awaitable[T]]) -> T:
        try:
            index = await build()
        except MediaError as exc:
            self._put(at, exc, ERROR_WEIGHT)  # a broken moov is not re-read per request
            raise
        finally:
            del self._building[at]
        self._put(at, index, self.weight(index))
        return index

    def weight(self, index: T) -> int:
        """What `index` weighs against the budget."""
        raise NotImplementedError

    def reweigh(self, key: str, version: str, entry: T) -> None:
        """Weigh the object version's index again if it is still `entry` (it grew): within
        the budget it stays, as the most recently used, else it goes."""
        at = (key, version)
        found = self._entries.get(at)
        if found is None or found[0] is not entry:
            return
        del self._entries[at]
        self._bytes -= found[1]
        self._put(at, entry, self.weight(entry))

    def _put(self, at: Key, entry: T | MediaError, weight: int) -> None:
        if weight > self.max_bytes:
            return
        old = self._entries.pop(at, None)
        if old is not None:
            self._bytes -= old[1]
        self._entries[at] = (entry, weight)
        self._bytes += weight
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._entries.popitem(last=False)
            self._bytes -= dropped


class IndexMemo(VersionMemo[Mp4Index]):
    """The `Mp4Index` of recently clipped objects."""

    async def get(
        self, key: str, version: str, size: int, read_at: ReadAt, max_moov: int, *, keep: bool
    ) -> Mp4Index:
        """The object version's index (see `VersionMemo.obtain`); one asked again is
        finished (see `Mp4Index.finish`) in a worker thread, beside this clip: the
        first clips, whose build left that out, do not wait for it or share the
        interpreter with it, and an object asked once is never finished."""
        kept = (key, version) in self._entries
        index = await self.obtain(
            key, version, lambda: build_index(size, read_at, max_moov), keep=keep
        )
        if kept and not index.finishing:
            index.finishing = True
            finishing = asyncio.ensure_future(asyncio.to_thread(index.finish))
            _FINISHING.add(finishing)  # held until done: a task is only weakly referenced
            finishing.add_done_callback(_finished)
            # The finished tables (and the compiled planner's packing) weigh too.
            finishing.add_done_callback(lambda _: self.reweigh(key, version, index))
        return index

    def peek(self, key: str, version: str) -> Mp4Index | None:
        """The object version's index if it is remembered and finished or finishing (asked
        before through `get`, which starts the finish): nothing to build or wait for."""
        found = self._entries.get((key, version))
        if found is None or isinstance(found[0], MediaError) or not found[0].finishing:
            return None
        self._entries.move_to_end((key, version))
        return found[0]

    def weight(self, index: Mp4Index) -> int:
        """The index's arrays and moov."""
        return index.nbytes


class FlvIndexMemo(VersionMemo[FlvIndex | None]):
    """The `FlvIndex` of recently seeked FLVs; None: one the index cannot answer for
    (metadata over the limit), planned by a scan per request."""

    async def get(
        self, key: str, version: str, size: int, read_at: ReadAt, *, keep: bool
    ) -> FlvIndex | None:
        """The object version's index (see `VersionMemo.obtain`)."""
        return await self.obtain(key, version, lambda: build_flv_index(size, read_at), keep=keep)

    def peek(self, key: str, version: str) -> FlvIndex | None:
        """The object version's index if it is remembered (built on no one's behalf)."""
        found = self._entries.get((key, version))
        if found is None or isinstance(found[0], MediaError):
            return None
        self._entries.move_to_end((key, version))
        return found[0]

    def weight(self, index: FlvIndex | None) -> int:
        """The index's columns and metadata."""
        return ERROR_WEIGHT if index is None else index.nbytes


def _finished(done: asyncio.Future[None]) -> None:
    _FINISHING.discard(done)
    if not done.cancelled():
        done.exception()  # retrieved: a failure only leaves clips on the slower reads


async def build_flv_index(size: int, read_at: ReadAt) -> FlvIndex | None:
    """Scan an FLV's tags once into an index, the scan of each block in a worker thread."""
    return await run_async(read_flv_index(size), read_at, offload=OFFLOAD_BYTES)


async def build_index(size: int, read_at: ReadAt, max_moov: int) -> Mp4Index:
    """Read and index an MP4's moov, the parse in a worker thread."""
    return await run_async(read_index(size, max_moov=max_moov), read_at, offload=OFFLOAD_BYTES)
