"""Readers' side of the cache: an object version's bytes, complete or still filling."""

from __future__ import annotations

import asyncio
import contextlib
import os
from pathlib import Path

from vodedge.edge.cache_index import ObjectMeta
from vodedge.edge.origin import OriginError


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
    """One reader's handle on an object version: a file descriptor and its readiness."""

    def __init__(
        self, meta: ObjectMeta, fd: int, progress: Progress | None, file: Path | None
    ) -> None:
        self.meta = meta
        self.fd = fd
        self.progress = progress
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
        return self.progress is None or (self.progress.done and self.progress.error is None)

    @property
    def available(self) -> int:
        """How many leading bytes can be read now."""
        if self.progress is None:
            return self.meta.size
        return self.progress.written

    async def ready(self, end: int) -> None:
        """Wait until bytes `[0, end)` can be read."""
        if self.progress is not None:
            await self.progress.wait_for(end)

    async def wait_beyond(self, offset: int) -> None:
        """Wait until more than `offset` bytes are readable or the object is complete."""
        if self.progress is not None:
            await self.progress.wait_beyond(offset)

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
        if end > offset:
            await self.ready(end)
        return os.pread(self.fd, max(end - offset, 0), offset)

    def close(self) -> None:
        """Release the file descriptor."""
        with contextlib.suppress(OSError):
            os.close(self.fd)
