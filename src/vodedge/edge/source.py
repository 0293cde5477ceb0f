"""The source stage: an object's bytes from the cache or its origins.

`OriginSet` fetches one object from a domain's origins in priority order
(failover, ranged reads validated against the fill's version); `SourceReader`
answers the media parsers' reads from the cached file, or from the origin when
they are far ahead of a running fill (a tail moov).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path

from vodedge.config import Domain, OriginSpec
from vodedge.config.limits import NodeLimits
from vodedge.edge import metrics
from vodedge.edge.cache import Body
from vodedge.edge.cache_index import CacheIndex, ObjectMeta
from vodedge.edge.cache_store import try_lock
from vodedge.edge.origin import DirectoryOrigin, HttpOrigin, Origin, OriginError, OriginResponse
from vodedge.edge.parent_tier import ParentAccess, ParentSource

# Reads this far past what a fill has written go to the origin as ranged requests
# (a tail moov), instead of waiting for the fill to get there.
FAR_READ = 1 << 20
RANGE_WINDOW = 256 << 10
# A far read this close to the end fetches everything to the end.
TAIL_WINDOW = 8 << 20


def origin_of(spec: OriginSpec, limits: NodeLimits) -> Origin:
    """The client for one configured origin."""
    if spec.directory is not None:
        return DirectoryOrigin(spec.directory)
    assert spec.url is not None  # an HTTP origin always has one
    return HttpOrigin(
        spec.url,
        connect_timeout=limits.origin_connect_timeout,
        read_timeout=limits.origin_read_timeout,
        deadline=limits.origin_deadline,
    )


class OriginPool:
    """The origin clients of a worker, created once per configured origin and kept."""

    def __init__(self, limits: NodeLimits | None = None) -> None:
        self.limits = limits or NodeLimits()
        # Shared with the other workers once the cache's index is known (share_notes).
        self.notes = OriginNotes()
        self._clients: dict[tuple[str, OriginSpec], Origin] = {}

    def origin_set(
        self,
        domain: Domain,
        host: str,
        path: str,
        query: str,
        parents: ParentAccess | None = None,
    ) -> OriginSet:
        """Where `path?query` of `domain` is fetched from, for a client that asked `host`.

        Origins of kind vodedge (parents) are asked as `parents` says, with the client's
        Host; without `parents` (a parent node, or a child's source request) they are
        left out.
        """
        origins: list[tuple[Origin, str]] = []
        for spec in sorted(domain.origins, key=lambda s: s.priority):
            if spec.kind == "vodedge" and parents is None:
                continue
            key = (domain.name, spec)  # frozen, so hashable: no repr per request
            if key not in self._clients:
                self._clients[key] = origin_of(spec, self.limits)
            if spec.kind == "vodedge" and parents is not None:
                origins.append((ParentSource(self._clients[key], parents), host))
                continue
            origins.append((self._clients[key], domain.origin_host_for(spec, host)))
        return OriginSet(origins, path, query, domain.name, self.notes)

    def share_notes(self, index: CacheIndex) -> None:
        """Keep what is learned of origins in `index`, where every worker reads it."""
        self.notes.index = index

    async def close(self) -> None:
        """Release every client's connections."""
        for origin in self._clients.values():
            await origin.close()


# What an origin was seen doing is remembered this long, then it is asked for ranges
# again (it may have been fixed, or moved behind another server).
NOTE_SECONDS = 600.0
# How often a worker reads what the others noted.
NOTES_REFRESH = 1.0
# Kinds of note: answers a Range request with the whole object (later cold objects of
# that origin are filled whole, unless the range function says force); answers a
# request for several ranges with the whole object (asked one range at a time).
IGNORES_RANGES = "ignores_ranges"
SINGLE_RANGES_ONLY = "single_ranges_only"


class OriginNotes:
    """What the workers learned about origins (by domain and address), shared through
    the cache index and forgotten after NOTE_SECONDS; read from it at most once per
    NOTES_REFRESH (asked on every request), kept in this worker alone without one."""

    def __init__(self, index: CacheIndex | None = None) -> None:
        self.index = index
        self._known: dict[tuple[str, str], float] = {}
        self._read = 0.0

    def holds(self, origin: str, kind: str) -> bool:
        """Whether `origin` was seen doing `kind` within NOTE_SECONDS."""
        now = time.time()
        if self.index is not None and now - self._read >= NOTES_REFRESH:
            self._read = now
            with contextlib.suppress(sqlite3.Error):
                self._known = self.index.origin_notes(now)
        until = self._known.get((origin, kind))
        return until is not None and until > now

    def note(self, origin: str, kind: str) -> None:
        """Remember that `origin` does `kind` (for every worker, if they share an index)."""
        until = time.time() + NOTE_SECONDS
        self._known[origin, kind] = until
        if self.index is not None:
            with contextlib.suppress(sqlite3.Error):  # a full disk: this worker knows
                self.index.note_origin(origin, kind, until)


class OriginSet:
    """Fetches one object from a domain's origins, failing over in priority order."""

    def __init__(
        self,
        origins: list[tuple[Origin, str]],
        path: str,
        query: str,
        domain: str,
        notes: OriginNotes | None = None,
    ) -> None:
        self.origins = origins
        self.path = path
        self.query = query
        self.domain = domain
        self.notes = OriginNotes() if notes is None else notes
        self._key: str | None = None

    async def __call__(self, validators: Mapping[str, str] | None) -> OriginResponse:
        last = OriginError(502, "no_origin", "the domain has no origin this node fetches from")
        for origin, host in self.origins:
            started = time.monotonic()
            try:
                response = await origin.fetch(
                    self.path, self.query, host=host, validators=validators
                )
            except OriginError as exc:
                last = exc
                continue
            metrics.ORIGIN_SECONDS.labels(self.domain).observe(time.monotonic() - started)
            return response
        raise last

    async def open_range(self, start: int, end: int, meta: ObjectMeta) -> OriginResponse:
        """A response streaming bytes `[start, end)` of the object version `meta` describes;
        origins are tried in priority order, like the fill's own request.

        The version is checked as If-Range would: the same length and the same ETag or
        Last-Modified. An origin whose ETag differs per response (servers behind a
        balancer) passes on its Last-Modified; If-Range asks it to send the whole object
        (refused here) rather than bytes of another version.
        """
        response: OriginResponse | None = None
        last = OriginError(502, "no_origin", "the domain has no origin")
        condition = _if_range(meta)
        for origin, host in self.origins:
            try:
                response = await origin.fetch(
                    self.path, self.query, host=host, byte_range=(start, end), validators=condition
                )
            except OriginError as exc:
                last = exc
                continue
            break
        if response is None:
            raise last
        problem = _range_problem(response, start, end, meta)
        if problem is not None:
            await response.aclose()
            raise problem
        return response

    async def fetch_range(self, start: int, end: int, meta: ObjectMeta) -> OriginResponse:
        """The first origin's answer (in priority order) to a Range request for bytes
        `[start, end)` of `meta`'s version, sent with If-Range; unchecked (see
        cache_sparse)."""
        return await self._ranged_fetch((start, end), _if_range(meta))

    async def fetch_ranges(self, ranges: list[tuple[int, int]], meta: ObjectMeta) -> OriginResponse:
        """The answer to one request for several ranges of `meta`'s version (with
        If-Range), unchecked: multipart/byteranges, or what the origin made of it."""
        spec = ",".join(f"{start}-{end - 1}" for start, end in ranges)
        return await self._ranged_fetch(None, {"Range": f"bytes={spec}", **(_if_range(meta) or {})})

    def single_ranges_only(self) -> bool:
        """Whether this domain's first origin answered several ranges with a 200."""
        return self.notes.holds(self._origin_key(), SINGLE_RANGES_ONLY)

    def note_single_ranges_only(self) -> None:
        """Remember that the first origin sends one range at a time."""
        self.notes.note(self._origin_key(), SINGLE_RANGES_ONLY)

    async def first_range(self, header: str) -> OriginResponse:
        """The answer to an unconditional request with this Range header (an object's
        first), unchecked."""
        return await self._ranged_fetch(None, {"Range": header})

    async def conditional_range(self, headers: dict[str, str]) -> OriginResponse:
        """The answer to a request with these Range and conditional headers (a stale
        sparse object's revalidation), unchecked."""
        return await self._ranged_fetch(None, headers)

    async def _ranged_fetch(
        self, byte_range: tuple[int, int] | None, headers: dict[str, str] | None
    ) -> OriginResponse:
        last = OriginError(502, "no_origin", "the domain has no origin")
        for origin, host in self.origins:
            started = time.monotonic()
            try:
                response = await origin.fetch(
                    self.path, self.query, host=host, byte_range=byte_range, validators=headers
                )
            except OriginError as exc:
                last = exc
                continue
            metrics.ORIGIN_SECONDS.labels(self.domain).observe(time.monotonic() - started)
            return response
        raise last

    def _origin_key(self) -> str:
        # Asked on every request of a domain with ranges on (the set is kept per resolved
        # request): made once.
        if self._key is None:
            origin = self.origins[0][0] if self.origins else None
            where = getattr(origin, "base_url", None) or getattr(origin, "root", "")
            self._key = f"{self.domain}|{where}"
        return self._key

    def ignores_ranges(self) -> bool:
        """Whether this domain's first origin answered a Range request with a 200."""
        return self.notes.holds(self._origin_key(), IGNORES_RANGES)

    def note_ignores_ranges(self) -> None:
        """Remember that the first origin answers Range with a 200."""
        self.notes.note(self._origin_key(), IGNORES_RANGES)

    async def ranged(self, start: int, end: int, meta: ObjectMeta) -> bytes:
        """Bytes `[start, end)` of the object version `meta` describes."""
        response = await self.open_range(start, end, meta)
        try:
            parts = [chunk async for chunk in response.body]
        finally:
            await response.aclose()
        data = b"".join(parts)
        if len(data) != end - start:
            raise OriginError(502, "origin_range", f"a range request got {len(data)} bytes")
        return data


def _if_range(meta: ObjectMeta) -> dict[str, str] | None:
    """If-Range for a version: its date when it has one (an ETag may differ per server
    of one origin), else a strong ETag."""
    if meta.last_modified:
        return {"If-Range": meta.last_modified}
    if meta.etag and not meta.etag.startswith("W/"):
        return {"If-Range": meta.etag}
    return None


def _range_problem(
    response: OriginResponse, start: int, end: int, meta: ObjectMeta
) -> OriginError | None:
    """Why a ranged response is not bytes `[start, end)` of `meta`'s version, or None."""
    content_range = response.headers.get("Content-Range", "")
    if response.status != 206 or not content_range.startswith(f"bytes {start}-{end - 1}/"):
        return OriginError(502, "origin_range", f"a range request got {response.status}")
    total = content_range.rpartition("/")[2]
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    same_length = meta.size < 0 or total == str(meta.size)
    if meta.etag is None and meta.last_modified is None:
        same_version = True  # nothing to tell versions apart by but the length
    else:
        same_version = (meta.etag is not None and etag == meta.etag) or (
            meta.last_modified is not None and modified == meta.last_modified
        )
    if not (same_length and same_version):
        return OriginError(502, "origin_changed", "the object changed during the fill")
    return None


class RangeWindows:
    """Ranged reads of objects' far parts (a tail moov) shared by a worker's requests:
    cold requests for one object make one ranged origin request, not one each."""

    def __init__(self, budget: int = 64 << 20) -> None:
        self.budget = budget
        self._windows: OrderedDict[tuple[str, int, int], asyncio.Task[bytes]] = OrderedDict()
        self._bytes = 0

    def _covering(
        self, version: str, start: int, end: int
    ) -> tuple[int, asyncio.Task[bytes]] | None:
        for (owner, first, last), task in reversed(self._windows.items()):
            if owner == version and first <= start and end <= last:
                if task.done() and (task.cancelled() or task.exception() is not None):
                    continue
                self._windows.move_to_end((owner, first, last))
                return first, task
        return None

    async def read(
        self, version: str, start: int, end: int, fetch: Callable[[], Coroutine[None, None, bytes]]
    ) -> tuple[int, bytes]:
        """A window holding bytes `[start, end)` of `version`: where it starts, its bytes."""
        found = self._covering(version, start, end)
        if found is None:
            # A task of its own: a client that goes away must not cancel it for the others.
            task = asyncio.get_running_loop().create_task(fetch())
            key = (version, start, end)
            self._windows[key] = task
            task.add_done_callback(lambda done: self._settle(key, done))
            found = start, task
        first, task = found
        return first, await asyncio.shield(task)

    def _settle(self, key: tuple[str, int, int], task: asyncio.Task[bytes]) -> None:
        if task.cancelled() or task.exception() is not None:
            if self._windows.get(key) is task:
                del self._windows[key]
            return
        self._bytes += len(task.result())
        while self._bytes > self.budget and len(self._windows) > 1:
            _, oldest = self._windows.popitem(last=False)
            if oldest.done() and not oldest.cancelled() and oldest.exception() is None:
                self._bytes -= len(oldest.result())


# One per worker process.
WINDOWS = RangeWindows()
WINDOW_POLL = 0.005
WINDOW_WAIT = 30.0


def _read_window(path: Path, length: int) -> bytes | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if len(data) == length else None


async def shared_window(
    part: Path, start: int, end: int, ranged: Coroutine[None, None, bytes]
) -> bytes:
    """Bytes `[start, end)` of the object a fill writes to `part`, fetched by one worker
    for all: the first writes them beside the fill's file (removed with it), the others
    wait for that file."""
    name = f"{part.name.removesuffix('.part')}.w{start}-{end}"
    window = part.parent / name
    lock = part.parent.parent / "locks" / f"{name}.lock"
    deadline = time.monotonic() + WINDOW_WAIT
    try:
        while True:
            data = _read_window(window, end - start)
            if data is not None:
                return data
            with try_lock(lock) as held:
                if held:
                    data = _read_window(window, end - start)
                    if data is None:
                        data = await ranged
                        _write_window(window, data)
                    return data
            if time.monotonic() > deadline:
                return await ranged
            await asyncio.sleep(WINDOW_POLL)
    finally:
        ranged.close()  # never awaited when another worker's window served


def _write_window(window: Path, data: bytes) -> None:
    staging = window.with_name(window.name + ".writing")
    try:
        staging.write_bytes(data)
        os.replace(staging, window)
    except OSError:
        staging.unlink(missing_ok=True)  # a full disk: the others fetch for themselves


class SourceReader:
    """Reads for the media parsers: from disk, or from the origin when far ahead of a fill.

    A ranged read the origin cannot answer for this version (it changed, or ignores
    Range) falls back to waiting for the fill: the fill others read is never discarded.
    """

    def __init__(self, body: Body, fetcher: OriginSet) -> None:
        self.body = body
        self.fetcher = fetcher
        self.window_start = 0
        self.window = b""
        self.ranged = True

    async def __call__(self, offset: int, length: int) -> bytes:
        body = self.body
        if body.sparse is not None:
            return await body.read_at(offset, length)
        size = body.size
        if body.complete or size is None or not body.meta.ranges or not self.ranged:
            return await body.read_at(offset, length)
        if offset + length <= body.available or offset < body.available + FAR_READ:
            return await body.read_at(offset, length)
        end = min(offset + length, size)
        if not (self.window_start <= offset and end <= self.window_start + len(self.window)):
            # Near the end, the window runs to the end: a tail moov is read in one request.
            fetch_end = size if size - offset <= TAIL_WINDOW else offset + RANGE_WINDOW
            fetch_end = min(max(end, fetch_end), size)
            meta = body.meta

            async def fetch() -> bytes:
                ranged = self.fetcher.ranged(offset, fetch_end, meta)
                part = body.progress.path if body.progress is not None else None
                if part is None or not part.name.endswith(".part"):
                    return await ranged
                return await shared_window(part, offset, fetch_end, ranged)

            try:
                self.window_start, self.window = await WINDOWS.read(
                    body.version, offset, fetch_end, fetch
                )
            except OriginError as exc:
                if exc.code not in ("origin_changed", "origin_range"):
                    raise
                self.ranged = False
                return await body.read_at(offset, length)
        at = offset - self.window_start
        return self.window[at : at + (end - offset)]
