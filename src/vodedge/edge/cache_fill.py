"""Fills: an object written from the origin once, readable while it grows.

A fill writes to a temporary file and renames it into place only when the
origin's body is complete and as long as announced; a crash or kill -9 mid-fill
leaves a temporary file that is removed later, never an entry. One process fills
an object (it holds the object's lock); requests in the same process join its
fill, other processes follow the growing file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, replace
from pathlib import Path

from vodedge.config import TtlRule
from vodedge.edge import metrics
from vodedge.edge.cache_body import Body, Progress
from vodedge.edge.cache_index import Entry, ObjectMeta
from vodedge.edge.cache_store import Store
from vodedge.edge.freshness import storable, ttl_for
from vodedge.edge.origin import OriginError, OriginResponse

Fetch = Callable[[Mapping[str, str] | None], Awaitable[OriginResponse]]

FOLLOW_POLL = 0.005
# After finding no room for an object, later misses of it go straight to pass-through
# for this long, instead of evicting again for an object that will not fit.
NO_ROOM_MEMORY = 60.0
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
# How long an origin response handed to pass-through waits for its reader.
HANDOVER_WAIT = 10.0
FOLLOW_META_TIMEOUT = 60.0
PASSTHROUGH_STATUSES = frozenset({301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 410, 451})


class Uncached(Exception):
    """No room to store the object: it is served straight from the origin.

    The first reader takes the origin response the fill got (`take`); the others
    fetch their own.
    """

    def __init__(self, meta: ObjectMeta, response: OriginResponse | None) -> None:
        super().__init__("no room to store the object")
        self.meta = meta
        self._response = response
        self._taken = asyncio.Event()

    def take(self) -> OriginResponse | None:
        """The fill's origin response, for the first caller only."""
        response, self._response = self._response, None
        self._taken.set()
        return response

    async def release(self, wait: float) -> None:
        """Close the response if nobody took it within `wait` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._taken.wait(), wait)
        response, self._response = self._response, None
        if response is not None:
            await response.aclose()


class OriginStatus(Exception):
    """The origin answered with a status the client should see as it is (404, 403, 3xx...)."""

    def __init__(self, status: int, headers: Mapping[str, str]) -> None:
        super().__init__(f"the origin answered {status}")
        self.status = status
        self.headers = dict(headers)


def _encoding(value: str | None) -> str | None:
    """The Content-Encoding worth keeping (identity is none)."""
    if value is None or value.strip().lower() in ("", "identity"):
        return None
    return value.strip()


def meta_from(key: str, response: OriginResponse, size: int, ttl: int, now: float) -> ObjectMeta:
    """What the cache keeps of an origin's answer for the object `key` of `size` bytes."""
    headers = response.headers
    age = headers.get("Age", "0")
    return ObjectMeta(
        key=key,
        size=size,
        etag=headers.get("ETag"),
        last_modified=headers.get("Last-Modified"),
        content_type=headers.get("Content-Type"),
        content_encoding=_encoding(headers.get("Content-Encoding")),
        stored_at=now,
        expires_at=now + ttl,
        origin_age=int(age) if age.isdigit() else 0,
        ranges=headers.get("Accept-Ranges", "").lower() == "bytes",
    )


class Fills:
    """The fills running in this process, by key, and the tasks that run them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._fills: dict[str, Progress] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._no_room: dict[str, float] = {}

    def running(self, key: str) -> Progress | None:
        """The fill of `key` running in this process, if any."""
        return self._fills.get(key)

    def start(
        self, key: str, fetch: Fetch, rule: TtlRule | None, response: OriginResponse | None
    ) -> Progress:
        """Start filling `key` (or following another process's fill of it)."""
        progress = Progress(key)
        self._fills[key] = progress
        task = asyncio.get_running_loop().create_task(
            self._fill_or_follow(progress, fetch, rule, response)
        )
        # A client that goes away must not cancel a fill that others wait on.
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return progress

    @staticmethod
    def _open_finished(progress: Progress) -> int:
        """A descriptor of a fill that ended before this reader got to it."""
        if progress.error is not None:
            raise progress.error
        try:
            if progress.path is None:
                raise FileNotFoundError
            return os.open(progress.path, os.O_RDONLY)
        except FileNotFoundError:
            # Stored and already gone (purged, evicted) or never stored (no-store).
            raise OriginError(503, "fill_gone", "the object went away; try again") from None

    async def join(self, progress: Progress) -> Body:
        """A reader's handle on the fill, once the origin has answered."""
        # The growing file may be renamed or unlinked at any moment, so readers
        # share the fill's descriptor rather than open by name; it stays open until
        # every reader that found the fill has its own copy.
        progress.joining += 1
        try:
            meta = await progress.wait_meta()
            fd = os.dup(progress.fd) if progress.fd >= 0 else self._open_finished(progress)
        finally:
            progress.joining -= 1
            self._release(progress)
        if progress.done and progress.error is None:
            return Body(meta, fd, None, progress.path)
        return Body(meta, fd, progress, progress.path)

    async def _fill_or_follow(
        self,
        progress: Progress,
        fetch: Fetch,
        rule: TtlRule | None,
        response: OriginResponse | None,
    ) -> None:
        digest = self.store.digest(progress.key)
        try:
            for _attempt in range(3):
                with self.store.try_lock(digest) as held:
                    if held:
                        await self._fill(progress, digest, fetch, rule, response)
                        return
                if await self._follow(progress, digest):
                    return
                if progress.meta is not None:
                    # Readers already have bytes of the failed fill: they must see an
                    # error, never a different version continuing where it stopped.
                    # The object still gets stored, by a fill of our own.
                    del self._fills[progress.key]
                    self.start(progress.key, fetch, rule, None)
                    raise OriginError(502, "fill_failed", "the worker filling this object died")
                if progress.fd >= 0:
                    os.close(progress.fd)
                    progress.fd = -1
            progress.fail(OriginError(502, "fill_failed", "could not fill the object"))
        except Exception as exc:
            progress.fail(exc)
            if isinstance(exc, Uncached):
                if self._fills.get(progress.key) is progress:
                    del self._fills[progress.key]
                await exc.release(HANDOVER_WAIT)
        finally:
            if self._fills.get(progress.key) is progress:
                del self._fills[progress.key]
            progress.task_done = True
            self._release(progress)

    @staticmethod
    def _release(progress: Progress) -> None:
        """Close the fill's descriptor once the fill is over and no reader still needs it."""
        if progress.task_done and progress.joining == 0 and progress.fd >= 0:
            os.close(progress.fd)
            progress.fd = -1

    async def _fill(
        self,
        progress: Progress,
        digest: str,
        fetch: Fetch,
        rule: TtlRule | None,
        response: OriginResponse | None,
    ) -> None:
        if response is None:
            response = await fetch(None)
        tmp = self.store.temporary(digest)
        meta_file = self.store.meta_file(digest)
        created = False
        try:
            if response.status != 200:
                if response.status in PASSTHROUGH_STATUSES:
                    raise OriginStatus(response.status, response.headers)
                raise OriginError(502, "origin_status", f"the origin answered {response.status}")
            now = time.time()
            keep = storable(response.headers, rule)
            ttl = ttl_for(response.headers, now, rule) if keep else 0
            total = response.length
            meta = meta_from(progress.key, response, -1 if total is None else total, ttl, now)
            if self._no_room.get(progress.key, 0.0) > now:
                raise Uncached(meta, response)
            # Room is made before a byte is written; without it (or without room for
            # the file's name and description) the object is served from the origin.
            try:
                fd = progress.fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                created = True
                if total is not None and not self.store.reserve(fd, total, progress.key):
                    self._no_room[progress.key] = now + NO_ROOM_MEMORY
                    raise Uncached(meta, response)
                if keep:
                    self._write_meta(meta_file, meta, tmp)
            except OSError as exc:
                if exc.errno not in DISK_FULL:
                    raise
                raise Uncached(meta, response) from None
            progress.total = total
            progress.path = tmp
            if not keep:
                tmp.unlink()  # readers hold descriptors; nothing else may find it
            progress.meta = meta
            progress.notify()
            async for chunk in response.body:
                if progress.error is not None:
                    raise progress.error  # discarded meanwhile (the object changed)
                if total is not None and progress.written + len(chunk) > total:
                    raise OriginError(502, "origin_overrun", "the origin sent more than it said")
                self._write(fd, chunk, progress)
                progress.written += len(chunk)
                progress.notify()
            if progress.error is not None:
                raise progress.error
            if total is not None and progress.written != total:
                raise OriginError(
                    502, "origin_short", f"the origin sent {progress.written} of {total} bytes"
                )
            if keep and self.store.index.purged_since(progress.key, now):
                keep = False  # purged while it streamed in: serve it, but do not keep it
                tmp.unlink(missing_ok=True)
            if keep:
                final_meta = replace(meta, size=progress.written)
                final = self.store.final_path(meta.key, tmp)
                try:
                    # Expired (a refresh without Force) while it streamed in: stale.
                    self.store.publish(Entry(final_meta, final), tmp, now)
                except (OSError, sqlite3.Error):
                    # Readers have every byte; only keeping it failed (a full disk).
                    tmp.unlink(missing_ok=True)
                    final.unlink(missing_ok=True)
                else:
                    progress.path = final
                    progress.meta = final_meta
                    metrics.FILL_SECONDS.observe(time.time() - now)
            progress.finish()
        except BaseException as exc:
            if created:
                tmp.unlink(missing_ok=True)
            if isinstance(exc, Uncached):
                response = None  # handed over to a reader
            raise
        finally:
            meta_file.unlink(missing_ok=True)
            # Ranged windows other workers shared beside the file (source.shared_window).
            for window in tmp.parent.glob(tmp.name.removesuffix(".part") + ".w*"):
                window.unlink(missing_ok=True)
            if response is not None:
                await response.aclose()

    def _write(self, fd: int, chunk: bytes, progress: Progress) -> None:
        """Write the next chunk of a fill; a full disk gets one chance to be made room on
        (fills of unknown length reserve nothing beforehand)."""
        # pwrite: readers share this descriptor, and sendfile moves its offset.
        view = memoryview(chunk)
        position = progress.written
        retried = False
        while view:
            try:
                done = os.pwrite(fd, view, position)
            except OSError as exc:
                if exc.errno not in DISK_FULL or retried:
                    if exc.errno in DISK_FULL:
                        self._no_room[progress.key] = time.time() + NO_ROOM_MEMORY
                    raise
                retried = True
                self.store.make_room(max(len(view), 8 << 20), progress.key)
                continue
            view = view[done:]
            position += done

    @staticmethod
    def _write_meta(meta_file: Path, meta: ObjectMeta, part: Path) -> None:
        staging = meta_file.with_suffix(f".{secrets.token_hex(4)}.tmp")
        staging.write_text(json.dumps({"meta": asdict(meta), "part": str(part)}))
        os.replace(staging, meta_file)

    async def _follow(self, progress: Progress, digest: str) -> bool:
        """Follow another process's fill of the object; False if it failed."""
        meta_file = self.store.meta_file(digest)
        deadline = time.monotonic() + FOLLOW_META_TIMEOUT
        while True:
            with self.store.try_lock(digest) as free:
                if free:
                    return self._followed_to_end(progress)
            if progress.fd < 0:
                progress.fd = self._open_followed(progress, meta_file)
                if progress.fd < 0 and time.monotonic() > deadline:
                    raise OriginError(504, "fill_timeout", "another worker's fill stalled")
            else:
                size = os.fstat(progress.fd).st_size
                if size != progress.written:
                    progress.written = size
                    progress.notify()
            await asyncio.sleep(FOLLOW_POLL)

    @staticmethod
    def _open_followed(progress: Progress, meta_file: Path) -> int:
        try:
            record = json.loads(meta_file.read_text())
            fd = os.open(record["part"], os.O_RDONLY)
            meta = ObjectMeta(**record["meta"])
        except (OSError, ValueError, KeyError, TypeError):
            return -1
        progress.total = meta.size if meta.size >= 0 else None
        progress.path = Path(record["part"])
        progress.meta = meta
        progress.notify()
        return fd

    def _followed_to_end(self, progress: Progress) -> bool:
        entry = self.store.index.get(progress.key)
        if entry is None or (progress.meta is not None and entry.meta.etag != progress.meta.etag):
            return False
        if entry.partial:
            return False  # the lock was a sparse object's first request: no whole fill ran
        if progress.fd < 0:
            try:
                progress.fd = os.open(entry.file, os.O_RDONLY)
            except FileNotFoundError:
                return False
        progress.meta = entry.meta
        progress.path = entry.file
        progress.written = entry.meta.size
        progress.finish()
        return True
