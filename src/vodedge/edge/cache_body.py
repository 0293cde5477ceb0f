"""Readers' side of the cache: an object version's bytes, complete or still filling."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from vodedge.edge.cache_index import ObjectMeta
from vodedge.edge.origin import OriginError

if TYPE_CHECKING:
    from vodedge.edge.cache_sparse import Pump, RangeSource, SparseObject
    from vodedge.media.plan import Plan


class Progress:
    """How far a fill has got; what readers of a growing object wait on."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.meta: ObjectMeta | None = None
        self.path: Path | None = None
        self.fd = -1  # readable descriptor of the growing file; readers dup it
        self.joining = 0  # readers between finding this fill and dup-ing its descriptor
        self.task_done = False
        self.written = 0
        self.total: int | None = None
        self.done = False
        self.error: Exception | None = None
        self._changed = asyncio.Event()

    def notify(self) -> None:
        """Wake every waiter; they re-check the state."""
        self._changed.set()
        self._changed = asyncio.Event()

    def fail(self, error: Exception) -> None:
        """End the fill with an error that every reader sees."""
        if not self.done:
            self.error = error
            self.done = True
            self.notify()

    def finish(self) -> None:
        """End the fill successfully."""
        self.total = self.written
        self.done = True
        self.notify()

    async def wait_meta(self) -> ObjectMeta:
        """The object's metadata, once the origin has answered."""
        while self.meta is None:
            if self.error is not None:
                raise self.error
            if self.done:
                raise OriginError(502, "fill_failed", "the fill ended before the origin answered")
            await self._changed.wait()
        return self.meta

    async def wait_beyond(self, offset: int) -> None:
        """Return once more than `offset` bytes are on disk or the fill has ended."""
        while self.written <= offset and not self.done:
            await self._changed.wait()
        if self.error is not None:
            raise self.error

    async def wait_for(self, end: int) -> None:
        """Return once bytes `[0, end)` are on disk; raise if the fill failed first."""
        while self.written < end:
            if self.error is not None:
                raise self.error
            if self.done:
                raise OriginError(502, "origin_short", "the object is shorter than requested")
            await self._changed.wait()


class Body:
    """One reader's handle on an object version: a file descriptor and its readiness.

    The object is complete, or filling from its start (`progress`), or sparse: some
    ranges on disk, the others fetched from `source` as this reader needs them.
    """

    def __init__(
        self,
        meta: ObjectMeta,
        fd: int,
        progress: Progress | None,
        file: Path | None,
        *,
        sparse: SparseObject | None = None,
        source: RangeSource | None = None,
        data: bytes | None = None,
    ) -> None:
        self.meta = meta
        # -1 when the bytes are `data` (a small whole object kept in memory, see
        # Store.small_bytes): asked for by plain delivery only, which reads them there.
        self.fd = fd
        self.data = data
        self.progress = progress
        self.sparse = sparse
        self.source = source
        self._pump: Pump | None = None
        # A HEAD: no body will be read, so nothing is fetched to check the version.
        self.headers_only = False
        # What tells this fill of the object from any other (memoised plans and
        # renditions): the stored file's name, whose token a fill keeps from its
        # temporary file to its final place, and which revalidation leaves alone.
        self.version = "" if file is None else file.name.removesuffix(".part")

    @property
    def size(self) -> int | None:
        """The object's length, None while a fill of unknown length runs."""
        if self.progress is not None and not self.progress.done:
            return self.progress.total
        return self.meta.size if self.meta.size >= 0 else None

    @property
    def complete(self) -> bool:
        """True when every byte is on disk."""
        if self.sparse is not None:
            return self.sparse.complete
        return self.progress is None or (self.progress.done and self.progress.error is None)

    @property
    def final(self) -> bool:
        """True when this version's bytes can no longer change (complete, or sparse: the
        ranges still absent can only be this version's): plans over it may be kept."""
        return self.sparse is not None or self.complete

    @property
    def available(self) -> int:
        """How many leading bytes can be read now."""
        if self.sparse is not None:
            return self.sparse.present_end(0)
        if self.progress is None:
            return self.meta.size
        return self.progress.written

    async def ready(self, end: int) -> None:
        """Wait until bytes `[0, end)` can be read."""
        if self.sparse is not None and self.source is not None:
            await self.sparse.ensure(self.source, 0, end)
        elif self.progress is not None:
            await self.progress.wait_for(end)

    async def ready_range(self, start: int, end: int) -> None:
        """Wait until bytes `[start, end)` can be read."""
        if self.sparse is not None and self.source is not None:
            if self._pump is not None:
                self._pump.advance(start)
            await self.sparse.ensure(self.source, start, end)
        else:
            await self.ready(end)

    async def wait_beyond(self, offset: int) -> None:
        """Wait until more than `offset` bytes are readable or the object is complete."""
        if self.sparse is not None and self.source is not None:
            size = self.meta.size
            self.sparse.want(self.source, [(offset, min(offset + (8 << 20), size))])
            await self.sparse.wait_run(self.source, offset, size)
        elif self.progress is not None:
            await self.progress.wait_beyond(offset)

    def prefetch(self, ranges: Iterable[tuple[int, int]]) -> None:
        """The ranges this reader will read, in order: a sparse object fetches them ahead
        of it (coalesced, a bounded window ahead)."""
        if self.sparse is not None and self.source is not None and not self.sparse.complete:
            from vodedge.edge.cache_sparse import Pump

            self._pump = Pump(self.sparse, self.source, ranges)

    async def verify(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Before headers are sent: the first absent bytes of `ranges` (a sparse object)
        are being fetched from the version this body names (OriginError if not)."""
        sparse, source = self.sparse, self.source
        if sparse is not None and source is not None and not self.headers_only:
            await sparse.verify(source, ranges)

    def holds(self, plan: Plan) -> bool:
        """Whether every source byte of `plan` is on disk (a sparse object's extents may
        hold all of an output's spans: it can then be written out as a rendition)."""
        if self.complete:
            return True
        sparse = self.sparse
        if sparse is None:
            return False
        return all(sparse.present_end(span.offset) >= span.end for span in plan.spans())

    def ahead(self, offset: int) -> None:
        """The reader is at `offset`: start the prefetches it needs next."""
        if self._pump is not None:
            self._pump.advance(offset)

    async def readable(self, offset: int, end: int) -> int:
        """Wait until bytes at `offset` can be read; where they run to (at most `end`)."""
        if self.sparse is not None and self.source is not None:
            if self._pump is not None:
                self._pump.advance(offset)
            return await self.sparse.wait_run(self.source, offset, end)
        while not self.complete and self.available <= offset:
            await self.wait_beyond(offset)
        return end if self.complete else min(end, self.available)

    async def wait_done(self) -> int:
        """Wait for the whole object; its length."""
        if self.progress is not None:
            while not self.progress.done:
                await self.progress.wait_for(self.progress.written + 1)
            if self.progress.error is not None:
                raise self.progress.error
            return self.progress.written
        return self.meta.size

    async def read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset`, waiting for a fill to reach them."""
        size = self.size
        end = offset + length if size is None else min(offset + length, size)
        if end > offset and self.sparse is not None and self.source is not None:
            from vodedge.edge.cache_sparse import READ_AHEAD

            # A parser reads a box header, then the box: fetch a little past what is absent.
            gap = self.sparse.present_end(offset)
            if gap < end:
                self.sparse.reload()
                gap = self.sparse.present_end(offset)
            if gap < end:
                self.sparse.want(self.source, [(offset, max(end, gap + READ_AHEAD))])
                await self.sparse.ensure(self.source, offset, end)
        elif end > offset:
            await self.ready(end)
        return os.pread(self.fd, max(end - offset, 0), offset)

    def close(self) -> None:
        """Release the file descriptor (and this reader's hold on a sparse object)."""
        if self.fd >= 0:
            try:  # noqa: SIM105 (contextlib.suppress costs more, once per response)
                os.close(self.fd)
            except OSError:
                pass
        # A late read (a shared index build outliving the request that started it) fails
        # (EBADF) instead of reading whatever file reuses the descriptor's number.
        self.fd = -1
        sparse, self.sparse = self.sparse, None
        if sparse is not None:
            sparse.release()
