"""Sparse objects: a cached object held as some byte ranges of its origin's object, the
others fetched with Range requests when a reader needs them and written in place.

An object is a file of its full length (holes where nothing was fetched) and an extent
map in the index, tied to the version its first ranged response named (ETag,
Last-Modified, total length). Bytes are written, made durable, and only then recorded
as an extent: kill -9 (or a power cut) at any moment leaves extents that hold what they
claim. Fetches of one process are shared by its readers; across processes a range is
claimed with an OFD lock on those bytes of the file, so two workers never fetch (or
tear) the same bytes, and a claim dies with its process. Every ranged response is
checked (206, its Content-Range, the version); a changed object drops all its extents.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import sqlite3
import struct
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import NoReturn, Protocol

from vodedge.config import TtlRule
from vodedge.edge.byteranges import BadByteRanges, ByteRanges, OtherTotal, boundary_of
from vodedge.edge.cache_fill import meta_from
from vodedge.edge.cache_index import Entry, ObjectMeta
from vodedge.edge.cache_store import Store, readers_lock
from vodedge.edge.extents import (
    Extent,
    coalesced,
    covered,
    merge_in,
    merged,
    missing,
    run_end,
    split,
)
from vodedge.edge.freshness import storable, ttl_for
from vodedge.edge.origin import OriginError, OriginResponse

# Neighbouring ranges closer than this are fetched as one: a gap costs its bytes, a
# range of its own costs its part headers (about 100 bytes) or a request. Audio chunks
# sit either next to each other or a video frame apart (kilobytes): see README.
GAP = 512
# Ranges asked for in one request (multipart/byteranges): the Range header stays
# within 8 kB, the size nginx and most servers accept.
MAX_PARTS = 300
# The most one ranged request asks for: a reader that goes away leaves at most a few
# of these in flight, and other workers can claim the rest.
SEGMENT = 8 << 20
# Fetches are started this far ahead of where a reader is.
AHEAD = 16 << 20
# A running fetch records (and makes durable) what it wrote this often.
RECORD_STEP = 4 << 20
# A parser's read of a few bytes (a box header) fetches at least this many.
READ_AHEAD = 64 << 10
# Ranged requests of one worker to one domain's origins at once.
PARALLEL = 4
# A fetch interrupted mid-body is resumed this many times.
RETRIES = 2
# Waiting for another worker's claim: how often its progress is read, and for how long.
POLL = 0.01
CLAIM_WAIT = 120.0
# fdatasync before an extent is recorded: what a power cut needs (kill -9 needs only
# the order: data written, then recorded). Measured in README "The cache".
SYNC = True

_F_WRLCK, _F_UNLCK = 1, 2
_F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


class RangeSource(Protocol):
    """Where a sparse object's missing bytes come from (edge.source.OriginSet)."""

    domain: str

    async def fetch_range(self, start: int, end: int, meta: ObjectMeta) -> OriginResponse:
        """The origin's answer to a Range request for `[start, end)` of `meta`'s version."""
        ...

    async def fetch_ranges(self, ranges: list[Extent], meta: ObjectMeta) -> OriginResponse:
        """The origin's answer to one request for several ranges of `meta`'s version."""
        ...

    def single_ranges_only(self) -> bool:
        """Whether the origin was seen answering several ranges with the whole object."""
        ...

    def note_single_ranges_only(self) -> None:
        """Remember that the origin cannot send several ranges in one response."""
        ...

    def ignores_ranges(self) -> bool:
        """Whether the origin was seen answering a Range request with the whole object."""
        ...

    def note_ignores_ranges(self) -> None:
        """Remember that the origin answers Range requests with the whole object."""
        ...


_SLOTS: dict[str, asyncio.Semaphore] = {}


def _slots(domain: str) -> asyncio.Semaphore:
    slots = _SLOTS.get(domain)
    if slots is None:
        slots = _SLOTS[domain] = asyncio.Semaphore(PARALLEL)
    return slots


def _lock(fd: int, kind: int, start: int, end: int) -> bool:
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, start, end - start, 0)
    try:
        fcntl.fcntl(fd, _F_OFD_SETLK, request)
    except OSError:
        return False
    return True


def claim(fd: int, start: int, end: int) -> bool:
    """Claim bytes `[start, end)` of the file for this process's fetch, if no other
    process holds any of them (released by `unclaim` or when the descriptor closes)."""
    return _lock(fd, _F_WRLCK, start, end)


def unclaim(fd: int, start: int, end: int) -> None:
    """Release a claim."""
    _lock(fd, _F_UNLCK, start, end)


def content_range(response: OriginResponse) -> tuple[int, int, int] | None:
    """A 206's `[start, end)` and total length, None when it names no complete one."""
    found = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", "").strip())
    if found is None:
        return None
    first, last, total = (int(g) for g in found.groups())
    if last < first or last >= total:
        return None
    return first, last + 1, total


def same_version(response: OriginResponse, meta: ObjectMeta) -> bool:
    """Whether the response's validators name `meta`'s version (as If-Range compares:
    the ETag, or the date for origins whose ETag differs per server)."""
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    if meta.etag is None and meta.last_modified is None:
        return False  # nothing tells versions apart: never combined
    return (meta.etag is not None and etag == meta.etag) or (
        meta.last_modified is not None and modified == meta.last_modified
    )


@dataclass
class Fetch:
    """Byte ranges being fetched by this process (in order); `[at, position)` written
    of the one arriving now."""

    ranges: list[Extent]
    at: int = 0
    position: int = 0
    # Parts of a multipart answer written (readable here) but not yet recorded.
    written: list[Extent] = field(default_factory=list)
    done: bool = False
    error: Exception | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    # Set once an origin response was found to be of this version (or the fetch ended).
    checked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def covers(self, offset: int) -> bool:
        """Whether the byte at `offset` is one this fetch gets."""
        return any(start <= offset < end for start, end in self.ranges)

    def overlaps(self, ranges: list[Extent]) -> bool:
        """Whether any of `ranges` overlaps this fetch's."""
        return any(s < e2 and s2 < e for s, e in self.ranges for s2, e2 in ranges)


def batches(ranges: list[Extent]) -> list[list[Extent]]:
    """Ranges grouped into requests: at most MAX_PARTS ranges and SEGMENT bytes each."""
    out: list[list[Extent]] = []
    size = 0
    for start, end in ranges:
        if not out or len(out[-1]) >= MAX_PARTS or size + end - start > SEGMENT:
            out.append([])
            size = 0
        out[-1].append((start, end))
        size += end - start
    return out


class SparseObject:
    """One sparse object version in this process: its file, extents and fetches."""

    def __init__(self, store: Store, entry: Entry, fd: int | None = None) -> None:
        self.store = store
        self.entry = entry
        self.meta = entry.meta
        self.size = entry.meta.size
        # Written and claimed through this descriptor (claims belong to it).
        self.fd = os.open(entry.file, os.O_RDWR) if fd is None else fd
        # Held until closed, and taken before the extents are read: no trim (partial
        # eviction) takes away an extent this process may read (see cache_store._trim).
        try:
            readers_lock(self.fd, fcntl.F_RDLCK, wait=True)
        except OSError:
            os.close(self.fd)
            raise
        self.extents: list[Extent] = store.index.extents(entry.file)
        self._seen = covered(self.extents)  # the index's count of present bytes, last read
        self.fetches: list[Fetch] = []
        self.failed: list[Fetch] = []
        self.error: OriginError | None = None
        # Readers and running fetches; at 0 the registry closes the object.
        self.users = 0
        self.idle: Callable[[SparseObject], None] | None = None
        self.recorded = True  # False once the row no longer names this file
        self._changed = asyncio.Event()

    # --- what is present -------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """True when every byte is on disk (merged extents: one, the whole object)."""
        return self.extents == [(0, self.size)] or self.size == 0

    def present_end(self, offset: int) -> int:
        """Where the bytes readable now from `offset` end (`offset`: none are)."""
        end = run_end(self.extents, offset)
        moved = True
        while moved:
            moved = False
            for fetch in self.fetches:
                if fetch.at <= end < fetch.position:
                    end = run_end(self.extents, fetch.position)
                    moved = True
                further = run_end(fetch.written, end)
                if further > end:
                    end = run_end(self.extents, further)
                    moved = True
        return min(end, self.size)

    def reload(self) -> None:
        """Read the extents other processes recorded."""
        if not self.recorded:
            return
        present = self.store.index.present(self.entry)
        if present is None or present == self._seen:
            return  # nothing recorded since the last look
        self._seen = present
        found = self.store.index.extents(self.entry.file)
        if found != self.extents:
            self.extents = merged([*self.extents, *found])
            self.notify()

    def notify(self) -> None:
        """Wake every waiter; they re-check."""
        self._changed.set()
        self._changed = asyncio.Event()

    def absent(self, ranges: Iterable[Extent]) -> list[Extent]:
        """The parts of `ranges` (in order) neither present nor being fetched here."""
        # The extents (thousands for an audio track's chunks) are already merged: only
        # the running fetches' ranges are merged here, each call.
        busy = merged(r for f in self.fetches for r in f.ranges)
        return [
            gap
            for s, e in ranges
            for absent in missing(self.extents, s, min(e, self.size))
            for gap in missing(busy, *absent)
        ]

    # --- fetching --------------------------------------------------------------------

    def want(self, source: RangeSource, ranges: Iterable[Extent]) -> None:
        """Start fetching what of `ranges` (in order) is absent: neighbours coalesced,
        several ranges to a request."""
        gaps = split(coalesced(self.absent(ranges), GAP), SEGMENT)
        for batch in batches(gaps):
            self.start(source, batch)

    def start(self, source: RangeSource, ranges: list[Extent]) -> Fetch:
        """Fetch `ranges` in the background (a reader going away does not stop it)."""
        self.failed = [f for f in self.failed if not f.overlaps(ranges)]
        fetch = Fetch(ranges, ranges[0][0], ranges[0][0])
        self.fetches.append(fetch)
        self.users += 1
        fetch.task = asyncio.get_running_loop().create_task(self._run(source, fetch))
        return fetch

    def adopt(self, source: RangeSource, start: int, end: int, response: OriginResponse) -> None:
        """Write a first ranged response, already checked and claimed, in the background."""
        fetch = Fetch([(start, end)], start, start)
        fetch.checked.set()  # the first request's answer was checked before its object was
        self.fetches.append(fetch)
        self.users += 1
        fetch.task = asyncio.get_running_loop().create_task(
            self._run(source, fetch, response=response)
        )

    async def _run(
        self, source: RangeSource, fetch: Fetch, response: OriginResponse | None = None
    ) -> None:
        try:
            if response is not None:
                ((start, end),) = fetch.ranges
                try:
                    await self._write_body(fetch, response, start, end)
                except OriginError:
                    pass  # resumed below, as any interrupted fetch
                finally:
                    unclaim(self.fd, start, end)
            async with _slots(source.domain):
                await self._fill(source, fetch)
        except Exception as exc:
            fetch.error = exc
            self.failed.append(fetch)
            del self.failed[:-64]
        finally:
            fetch.done = True
            fetch.checked.set()
            self.fetches.remove(fetch)
            self.notify()
            self.release()

    def release(self) -> None:
        """A reader or fetch is done; the last one closes the object."""
        self.users -= 1
        if self.users <= 0 and self.idle is not None:
            self.idle(self)

    async def _fill(self, source: RangeSource, fetch: Fetch) -> None:
        """Fetch what is still missing of the fetch's ranges, claim by claim."""
        deadline = time.monotonic() + CLAIM_WAIT
        failures = 0
        while True:
            if self.error is not None:
                raise self.error
            self.reload()
            gaps = [gap for s, e in fetch.ranges for gap in missing(self.extents, s, e)]
            if not gaps:
                return
            mine = [gap for gap in gaps if claim(self.fd, *gap)]
            if not mine:
                fetch.checked.set()  # another worker checked its own response
                # Another worker fetches these bytes: follow its extents.
                if time.monotonic() > deadline:
                    raise OriginError(504, "fill_timeout", "another worker's fetch stalled")
                await asyncio.sleep(POLL)
                continue
            try:
                await self._download(source, fetch, mine)
                if any(missing(self.extents, s, e) for s, e in mine):
                    raise OriginError(502, "origin_range", "the origin left out ranges asked for")
            except OriginError as exc:
                failures += 1
                if exc.code == "origin_changed" or failures > RETRIES:
                    raise
            finally:
                for gap in mine:
                    unclaim(self.fd, *gap)

    async def _download(self, source: RangeSource, fetch: Fetch, ranges: list[Extent]) -> None:
        """One request for `ranges` (several: multipart/byteranges), written in place."""
        if not self.store.reserve_ranges(self.fd, ranges, self.meta.key):
            raise OriginError(503, "no_room", "no room in the cache for these bytes")
        several = len(ranges) > 1
        if several and source.single_ranges_only():
            for one in ranges:
                await self._download(source, fetch, [one])
            return
        start, end = ranges[0]
        if several:
            response = await source.fetch_ranges(ranges, self.meta)
        else:
            response = await source.fetch_range(start, end, self.meta)
        try:
            if response.status == 200 and same_version(response, self.meta):
                if response.length not in (None, self.size):
                    self._changed_version()
                if several:
                    # Several ranges answered with the whole object: never again.
                    source.note_single_ranges_only()
                    await response.aclose()
                    for one in ranges:
                        await self._download(source, fetch, [one])
                    return
                # The origin ignores Range: its body is the whole object, written as such.
                source.note_ignores_ranges()
                fetch.checked.set()
                await self._write_body(fetch, response, 0, self.size)
                return
            if response.status in (200, 412, 416):
                self._changed_version()  # another version (If-Range), or a shorter object
            if response.status != 206:
                raise OriginError(502, "origin_status", f"the origin answered {response.status}")
            if not same_version(response, self.meta):
                self._changed_version()
            boundary = boundary_of(response.headers.get("Content-Type", ""))
            if boundary is not None and several:
                fetch.checked.set()
                await self._write_parts(fetch, response, ByteRanges(boundary, self.size))
                return
            found = content_range(response)
            if found is None:
                raise OriginError(502, "origin_range", "a range came without Content-Range")
            if found[2] != self.size:
                self._changed_version()
            # One range for several: a server may join them (RFC 9110), never move them.
            if found[:2] != (start, end) and not (
                several and start <= found[0] < found[1] <= ranges[-1][1]
            ):
                message = f"asked for bytes {start}-{end - 1}, got {found[0]}-{found[1] - 1}"
                raise OriginError(502, "origin_range", message)
            fetch.checked.set()
            await self._write_body(fetch, response, found[0], found[1])
        finally:
            await response.aclose()

    async def _write_parts(self, fetch: Fetch, response: OriginResponse, parts: ByteRanges) -> None:
        """Write a multipart/byteranges body's parts in place, recording them in batches."""
        pending: list[Extent] = []
        waiting = 0
        try:
            async for chunk in response.body:
                if self.error is not None:
                    raise self.error
                try:
                    pieces = parts.feed(chunk)
                except OtherTotal:
                    self._changed_version()  # another length: another version
                except BadByteRanges as exc:
                    raise OriginError(502, "origin_range", f"a bad multipart body: {exc}") from None
                for offset, data in pieces:
                    view = memoryview(data)
                    position = offset
                    while view:
                        done = os.pwrite(self.fd, view, position)
                        view = view[done:]
                        position += done
                    if offset != fetch.position:
                        fetch.at = offset
                    fetch.position = position
                    # Readable here at once; recorded (for other workers) once durable.
                    pending.append((offset, position))
                    fetch.written.append((offset, position))
                    waiting += position - offset
                if pieces:
                    self.notify()
                if waiting >= RECORD_STEP:
                    await self.record(pending)
                    pending, waiting = [], 0
            try:
                parts.close()
            except BadByteRanges as exc:
                raise OriginError(
                    502, "origin_short", f"a multipart body cut short: {exc}"
                ) from None
        finally:
            if pending and self.error is None:
                await self.record(pending)

    def _changed_version(self) -> NoReturn:
        """The origin holds another version now: every extent of this one goes."""
        error = OriginError(502, "origin_changed", "the object changed at the origin")
        self.drop(error)
        raise error

    def drop(self, error: OriginError) -> None:
        """Forget this version (its row, file and extents); readers get `error`."""
        self.error = error
        with contextlib.suppress(Exception):
            self.store.index.delete_entry(self.entry)
        self.store.forget_hot(self.meta.key)
        self.entry.file.unlink(missing_ok=True)
        self.recorded = False
        self.notify()

    async def _write_body(
        self, fetch: Fetch, response: OriginResponse, start: int, end: int
    ) -> None:
        """Write a checked response's body at `start`, recording extents as it goes."""
        fetch.at = fetch.position = position = recorded = start
        try:
            async for chunk in response.body:
                if self.error is not None:
                    raise self.error
                view = memoryview(chunk)[: end - position]
                while view:
                    done = os.pwrite(self.fd, view, position)
                    view = view[done:]
                    position += done
                fetch.position = position
                self.notify()
                if position - recorded >= RECORD_STEP:
                    await self.record([(recorded, position)])
                    recorded = position
                if position >= end:
                    break
        finally:
            if position > recorded and self.error is None:
                await self.record([(recorded, position)])
        if position < end:
            raise OriginError(502, "origin_short", "the origin's range ended early")

    async def record(self, written: list[Extent]) -> None:
        """Make the written ranges durable, then record them as extents."""
        if SYNC:
            await asyncio.to_thread(os.fdatasync, self.fd)  # not on the event loop
        self.extents = merge_in(self.extents, merged(written))
        if self.recorded:
            disk = os.fstat(self.fd).st_blocks * 512
            present = self.store.index.add_extents(self.entry, written, disk)
            if present is None:
                self.recorded = False  # replaced, purged or evicted: served, not kept
            elif present == self._seen + sum(end - start for start, end in written):
                self._seen = present  # nobody else recorded meanwhile
            self.store.forget_hot(self.meta.key)
        self.notify()

    # --- waiting ---------------------------------------------------------------------

    async def wait_run(self, source: RangeSource, offset: int, end: int) -> int:
        """Wait until bytes at `offset` are on disk (fetching them if nobody does); where
        their run ends, at most `end`."""
        if offset >= self.size:
            raise OriginError(502, "origin_short", "a read past the object's end")
        while True:
            if self.error is not None:
                raise self.error
            stop = self.present_end(offset)
            if stop > offset:
                return min(stop, end)
            if not any(f.covers(offset) for f in self.fetches):
                failed = next((f for f in self.failed if f.covers(offset)), None)
                if failed is not None and failed.error is not None:
                    raise failed.error
                self.want(source, [(offset, max(end, offset + READ_AHEAD))])
                continue
            await self._changed.wait()

    async def verify(self, source: RangeSource, ranges: Iterable[Extent]) -> None:
        """Before a response's headers go: fetch the first absent bytes of `ranges` and
        wait until the origin's answer is known to be this version (OriginError when
        the object changed, so the request can start again)."""
        for start, end in ranges:
            gaps = missing(self.extents, start, min(end, self.size))
            if not gaps:
                continue
            first = gaps[0][0]
            self.want(source, [(first, min(gaps[0][1], first + SEGMENT))])
            fetch = next((f for f in self.fetches if f.covers(first)), None)
            if fetch is not None:
                await fetch.checked.wait()
            else:  # it may have failed already
                fetch = next((f for f in self.failed if f.covers(first)), None)
            if fetch is not None and fetch.error is not None:
                raise fetch.error
            if self.error is not None:
                raise self.error
            return

    async def ensure(self, source: RangeSource, start: int, end: int) -> None:
        """Wait until bytes `[start, end)` are all on disk, fetching what is absent."""
        end = min(end, self.size)
        if self.present_end(start) < end and not any(f.covers(start) for f in self.fetches):
            self.want(source, [(start, end)])
        at = start
        while at < end:
            at = await self.wait_run(source, at, end)

    def close(self) -> None:
        """Release the descriptor (and with it this process's claims)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Pump:
    """One response's ranges of a sparse object, fetched in order as its reader nears
    them: up to AHEAD bytes ahead, counted in the bytes the response needs (an audio
    track's chunks are a few percent of the file: counted in file bytes, the window
    held a few requests, and the reader waited on their round trips), asked for in
    windows of at least half that (so many small ranges go in few requests); at most
    PARALLEL of them run at once."""

    def __init__(self, sparse: SparseObject, source: RangeSource, ranges: Iterable[Extent]):
        self.sparse = sparse
        self.source = source
        self.segments = split(coalesced(ranges, GAP), SEGMENT)
        self.starts = [start for start, _ in self.segments]
        # The bytes the response needs up to the end of each segment.
        self.sums = list(accumulate(end - start for start, end in self.segments))
        self.next = 0
        self.start = 0  # where the reader was when the first fetch was started

    def _needed(self, offset: int) -> int:
        """The bytes of the segments before `offset`."""
        at = bisect_right(self.starts, offset)
        if at == 0:
            return 0
        start, end = self.segments[at - 1]
        return self.sums[at - 1] - (end - start) + min(offset, end) - start

    def _within(self, index: int, offset: int, needed: int, reach: int) -> bool:
        """Whether segment `index` is less than `reach` ahead of the reader at `offset`."""
        return self.starts[index] < offset + reach or self.sums[index] - needed <= reach

    def advance(self, offset: int) -> None:
        """Start the fetches the reader at `offset` needs next: at first one request's
        worth (on a link all requests share, others would hold up its first byte), then
        the window ahead once the reader has moved."""
        segments = self.segments
        if self.next == 0 and segments:
            self.start = offset
            size = 0
            while self.next < len(segments) and self.next < MAX_PARTS and size < SEGMENT:
                size += segments[self.next][1] - segments[self.next][0]
                self.next += 1
            self.sparse.want(self.source, segments[: self.next])
            return
        if offset <= self.start or self.next >= len(segments):
            return
        needed = self._needed(offset)
        if not self._within(self.next, offset, needed, AHEAD // 2):
            return
        first = self.next
        while self.next < len(segments) and self._within(self.next, offset, needed, AHEAD):
            self.next += 1
        self.sparse.want(self.source, segments[first : self.next])


class SparseObjects:
    """The sparse objects this process reads or fills, by file."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._objects: dict[Path, SparseObject] = {}

    def open(self, entry: Entry, fd: int | None = None) -> SparseObject:
        """The object of this entry, shared by its readers (each calls `release`)."""
        found = self._objects.get(entry.file)
        if found is None or found.error is not None:
            found = self._objects[entry.file] = SparseObject(self.store, entry, fd)
            found.idle = self._closed
        else:
            found.reload()  # other workers may have added extents
            if fd is not None:
                os.close(fd)
        found.users += 1
        return found

    def _closed(self, sparse: SparseObject) -> None:
        if self._objects.get(sparse.entry.file) is sparse:
            del self._objects[sparse.entry.file]
        sparse.close()

    def __len__(self) -> int:
        return len(self._objects)


# --- the first request for an object ----------------------------------------------------

First = tuple[int, int | None]  # [start, end) or (start, None) to the end; (-n, None): the last n


def first_header(first: First) -> str:
    """The Range header asking for `first`."""
    start, end = first
    if start < 0:
        return f"bytes={start}"
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def first_bytes(first: First, total: int) -> Extent:
    """The bytes an origin holding `total` should send for `first`."""
    start, end = first
    if start < 0:
        return max(total + start, 0), total
    return start, total if end is None else min(end, total)


class FirstSource(RangeSource, Protocol):
    """What the first request for an object is sent to."""

    async def first_range(self, header: str) -> OriginResponse:
        """The origin's answer to an unconditional request with this Range header."""
        ...

    async def conditional_range(self, headers: dict[str, str]) -> OriginResponse:
        """The origin's answer to a request with these Range and conditional headers."""
        ...


@dataclass
class Contact:
    """The outcome of an object's first ranged request: a sparse object filling (`sparse`,
    for a reader), an origin answer for a whole fill to use (`response`), or neither
    (a whole fill, or another worker's object, is the way)."""

    sparse: SparseObject | None = None
    response: OriginResponse | None = None


def storable_range(response: OriginResponse, first: First, keep: bool) -> Extent | None:
    """The bytes of a first ranged response a sparse object can start from, or None."""
    found = content_range(response)
    headers = response.headers
    if found is None or not keep or headers.get("Content-Encoding", "identity") != "identity":
        return None
    etag = headers.get("ETag")
    if headers.get("Last-Modified") is None and (etag is None or etag.startswith("W/")):
        return None  # no strong validator: ranges of two versions could not be told apart
    if found[:2] != first_bytes(first, found[2]):
        return None
    return found[0], found[1]


async def first_contact(
    objects: SparseObjects, key: str, source: FirstSource, first: First, rule: TtlRule | None
) -> Contact:
    """Ask the origin for the first bytes a reader needs; a sparse object when it answers
    with them. The caller holds the object's fill lock."""
    store = objects.store
    asked = time.time()  # an expiry from here on may have missed the row: it is checked
    response = await source.first_range(first_header(first))
    if response.status == 200:
        source.note_ignores_ranges()
        return Contact(response=response)
    if response.status != 206:
        if response.status == 416:
            await response.aclose()
            return Contact()
        return Contact(response=response)
    now = time.time()
    keep = storable(response.headers, rule)
    wanted = storable_range(response, first, keep)
    found = content_range(response)
    if wanted is None or found is None:
        await response.aclose()
        return Contact()
    meta = meta_from(key, response, found[2], ttl_for(response.headers, now, rule), now)
    start, end = wanted
    digest = store.digest(key)
    final = store.final_path(key, store.temporary(digest))
    final.parent.mkdir(exist_ok=True)
    # The file is made before its row (a row must never name a file not there): a
    # creator killed in between leaves a file without a row, removed here, by the next
    # holder of the lock, or at the next start.
    fd = -1
    try:
        store.sweep(key)
        fd = os.open(final, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(fd, meta.size)
        if not store.reserve(fd, end - start, key, start) or not claim(fd, start, end):
            raise OSError("no room")
        entry = Entry(meta, final, 0)
        replaced = store.index.put(entry, os.fstat(fd).st_blocks * 512, asked)
    except BaseException as exc:
        if fd >= 0:
            os.close(fd)
            final.unlink(missing_ok=True)
        await response.aclose()
        if isinstance(exc, (OSError, sqlite3.Error)):
            return Contact()  # no room: a whole fill decides (it passes the object through)
        raise
    store.forget_hot(key)
    if replaced is not None:
        replaced.unlink(missing_ok=True)
    sparse = objects.open(entry, fd)
    sparse.adopt(source, start, end, response)
    return Contact(sparse=sparse)
