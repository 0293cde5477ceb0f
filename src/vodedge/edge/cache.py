"""The disk cache: lookups, revalidation, and the fills and renditions behind them.

`Store` (cache_store) holds the files, rows, locks and eviction; `Fills`
(cache_fill) writes objects from the origin and lets readers follow them;
`Renditions` (renditions) stores transform outputs. This module answers "what
is the object for this key" with one of them.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from vodedge.config import TtlRule
from vodedge.edge.cache_body import Body, Progress
from vodedge.edge.cache_fill import Fetch, Fills, OriginStatus, Uncached
from vodedge.edge.cache_index import CacheIndex, Entry, ObjectMeta
from vodedge.edge.cache_sparse import (
    First,
    FirstSource,
    SparseObjects,
    content_range,
    first_contact,
    same_version,
)
from vodedge.edge.cache_store import MIN_FREE, Store
from vodedge.edge.freshness import ttl_for
from vodedge.edge.origin import OriginError, OriginResponse
from vodedge.edge.renditions import Renditions
from vodedge.media.plan import Plan

__all__ = ["Body", "DiskCache", "Fetch", "First", "OriginStatus", "Uncached"]

T = TypeVar("T")

# A cold request waits this long for another worker's first ranged request of the object.
CONTACT_WAIT = 10.0
CONTACT_POLL = 0.01


class DiskCache:
    """Objects on disk under `root`, at most `max_bytes` of them, least recently used out."""

    def __init__(self, root: Path, max_bytes: int, min_free: int = MIN_FREE) -> None:
        self.store = Store(root, max_bytes, min_free)
        self.fills = Fills(self.store)
        self.renditions = Renditions(self.store, self.fills.tasks)
        self.sparse = SparseObjects(self.store)
        self._revalidating: dict[str, asyncio.Task[tuple[str, ObjectMeta | Progress]]] = {}
        self._revalidating_sparse: dict[str, asyncio.Task[tuple[str, Entry] | None]] = {}
        self._contacts: dict[str, asyncio.Future[None]] = {}

    @property
    def index(self) -> CacheIndex:
        """The index of stored objects."""
        return self.store.index

    def recover(self) -> int:
        """Remove what crashed fills left and rows whose file is gone; how many."""
        return self.store.recover()

    def flush_accesses(self) -> None:
        """Write batched last-access times to the index."""
        self.store.flush_accesses()

    def expire(self, keys: list[str], prefix: str | None = None) -> int:
        """Mark objects stale (revalidated before they are served again), and any fill
        of them or under `prefix` running now; how many."""
        return self.store.expire(keys, prefix)

    def purge(self, key_or_prefix: str, *, prefix: bool = False) -> int:
        """Drop one object (and its renditions) or every object under a prefix; how
        many objects were dropped."""
        return self.store.purge(key_or_prefix, prefix=prefix)

    async def get(
        self,
        key: str,
        fetch: Fetch,
        *,
        rule: TtlRule | None,
        source: FirstSource | None = None,
        first: First | None = None,
        small: bool = False,
    ) -> tuple[str, Body]:
        """The object for `key` and how it was found: HIT, MISS, EXPIRED, REVALIDATED,
        STALE (origin down, stale copy served) or BYPASS (origin forbids storing).

        With a `source` (the domain's `range` function on) the object may be held
        sparsely: a cold request asks the origin for the `first` bytes it needs (None: the
        whole object), and what else it reads is fetched as ranges; without one, only
        whole objects are stored (a sparse one is dropped). `small`: a fresh whole object
        of at most SMALL_OBJECT bytes may come as a body of bytes (`Body.data`, no file).
        """
        for _attempt in range(3):
            now = time.time()
            entry = self.store.lookup(key, now)
            if small and entry is not None and entry.meta.fresh(now):
                data = self.store.small_bytes(entry)
                if data is not None:
                    self.store.touch(key, now)
                    return "HIT", Body(entry.meta, -1, None, entry.file, data=data)
            fd = self.store.open_entry(entry) if entry is not None else None
            if entry is not None and fd is not None and entry.partial:
                how = "HIT"
                if source is not None and not entry.meta.fresh(now):
                    revalidated = await self._revalidate_sparse(entry, source, rule)
                    if revalidated is None:
                        os.close(fd)
                        continue  # another version, or gone: cold again
                    how, entry = revalidated
                if source is not None:
                    found = self._sparse_body(entry, fd, source, first)
                    if found is None:
                        continue  # dropped meanwhile (the object changed)
                    self.store.touch(key, now)
                    return (how, found[1]) if how != "HIT" else found
                # Unwanted (range off): a new version is fetched whole instead.
                os.close(fd)
                self.store.index.delete_entry(entry)
                self.store.forget_hot(key)
                entry.file.unlink(missing_ok=True)
                entry = fd = None
            if entry is not None and fd is not None:
                if entry.meta.fresh(now):
                    self.store.touch(key, now)
                    return "HIT", Body(entry.meta, fd, None, entry.file)
                return await self._revalidate(entry, fd, fetch, rule)
            progress = self.fills.running(key)
            wanted = first is not None and (first[1] is None or first[1] > first[0])
            if progress is None and source is not None and first is not None and wanted:
                contact = await self._first_contact(key, source, first, rule)
                if isinstance(contact, Body):
                    return "MISS", contact
                if isinstance(contact, str):  # "again"
                    continue
                if contact is not None:
                    progress = self.fills.start(key, fetch, rule, contact)
            if progress is None:
                progress = self.fills.running(key) or self.fills.start(key, fetch, rule, None)
            return "MISS", await self.fills.join(progress)
        raise OriginError(503, "fill_gone", "the object went away; try again")

    def fresh_body(self, key: str) -> Body | None:
        """A fresh whole stored object, opened, as `get` finds it for a HIT (and touched);
        None for anything else (missing, stale, sparse): `get` answers that."""
        now = time.time()
        entry = self.store.lookup(key, now)
        if entry is None or entry.partial or not entry.meta.fresh(now):
            return None
        fd = self.store.open_entry(entry)
        if fd is None:
            return None
        self.store.touch(key, now)
        return Body(entry.meta, fd, None, entry.file)

    def _sparse_body(
        self, entry: Entry, fd: int, source: FirstSource, first: First | None
    ) -> tuple[str, Body] | None:
        try:
            sparse = self.sparse.open(entry)
        except OSError:
            os.close(fd)
            return None
        how = "HIT" if sparse.complete else "MISS"
        if first is not None and first[0] >= 0:
            start, end = first
            stop = entry.meta.size if end is None else min(end, entry.meta.size)
            how = "HIT" if sparse.present_end(start) >= stop else "MISS"
        return how, Body(entry.meta, fd, None, entry.file, sparse=sparse, source=source)

    async def _first_contact(
        self, key: str, source: FirstSource, first: First, rule: TtlRule | None
    ) -> Body | OriginResponse | str | None:
        """A cold object's first ranged request: a sparse body, an origin response for
        a whole fill, "again" (another request made the object meanwhile: look again)
        or None (fill it whole)."""
        pending = self._contacts.get(key)
        if pending is not None:
            await asyncio.shield(pending)
            return "again"
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._contacts[key] = done
        try:
            digest = self.store.digest(key)
            with self.store.try_lock(digest) as held:
                if held:
                    contact = await first_contact(self.sparse, key, source, first, rule)
                    if contact.sparse is None:
                        return contact.response
                    entry = contact.sparse.entry
                    fd = os.open(entry.file, os.O_RDONLY)
                    body = Body(entry.meta, fd, None, entry.file, sparse=contact.sparse)
                    body.source = source
                    return body
            # Another worker fills the object whole (follow it) or asks for its first range.
            deadline = time.monotonic() + CONTACT_WAIT
            while time.monotonic() < deadline and not self.store.meta_file(digest).exists():
                if self.store.index.get(key) is not None:
                    return "again"
                with self.store.try_lock(digest) as free:
                    if free:
                        return "again"
                await asyncio.sleep(CONTACT_POLL)
            return None
        finally:
            del self._contacts[key]
            done.set_result(None)

    async def _revalidate_sparse(
        self, entry: Entry, source: FirstSource, rule: TtlRule | None
    ) -> tuple[str, Entry] | None:
        """Ask the origin whether a stale sparse object is still its version; concurrent
        requests for it share one request. ("REVALIDATED", the entry made fresh): its
        extents are kept; ("STALE", the entry): the origin is down, what is held is
        served; None: another version (or none) is there now, and every extent went."""
        pending = _shared(
            self._revalidating_sparse, entry.meta.key, lambda: self._ask_sparse(entry, source, rule)
        )
        return await asyncio.shield(pending)

    async def _ask_sparse(
        self, entry: Entry, source: FirstSource, rule: TtlRule | None
    ) -> tuple[str, Entry] | None:
        meta = entry.meta
        # One byte, conditional: 304 when unchanged; a changed object costs one byte more
        # (its first bytes come with the next request, as any cold object's).
        validators = {"Range": "bytes=0-0", **_conditions(meta)}
        try:
            response = await source.conditional_range(validators)
        except OriginError:
            return "STALE", entry
        try:
            status = response.status
            if status >= 500:
                return "STALE", entry
            found = content_range(response)
            length = found[2] if found is not None else response.length
            same = status == 304 or (
                status in (200, 206) and same_version(response, meta) and length == meta.size
            )
        finally:
            await response.aclose()
        if not same:
            # Changed, gone or refused: its extents go, and the request starts cold.
            self.store.index.delete_entry(entry)
            self.store.forget_hot(meta.key)
            entry.file.unlink(missing_ok=True)
            return None
        return "REVALIDATED", replace(entry, meta=self._refresh(meta, response, rule))

    async def _revalidate(
        self, entry: Entry, fd: int, fetch: Fetch, rule: TtlRule | None
    ) -> tuple[str, Body]:
        """Ask the origin whether a stale copy is still good; concurrent requests for
        the same object share one conditional request."""
        pending = _shared(
            self._revalidating, entry.meta.key, lambda: self._ask_origin(entry, fetch, rule)
        )
        try:
            how, outcome = await asyncio.shield(pending)
        except BaseException:
            os.close(fd)
            raise
        if isinstance(outcome, Progress):
            os.close(fd)
            return how, await self.fills.join(outcome)
        return how, Body(outcome, fd, None, entry.file)

    async def _ask_origin(
        self, entry: Entry, fetch: Fetch, rule: TtlRule | None
    ) -> tuple[str, ObjectMeta | Progress]:
        meta = entry.meta
        validators = _conditions(meta)
        try:
            response = await fetch(validators or None)
        except OriginError:
            return "STALE", meta
        if response.status == 304:
            await response.aclose()
            return "REVALIDATED", self._refresh(meta, response, rule)
        if response.status >= 500:
            await response.aclose()
            return "STALE", meta
        progress = self.fills.running(meta.key)
        if progress is None:
            progress = self.fills.start(meta.key, fetch, rule, response)
        else:
            await response.aclose()
        return "EXPIRED", progress

    def _refresh(
        self, meta: ObjectMeta, response: OriginResponse, rule: TtlRule | None
    ) -> ObjectMeta:
        """The origin confirmed `meta`'s version: fresh again for the TTL its answer gives."""
        now = time.time()
        ttl = ttl_for(response.headers, now, rule)
        age = response.headers.get("Age", "0")
        origin_age = int(age) if age.isdigit() else 0
        self.store.index.refresh(meta.key, now, now + ttl, origin_age)
        self.store.forget_hot(meta.key)
        return replace(meta, stored_at=now, expires_at=now + ttl, origin_age=origin_age)

    # --- renditions ------------------------------------------------------------------------

    def open_rendition(self, key: str, tag: str) -> Body | None:
        """The stored output of transform `tag` on object `key`, or None."""
        return self.renditions.open(key, tag)

    def store_rendition(self, key: str, tag: str, plan: Plan, source: Body) -> None:
        """Store the plan's output in the background (see Renditions)."""
        self.renditions.store_plan(key, tag, plan, source)

    async def close(self) -> None:
        """Stop running fills and renditions (their temporary files go), then close the
        index. At shutdown nobody is left to wait for them."""
        tasks = self.fills.tasks
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self.store.close()


def _shared(
    tasks: dict[str, asyncio.Task[T]], key: str, ask: Callable[[], Coroutine[object, object, T]]
) -> asyncio.Task[T]:
    """The running task for `key` in `tasks`, or a new one of `ask()`: concurrent requests
    share it, and it is a task of its own, so a client that goes away does not cancel it
    for the others."""
    pending = tasks.get(key)
    if pending is None:
        pending = asyncio.get_running_loop().create_task(ask())
        tasks[key] = pending
        pending.add_done_callback(lambda _done: tasks.pop(key, None))
    return pending


def _conditions(meta: ObjectMeta) -> dict[str, str]:
    """The conditional headers asking the origin whether `meta`'s version still stands."""
    found = {}
    if meta.etag:
        found["If-None-Match"] = meta.etag
    if meta.last_modified:
        found["If-Modified-Since"] = meta.last_modified
    return found
