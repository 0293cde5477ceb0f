"""The disk cache: whole objects as plain files, filled once, readable while filling.

A fill writes to a temporary file and renames it into place only when the
origin's body is complete and as long as announced; a crash or kill -9 mid-fill
leaves a temporary file that is removed at the next start, never an entry.
One process fills an object (an `fcntl` lock per object); requests in the same
process join its fill, other processes follow the growing file.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path

from vodedge.config import TtlRule
from vodedge.edge import metrics
from vodedge.edge.cache_index import CacheIndex, Entry, ObjectMeta
from vodedge.edge.freshness import storable, ttl_for
from vodedge.edge.origin import OriginError, OriginResponse
from vodedge.media.plan import Plan
from vodedge.planfile import write_plan_file

Fetch = Callable[[Mapping[str, str] | None], Awaitable[OriginResponse]]

# Renditions (a transform's output stored as one file) are keyed by the object's key,
# this separator (control characters never reach keys: such paths are refused) and a tag.
RENDITION = "\x1frendition:"
FOLLOW_POLL = 0.005
# Index rows read this recently are reused without asking SQLite (see _lookup).
HOT_SECONDS = 1.0
HOT_ENTRIES = 4096
FOLLOW_META_TIMEOUT = 60.0
PASSTHROUGH_STATUSES = frozenset({301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 410, 451})


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


def _meta_from(key: str, response: OriginResponse, size: int, ttl: int, now: float) -> ObjectMeta:
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


def _write_rendition(plan: Plan, src: int, path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_plan_file(plan, src, fd)
        if os.fstat(fd).st_size != plan.size:
            raise OSError(f"a rendition came out at {os.fstat(fd).st_size} of {plan.size} bytes")
    finally:
        os.close(fd)


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

    def discard(self, error: Exception) -> None:
        """Fail the fill this body follows (its origin object changed): not stored."""
        if self.progress is not None:
            self.progress.fail(error)

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


class DiskCache:
    """Objects on disk under `root`, at most `max_bytes` of them, least recently used out."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        for sub in ("objects", "tmp", "locks"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.index = CacheIndex(root / "index.sqlite")
        self._fills: dict[str, Progress] = {}
        self._accesses: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._rendering: set[str] = set()
        self._hot: dict[str, tuple[float, Entry]] = {}
        self._revalidating: dict[str, asyncio.Task[tuple[str, ObjectMeta | Progress]]] = {}

    # --- start-up and housekeeping -------------------------------------------------

    def recover(self) -> int:
        """Remove what crashed fills left and rows whose file is gone; how many."""
        removed = 0
        for part in (self.root / "tmp").iterdir():
            digest = part.name.split(".", 1)[0]
            with self._try_lock(digest) as held:
                if held:
                    part.unlink(missing_ok=True)
                    removed += 1
        known = self.index.files()
        for name in known:
            if not os.path.exists(name):
                key = self._key_of_file(name)
                if key is not None:
                    self.index.delete(key)
                    removed += 1
        for shard in (self.root / "objects").iterdir():
            for file in shard.iterdir():
                if str(file) not in known:
                    file.unlink(missing_ok=True)  # renamed into place, row never written
                    removed += 1
        return removed

    def _key_of_file(self, name: str) -> str | None:
        row = self.index._db.execute("SELECT key FROM objects WHERE file = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def flush_accesses(self) -> None:
        """Write batched last-access times to the index."""
        if self._accesses:
            accesses, self._accesses = self._accesses, {}
            self.index.touch(accesses)

    def purge(self, key_or_prefix: str, *, prefix: bool = False) -> int:
        """Drop one object (and its renditions) or every object under a prefix; how
        many objects were dropped."""
        self.index.record_purge(key_or_prefix, prefix)
        self._hot.clear()
        if prefix:
            rows = self.index.delete_prefix(key_or_prefix)
        else:
            file = self.index.delete(key_or_prefix)
            rows = [(key_or_prefix, file)] if file is not None else []
            rows += self.index.delete_prefix(key_or_prefix + RENDITION)
        for _, file in rows:
            file.unlink(missing_ok=True)
        return sum(1 for key, _ in rows if RENDITION not in key)

    def _evict(self, keep: str) -> None:
        total = self.index.total_size()
        while total > self.max_bytes:
            victims = [(k, s) for k, s in self.index.oldest(64) if k != keep]
            if not victims:
                return
            for key, size in victims:
                file = self.index.delete(key)
                if file is not None:
                    file.unlink(missing_ok=True)
                total -= size
                if total <= self.max_bytes:
                    return

    # --- lookups ------------------------------------------------------------------------

    @staticmethod
    def digest(key: str) -> str:
        """The file-name-safe name of a key."""
        return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40]

    @contextlib.contextmanager
    def _try_lock(self, digest: str) -> Iterator[bool]:
        fd = os.open(self.root / "locks" / f"{digest}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def _open_entry(self, entry: Entry) -> int | None:
        try:
            fd = os.open(entry.file, os.O_RDONLY)
        except FileNotFoundError:
            # Replaced, purged or evicted since the row was read: the row goes only if
            # it still names this file (another worker may have stored a newer one).
            self.index.delete_entry(entry)
            self._hot.pop(entry.meta.key, None)
            return None
        if os.fstat(fd).st_size != entry.meta.size:
            os.close(fd)  # never serve a file that disagrees with its row
            self.index.delete_entry(entry)
            self._hot.pop(entry.meta.key, None)
            entry.file.unlink(missing_ok=True)
            return None
        return fd

    def _lookup(self, key: str, now: float) -> Entry | None:
        """The index row of `key`, from memory when read less than HOT_SECONDS ago.

        Files are unlinked whenever their row changes object (replace, purge,
        evict), so a remembered row whose file still opens still holds that object;
        only a revalidation elsewhere can be missed, for HOT_SECONDS at most.
        """
        hot = self._hot.get(key)
        if hot is not None and now - hot[0] < HOT_SECONDS:
            return hot[1]
        entry = self.index.get(key)
        if entry is None:
            self._hot.pop(key, None)
        else:
            if len(self._hot) >= HOT_ENTRIES:
                self._hot.clear()
            self._hot[key] = (now, entry)
        return entry

    async def get(self, key: str, fetch: Fetch, *, rule: TtlRule | None) -> tuple[str, Body]:
        """The object for `key` and how it was found: HIT, MISS, EXPIRED, REVALIDATED,
        STALE (origin down, stale copy served) or BYPASS (origin forbids storing)."""
        now = time.time()
        entry = self._lookup(key, now)
        fd = self._open_entry(entry) if entry is not None else None
        if entry is not None and fd is not None:
            if entry.meta.fresh(now):
                self._accesses[key] = now
                return "HIT", Body(entry.meta, fd, None, entry.file)
            return await self._revalidate(entry, fd, fetch, rule)
        progress = self._fills.get(key)
        if progress is None:
            progress = self._start(key, fetch, rule, None)
        return "MISS", await self._join(progress)

    async def _revalidate(
        self, entry: Entry, fd: int, fetch: Fetch, rule: TtlRule | None
    ) -> tuple[str, Body]:
        """Ask the origin whether a stale copy is still good; concurrent requests for
        the same object share one conditional request."""
        key = entry.meta.key
        pending = self._revalidating.get(key)
        if pending is None:
            # A task of its own: a client that goes away must not cancel it for the others.
            pending = asyncio.get_running_loop().create_task(self._ask_origin(entry, fetch, rule))
            self._revalidating[key] = pending
            pending.add_done_callback(lambda _done: self._revalidating.pop(key, None))
        try:
            how, outcome = await asyncio.shield(pending)
        except BaseException:
            os.close(fd)
            raise
        if isinstance(outcome, Progress):
            os.close(fd)
            return how, await self._join(outcome)
        return how, Body(outcome, fd, None, entry.file)

    async def _ask_origin(
        self, entry: Entry, fetch: Fetch, rule: TtlRule | None
    ) -> tuple[str, ObjectMeta | Progress]:
        meta = entry.meta
        validators = {}
        if meta.etag:
            validators["If-None-Match"] = meta.etag
        if meta.last_modified:
            validators["If-Modified-Since"] = meta.last_modified
        try:
            response = await fetch(validators or None)
        except OriginError:
            return "STALE", meta
        if response.status == 304:
            await response.aclose()
            now = time.time()
            ttl = ttl_for(response.headers, now, rule)
            age = response.headers.get("Age", "0")
            origin_age = int(age) if age.isdigit() else 0
            self.index.refresh(meta.key, now, now + ttl, origin_age)
            self._hot.pop(meta.key, None)
            fresh = replace(meta, stored_at=now, expires_at=now + ttl, origin_age=origin_age)
            return "REVALIDATED", fresh
        if response.status >= 500:
            await response.aclose()
            return "STALE", meta
        progress = self._fills.get(meta.key)
        if progress is None:
            progress = self._start(meta.key, fetch, rule, response)
        else:
            await response.aclose()
        return "EXPIRED", progress

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

    async def _join(self, progress: Progress) -> Body:
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

    # --- fills ----------------------------------------------------------------------------

    def _start(
        self, key: str, fetch: Fetch, rule: TtlRule | None, response: OriginResponse | None
    ) -> Progress:
        progress = Progress(key)
        self._fills[key] = progress
        task = asyncio.get_running_loop().create_task(
            self._fill_or_follow(progress, fetch, rule, response)
        )
        # A client that goes away must not cancel a fill that others wait on.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return progress

    async def _fill_or_follow(
        self,
        progress: Progress,
        fetch: Fetch,
        rule: TtlRule | None,
        response: OriginResponse | None,
    ) -> None:
        digest = self.digest(progress.key)
        try:
            for _attempt in range(3):
                with self._try_lock(digest) as held:
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
                    self._start(progress.key, fetch, rule, None)
                    raise OriginError(502, "fill_failed", "the worker filling this object died")
                if progress.fd >= 0:
                    os.close(progress.fd)
                    progress.fd = -1
            progress.fail(OriginError(502, "fill_failed", "could not fill the object"))
        except Exception as exc:
            progress.fail(exc)
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
        tmp = self.root / "tmp" / f"{digest}.{secrets.token_hex(6)}.part"
        meta_file = self.root / "tmp" / f"{digest}.meta"
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
            fd = progress.fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            created = True
            meta = _meta_from(progress.key, response, -1 if total is None else total, ttl, now)
            progress.total = total
            progress.path = tmp
            if keep:
                self._write_meta(meta_file, meta, tmp)
            else:
                tmp.unlink()  # readers hold descriptors; nothing else may find it
            progress.meta = meta
            progress.notify()
            async for chunk in response.body:
                if progress.error is not None:
                    raise progress.error  # discarded meanwhile (the object changed)
                if total is not None and progress.written + len(chunk) > total:
                    raise OriginError(502, "origin_overrun", "the origin sent more than it said")
                # pwrite: readers share this descriptor, and sendfile moves its offset.
                view = memoryview(chunk)
                position = progress.written
                while view:
                    done = os.pwrite(fd, view, position)
                    view = view[done:]
                    position += done
                progress.written += len(chunk)
                progress.notify()
            if progress.error is not None:
                raise progress.error
            if total is not None and progress.written != total:
                raise OriginError(
                    502, "origin_short", f"the origin sent {progress.written} of {total} bytes"
                )
            if keep and self.index.purged_since(progress.key, now):
                keep = False  # purged while it streamed in: serve it, but do not keep it
                tmp.unlink(missing_ok=True)
            if keep:
                self._publish(progress, meta, tmp)
                metrics.FILL_SECONDS.observe(time.time() - now)
            progress.finish()
        except BaseException:
            if created:
                tmp.unlink(missing_ok=True)
            raise
        finally:
            meta_file.unlink(missing_ok=True)
            await response.aclose()

    def _write_meta(self, meta_file: Path, meta: ObjectMeta, part: Path) -> None:
        staging = meta_file.with_suffix(f".{secrets.token_hex(4)}.tmp")
        staging.write_text(json.dumps({"meta": asdict(meta), "part": str(part)}))
        os.replace(staging, meta_file)

    def _publish(self, progress: Progress, meta: ObjectMeta, tmp: Path) -> None:
        final_meta = replace(meta, size=progress.written)
        digest = self.digest(meta.key)
        shard = self.root / "objects" / digest[:2]
        shard.mkdir(exist_ok=True)
        final = shard / tmp.name.removesuffix(".part")  # same token: same Body.version
        os.replace(tmp, final)
        progress.path = final
        progress.meta = final_meta
        replaced = self.index.put(Entry(final_meta, final))
        self._hot.pop(meta.key, None)
        if replaced is not None:
            replaced.unlink(missing_ok=True)
        self._evict(keep=meta.key)

    async def _follow(self, progress: Progress, digest: str) -> bool:
        """Follow another process's fill of the object; False if it failed."""
        meta_file = self.root / "tmp" / f"{digest}.meta"
        deadline = time.monotonic() + FOLLOW_META_TIMEOUT
        while True:
            with self._try_lock(digest) as free:
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

    def _open_followed(self, progress: Progress, meta_file: Path) -> int:
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
        entry = self.index.get(progress.key)
        if entry is None or (progress.meta is not None and entry.meta.etag != progress.meta.etag):
            return False
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

    # --- renditions ------------------------------------------------------------------------

    def open_rendition(self, key: str, tag: str) -> Body | None:
        """The stored output of transform `tag` on object `key`, or None."""
        rkey = key + RENDITION + tag
        entry = self._lookup(rkey, time.time())
        fd = self._open_entry(entry) if entry is not None else None
        if entry is None or fd is None:
            return None
        self._accesses[rkey] = time.time()
        return Body(entry.meta, fd, None, entry.file)

    def store_rendition(self, key: str, tag: str, plan: Plan, source: Body) -> None:
        """Write the plan's output to a file in the background and index it, so that
        later requests are one sendfile instead of thousands (in-process dedup)."""
        rkey = key + RENDITION + tag
        if rkey in self._rendering:
            return
        self._rendering.add(rkey)
        src = os.dup(source.fd)
        task = asyncio.get_running_loop().create_task(self._render(rkey, plan, src, source.meta))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _render(self, rkey: str, plan: Plan, src: int, meta: ObjectMeta) -> None:
        digest = self.digest(rkey)
        tmp = self.root / "tmp" / f"{digest}.{secrets.token_hex(6)}.part"
        try:
            with self._try_lock(digest) as held:
                if not held:
                    return  # another worker renders it
                await asyncio.get_running_loop().run_in_executor(
                    None, _write_rendition, plan, src, tmp
                )
                rendered = replace(
                    meta,
                    key=rkey,
                    size=plan.size,
                    expires_at=meta.stored_at + 10 * 365 * 86400,
                    ranges=True,
                )
                shard = self.root / "objects" / digest[:2]
                shard.mkdir(exist_ok=True)
                final = shard / tmp.name.removesuffix(".part")
                os.replace(tmp, final)
                replaced = self.index.put(Entry(rendered, final))
                if replaced is not None:
                    replaced.unlink(missing_ok=True)
                self._evict(keep=rkey)
        except OSError:
            pass  # a rendition is an optimisation: without it the plan is served
        finally:
            tmp.unlink(missing_ok=True)
            os.close(src)
            self._rendering.discard(rkey)

    async def close(self) -> None:
        """Stop running fills and renditions (their temporary files go), then close the
        index. At shutdown nobody is left to wait for them."""
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.flush_accesses()
        self.index.close()
