"""Stage three, plan: what the response is made of (one entry into `media` per transform)."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import mimetypes
import os
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from multidict import CIMultiDict

from vodedge.edge import metrics
from vodedge.edge.cache import Body, DiskCache
from vodedge.edge.cache_index import ObjectMeta
from vodedge.edge.deliver import (
    SMALL_BODY,
    Output,
    Piece,
    Pieces,
    bytes_pieces,
    growing_pieces,
    plan_pieces,
    upstream_pieces,
)
from vodedge.edge.driver import run_async
from vodedge.edge.http_semantics import Validators
from vodedge.edge.indexes import OFFLOAD_BYTES, FlvIndexMemo, IndexMemo
from vodedge.edge.origin import OriginError
from vodedge.edge.refusal import VIA, Refusal
from vodedge.edge.resolve import Resolved, media_refusal
from vodedge.edge.source import FAR_READ, OriginSet, SourceReader
from vodedge.edge.transforms import Transform
from vodedge.media.errors import MediaError
from vodedge.media.flv.filters import FlvFilter
from vodedge.media.flv.index import FlvIndex
from vodedge.media.flv.partial import (
    keyframe_of,
    partial_covers,
    read_head,
    read_partial_index,
    verify_start,
    wants_partial,
)
from vodedge.media.flv.seek import FlvSeek, parse_seek
from vodedge.media.mp4.index import Mp4Index
from vodedge.media.outputs import Wanted, flv_bound, plan_reading
from vodedge.media.plan import Plan, Span
from vodedge.media.plan_columns import piece_count

# Outputs of this many pieces or more are stored as renditions once built: a warm
# request then costs one sendfile, not one per audio chunk.
RENDITION_MIN_PIECES = 64
FLV_HEAD = 64 << 10
CONTENT_TYPES = {
    ("mp4", True): "audio/mp4",
    ("mp4", False): "video/mp4",
    ("flv", True): "video/x-flv",
    ("flv", False): "video/x-flv",
    ("mp3", False): "audio/mpeg",
    ("ts", False): "video/mp2t",
}

ReadAt = Callable[[int, int], Awaitable[bytes]]


@dataclass(frozen=True)
class Planner:
    """What building outputs needs beyond the request: memoised plans, renditions."""

    cache: DiskCache
    memo: PlanMemo
    indexes: IndexMemo
    max_moov: int
    flv_indexes: FlvIndexMemo


async def plan_output(
    planner: Planner, resolved: Resolved, body: Body, how: str, origins: OriginSet, *, ranged: bool
) -> tuple[Output, str]:
    """The output answering `resolved` from `body`, and the function it serves
    ("plain" when a transform fell back to the original). `ranged`: the client
    sent a Range."""
    transform = resolved.transform
    if transform is not None:
        output = await _transformed(planner, resolved, body, how, transform, origins, ranged)
        if output is not None:
            return output, transform.function
    return plain_output(resolved, body, how, origins), "plain"


def cache_headers(body: Body, how: str) -> CIMultiDict[str]:
    """The headers every response from the cache carries."""
    return _meta_headers(body.meta, how)


def plain_headers(
    meta: ObjectMeta, how: str, path: str, now: float | None = None
) -> CIMultiDict[str]:
    """The headers of an object sent as it is, its ETag included, as of `now` (None:
    now); shared: the caller copies them before it adds to them (web.Response does)."""
    age = meta.age(time.time() if now is None else now)
    made = _PLAIN.get((meta.key, how))
    if made is not None and made[0] is meta and made[1] == age and made[2] == path:
        return made[3]
    headers = _meta_headers(meta, how, now)
    headers["Content-Type"] = meta.content_type or _guessed_type(path)
    if meta.etag:
        headers["ETag"] = meta.etag  # what deliver adds from the validators, in place
    if len(_PLAIN) >= MADE_HEADERS:
        _PLAIN.clear()
    _PLAIN[(meta.key, how)] = (meta, age, path, headers)
    return headers


# The headers of an object version's responses as found one way (X-Cache) in one second
# of Age, made once: each response gets a copy to add to. _PLAIN: the same with the
# plain object's Content-Type and ETag (the 1 kB HIT's headers whole), its path kept
# because the type may be guessed from it.
_MADE: dict[tuple[str, str], tuple[ObjectMeta, int, CIMultiDict[str]]] = {}
_PLAIN: dict[tuple[str, str], tuple[ObjectMeta, int, str, CIMultiDict[str]]] = {}
MADE_HEADERS = 4096


def _meta_headers(meta: ObjectMeta, how: str, now: float | None = None) -> CIMultiDict[str]:
    age = meta.age(time.time() if now is None else now)
    made = _MADE.get((meta.key, how))
    if made is not None and made[0] is meta and made[1] == age:
        return made[2].copy()
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Via"] = VIA
    headers["X-Cache"] = how
    headers["Age"] = str(age)
    headers["Accept-Ranges"] = "bytes"
    if meta.last_modified:
        headers["Last-Modified"] = meta.last_modified
    if meta.content_encoding:
        headers["Content-Encoding"] = meta.content_encoding
    if len(_MADE) >= MADE_HEADERS:
        _MADE.clear()
    _MADE[(meta.key, how)] = (meta, age, headers)
    return headers.copy()


@functools.lru_cache(maxsize=4096)  # asked on every HIT of an object without a type
def _guessed_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "application/octet-stream"


def plain_output(resolved: Resolved, body: Body, how: str, origins: OriginSet) -> Output:
    """The object as it is (no transform)."""
    headers = plain_headers(body.meta, how, resolved.path).copy()
    size = body.size
    validators = Validators(body.meta.etag, body.meta.last_modified)
    data = body.data
    if data is not None:  # a small object's bytes from memory

        async def open_bytes(start: int, end: int | None) -> Pieces:
            return bytes_pieces(data[start:end])

        output = Output(headers, validators, size, open_bytes)
        output.whole = partial(bytes, data)  # the same object: bytes(b) is b
        return output

    async def open_plain(start: int, end: int | None) -> Pieces:
        if size is None or end is None:
            return growing_pieces(body)
        far = body.sparse is None and start >= body.available + FAR_READ
        if not body.complete and body.meta.ranges and far:
            # A player seeking in a cold file must not wait for the whole object; an
            # origin that cannot answer for this version leaves it to the fill.
            try:
                upstream = await origins.open_range(start, end, body.meta)
            except OriginError as exc:
                if exc.code not in ("origin_changed", "origin_range"):
                    raise
            else:
                return upstream_pieces(upstream, end - start)
        await body.verify([(start, end)])
        return plan_pieces(Plan([Span(0, size)]).slice(start, end), body)

    output = Output(headers, validators, size, open_plain)
    if size is not None and size <= SMALL_BODY and body.sparse is None and body.complete:
        output.whole = partial(_whole, body.fd, size)
    return output


def plain_now(resolved: Resolved, body: Body, how: str) -> Planned | None:
    """What `plain_output` sends of a complete stored file asked whole, made without
    waiting; None for any other body (growing, sparse, in memory)."""
    size = body.size
    if size is None or body.sparse is not None or not body.complete or body.data is not None:
        return None
    headers = plain_headers(body.meta, how, resolved.path).copy()
    validators = Validators(body.meta.etag, body.meta.last_modified)
    return Planned(headers, validators, Plan([Span(0, size)]), None)


def _whole(fd: int, size: int) -> bytes:
    data = os.pread(fd, size, 0)
    if len(data) != size:
        raise OSError("the cached object is shorter than its row")
    return data


def _transformed_etag(body: Body, transform: Transform) -> str:
    return transform.etag(body.meta.etag or body.version)


def _over(plan: Plan, body: Body) -> Callable[[int, int | None], Awaitable[Pieces]]:
    async def open_plan(start: int, end: int | None) -> Pieces:
        part = plan if end is None else plan.slice(start, end)
        if body.sparse is not None:  # nothing to verify in a file of our own
            await body.verify((span.offset, span.end) for span in part.spans())
        return plan_pieces(part, body)

    return open_plan


async def _transformed(
    planner: Planner,
    resolved: Resolved,
    body: Body,
    how: str,
    transform: Transform,
    origins: OriginSet,
    ranged: bool,
) -> Output | None:
    """The transform's output; None means "fall back to the original"."""
    domain = resolved.domain
    if body.meta.content_encoding:
        if domain.fallback == "passthrough":
            return None
        message = f"the origin sent this object {body.meta.content_encoding}-encoded"
        raise Refusal(415, "unsupported_media", message)
    reader: ReadAt = SourceReader(body, origins)
    started = time.monotonic()
    stored: Body | None = None
    try:
        from_part = None
        if transform.kind == "flv" and body.sparse is not None and not body.complete:
            # A cold FLV fetched as ranges: a seek reads its head and its tags from the
            # keyframe on, where the keyframes index allows (a byte seek streamed as they
            # arrive); else all of it, ahead.
            if _can_stream_flv(ranged, transform) and transform.start is not None:
                streamed = await _flv_stream_partial(body, how, transform, reader)
                if streamed is not None:
                    return streamed
            from_part = await _flv_partial(body, transform, reader)
            if from_part is None:
                size = body.size
                body.prefetch([(0, size if size is not None else FLV_HEAD)])
                reader = _Ahead(body, reader)
        if from_part is not None:
            plan, index = from_part, None
        elif transform.kind == "flv" and not body.complete and _can_stream_flv(ranged, transform):
            return await _flv_stream(body, how, transform)
        else:
            found = None
            if transform.kind == "flv" and transform.audio_only:
                found = await _flv_stored_audio(planner, resolved.key, body, transform, reader)
            if found is not None:
                (plan, stored), index = found, None
            else:
                plan, index = await plan_for(planner, resolved.key, body, transform, reader)
    except MediaError as exc:
        if domain.fallback == "passthrough" and exc.code != "invalid_seek":
            return None
        raise media_refusal(exc) from None
    metrics.observe_plan(transform.kind, time.monotonic() - started)
    headers = _transformed_headers(body, how, transform)
    validators = Validators(_transformed_etag(body, transform), body.meta.last_modified)
    output = Output(headers, validators, plan.size, _over(plan, stored or body))
    ratio = _saving(body, transform, plan)
    if ratio is not None:
        output.saving = lambda: ratio
    if stored is not None:  # planned over the stored audio already
        output.holds.append(stored)
        return output
    if (not body.complete and body.sparse is None) or piece_count(plan) < RENDITION_MIN_PIECES:
        return output  # a fill still running, or too few pieces to be worth a file
    if index is not None and transform.audio_only:
        await _read_audio_rendition(planner.cache, resolved.key, body, index, plan, output)
        return output
    seek = transform.is_clip or (transform.kind == "flv" and transform.start is not None)
    if seek and not planner.memo.asked_before(resolved.key, body.version, transform):
        # A listener dragging the progress bar asks for a new start every time:
        # writing each clip out would copy megabytes that nobody asks for again.
        return output
    cache = planner.cache
    tag = hashlib.blake2s(f"{body.version}|{transform.tag()}".encode(), digest_size=12).hexdigest()
    rendered = cache.open_rendition(resolved.key, tag)
    if rendered is None or rendered.meta.size != plan.size:
        if rendered is not None:
            rendered.close()
        if body.holds(plan):
            cache.store_rendition(resolved.key, tag, plan, body)
        return output
    output.open = _over(Plan([Span(0, plan.size)]), rendered)
    output.holds.append(rendered)
    return output


def _transformed_headers(body: Body, how: str, transform: Transform) -> CIMultiDict[str]:
    headers = cache_headers(body, how)
    headers["Content-Type"] = CONTENT_TYPES[(transform.kind, transform.audio_only)]
    return headers


def _saving(body: Body, transform: Transform, plan: Plan) -> float | None:
    """Audio extraction: source bytes not sent per byte of `plan` (None: no extraction)."""
    source_size = body.size
    if transform.audio_only and source_size and plan.size:
        return max(source_size - plan.size, 0) / plan.size
    return None


@dataclass(slots=True)
class Planned:
    """An output planned without waiting over a complete file: its headers (ETag
    included), validators, plan and saving."""

    headers: CIMultiDict[str]
    validators: Validators
    plan: Plan
    saving: float | None


def plan_now(planner: Planner, resolved: Resolved, body: Body, how: str) -> Planned | None:
    """What `plan_output` answers for an MP4 clip or an FLV seek of a complete stored
    file from the object's remembered index, made without waiting; None where only
    `plan_output` can tell (no such index, a refusal, a rendition to read or write)."""
    transform = resolved.transform
    if (
        transform is None
        or body.meta.content_encoding
        or body.sparse is not None
        or not body.complete
    ):
        return None
    started = time.monotonic()
    if transform.kind == "flv":
        plan = _flv_now(planner, resolved.key, body, transform)
    else:
        plan = _clip_now(planner, resolved.key, body, transform)
    if plan is None or piece_count(plan) >= RENDITION_MIN_PIECES:
        return None  # a rendition may be asked for (see _transformed)
    metrics.observe_plan(transform.kind, time.monotonic() - started)
    headers = _transformed_headers(body, how, transform)
    etag = _transformed_etag(body, transform)
    headers["ETag"] = etag  # what deliver adds
    validators = Validators(etag, body.meta.last_modified)
    return Planned(headers, validators, plan, _saving(body, transform, plan))


def _clip_now(planner: Planner, key: str, body: Body, transform: Transform) -> Plan | None:
    """`plan_for`'s MP4 clip from the object's finished index (None: not now)."""
    if not transform.is_clip or (transform.audio_only and transform.end is None):
        # An open-ended audio-only start is thousands of pieces (a rendition's business):
        # not planned twice.
        return None
    index = planner.indexes.peek(key, body.version)
    if index is None:
        return None
    try:
        return index.clip(
            transform.start,
            transform.end,
            audio_only=transform.audio_only,
            track_id=transform.track,
        )
    except MediaError:
        return None  # plan_output makes the same refusal (or falls back)


def _flv_now(planner: Planner, key: str, body: Body, transform: Transform) -> Plan | None:
    """`plan_for`'s FLV output with its video from the object's remembered tag index,
    remembered in the plan memo as `plan_for` does (None: not now). Audio-only outputs
    are planned over the stored audio tags or read from a rendition: the stages'."""
    if transform.audio_only:
        return None
    version = body.version
    found = planner.memo.get(key, version, transform)
    if found is not None:
        return found
    index = planner.flv_indexes.peek(key, version)
    if index is None:
        return None
    try:
        plan = index.plan(False, _flv_seek(transform))
    except MediaError:
        return None  # plan_output makes the same refusal (or falls back)
    if plan is not None:
        planner.memo.put(key, version, transform, plan)
    return plan


async def _read_audio_rendition(
    cache: DiskCache,
    key: str,
    body: Body,
    index: Mp4Index | FlvIndex,
    plan: Plan,
    output: Output,
) -> None:
    """Have an audio-only clip read the stored bytes of every audio sample (FLV: audio
    and script tag) of its object, where its thousands of spans (audio between video)
    are one or a few; the first such clip of an object version stores them."""
    audio = index.audio
    if audio is None:
        try:
            # Once per object version, and a few ms of numpy and Python: off the loop.
            loop = asyncio.get_running_loop()
            audio = await loop.run_in_executor(None, index.audio_map)
        except MediaError:
            return
    tag = _audio_samples_tag(body)
    rendered = cache.open_rendition(key, tag)
    if rendered is None or rendered.meta.size != audio.plan.size:
        if rendered is not None:
            rendered.close()
        if body.holds(audio.plan):
            cache.store_rendition(key, tag, audio.plan, body)
        return
    mapped = audio.remap(plan)
    if mapped is None:  # not a subset of the audio samples: served from the object
        rendered.close()
        return
    output.open = _over(mapped, rendered)
    output.holds.append(rendered)


def _audio_samples_tag(body: Body) -> str:
    """The rendition holding the bytes of every audio sample (FLV: audio and script tag)
    of the object version."""
    return hashlib.blake2s(f"{body.version}|audio-samples".encode(), digest_size=12).hexdigest()


async def _flv_stored_audio(
    planner: Planner, key: str, body: Body, transform: Transform, read_at: ReadAt
) -> tuple[Plan, Body] | None:
    """An audio-only FLV's plan over the object's stored audio tags, and that rendition:
    from any start a few pieces (`FlvIndex.stored_plan`), made by searches on the event
    loop; None until the first audio-only request has stored them (or when only a scan
    can plan), and the caller plans over the object."""
    if not body.final:
        return None
    rendered = planner.cache.open_rendition(key, _audio_samples_tag(body))
    if rendered is None:
        return None
    plan = None
    try:
        size = body.size
        assert size is not None  # a final body's length is known
        if body.complete or transform.end is None:
            index = await planner.flv_indexes.get(key, body.version, size, read_at, keep=True)
        else:
            index = planner.flv_indexes.peek(key, body.version)
        if index is not None and rendered.meta.size == index.audio_size:
            plan = index.stored_plan(_flv_seek(transform))
    finally:
        if plan is None:
            rendered.close()
    return None if plan is None else (plan, rendered)


@dataclass(frozen=True)
class _Ahead:
    """Reads of a sparse object that keep its prefetches ahead of the reader."""

    body: Body
    read_at: ReadAt

    async def __call__(self, offset: int, length: int) -> bytes:
        self.body.ahead(offset)
        return await self.read_at(offset, length)


async def _flv_partial(body: Body, transform: Transform, read_at: ReadAt) -> Plan | None:
    """A seek of a sparse FLV planned from its head and its tags from the seek's keyframe
    on (`media.flv.partial`), fetching only those; None when the file's keyframes index
    cannot place the seek (the caller reads the whole object)."""
    seek = _flv_seek(transform)
    size = body.size
    if size is None or not wants_partial(seek, transform.audio_only):
        return None
    head = await run_async(read_head(size), read_at)
    start = None if head is None else keyframe_of(head, seek)
    if head is None or start is None:
        return None
    # To the end, or to a byte end: fetched ahead of the scan (a time end is found by it).
    stop = size if seek.end is None else seek.end_offset
    if stop is not None:
        body.prefetch([(start, min(stop + FLV_HEAD, size))])
    reading = read_partial_index(size, head, start, seek, transform.audio_only)
    index = await run_async(reading, _Ahead(body, read_at), offload=OFFLOAD_BYTES)
    if index is None:
        return None
    plan = await flv_index_plan(index, transform)
    if plan is None or not all(partial_covers(span, head.end, start) for span in plan.spans()):
        return None
    return plan


async def _flv_stream_partial(
    body: Body, how: str, transform: Transform, read_at: ReadAt
) -> Output | None:
    """A byte seek of a sparse FLV streamed from its head and the tags from the keyframe
    its keyframes index names (the filter sees the two as one file), fetched ahead of
    the client; the same bytes as its plan. None: the index does not place the seek."""
    seek = _flv_seek(transform)
    size = body.size
    if size is None or seek.by_time or seek.start is None:
        return None
    head = await run_async(read_head(size), read_at)
    start = None if head is None else keyframe_of(head, seek)
    if head is None or start is None:
        return None
    if not await run_async(verify_start(size, head, start), read_at):
        return None
    shift = start - head.end
    end = seek.end_offset
    stop = size if end is None else min(end + FLV_HEAD, size)
    body.prefetch([(start, stop)])
    flv = FlvFilter(
        audio_only=transform.audio_only,
        start=head.end,
        end=None if end is None else end - shift,
    )
    headers = cache_headers(body, how)
    headers["Content-Type"] = "video/x-flv"
    data = await body.read_at(0, head.end)
    first = flv.feed(data)
    counts = _Counts(len(data), sum(map(len, first)))

    async def pieces() -> AsyncGenerator[Piece, None]:
        for chunk in first:
            yield chunk
        offset = start
        while offset < stop and not flv.finished:
            body.ahead(offset)
            data = await body.read_at(offset, min(stop - offset, 1 << 20))
            if not data:
                raise OSError("the cached object is shorter than its length")
            offset += len(data)
            counts.read += len(data)
            for chunk in flv.feed(data):
                counts.made += len(chunk)
                yield chunk
        for chunk in flv.close():
            counts.made += len(chunk)
            yield chunk

    async def open_stream(start: int, end: int | None) -> Pieces:
        return Pieces(pieces())

    validators = Validators(_transformed_etag(body, transform), body.meta.last_modified)
    output = Output(headers, validators, None, open_stream)
    if transform.audio_only:
        output.saving = counts.saving
    return output


def _flv_seek(transform: Transform) -> FlvSeek:
    return parse_seek(
        flv_bound(transform.start, transform.by_time),
        flv_bound(transform.end, transform.by_time),
        transform.by_time,
    )


def _can_stream_flv(ranged: bool, transform: Transform) -> bool:
    # A time-based seek needs the keyframe index, and a Range needs the exact
    # size: both wait for the whole object and answer from a plan.
    return ((transform.start is None and transform.end is None) or not transform.by_time) and (
        not ranged
    )


async def _flv_stream(body: Body, how: str, transform: Transform) -> Output:
    start = None if transform.start is None else int(transform.start)
    end = None if transform.end is None else int(transform.end)
    flv = FlvFilter(audio_only=transform.audio_only, start=start, end=end)
    headers = cache_headers(body, how)
    headers["Content-Type"] = "video/x-flv"
    head = await body.read_at(0, FLV_HEAD)
    first = flv.feed(head)  # header errors before any byte is sent
    counts = _Counts(len(head), sum(map(len, first)))

    async def open_stream(start: int, end: int | None) -> Pieces:
        return Pieces(_flv_pieces(flv, first, body, counts))

    # The same bytes as the plan of this transform once the object is cached (see
    # media.flv.metadata), so the same validators: If-Range may resume across paths.
    validators = Validators(_transformed_etag(body, transform), body.meta.last_modified)
    output = Output(headers, validators, None, open_stream)
    if transform.audio_only:
        output.saving = counts.saving
    return output


@dataclass
class _Counts:
    """Source bytes read and output bytes made by a streamed transform."""

    read: int
    made: int

    def saving(self) -> float:
        """Source bytes left out per output byte, so far."""
        return max(self.read - self.made, 0) / self.made if self.made else 0.0


async def _flv_pieces(
    flv: FlvFilter, first: list[bytes], body: Body, counts: _Counts
) -> AsyncGenerator[Piece, None]:
    for chunk in first:
        yield chunk
    offset = counts.read
    while True:
        if offset < body.available:
            data = await body.read_at(offset, min(body.available - offset, 1 << 20))
            offset += len(data)
            counts.read = offset
            for chunk in flv.feed(data):
                counts.made += len(chunk)
                yield chunk
            continue
        if body.complete:
            break
        await body.wait_beyond(offset)
    for chunk in flv.close():
        counts.made += len(chunk)
        yield chunk


# --- building plans ----------------------------------------------------------------------


async def build_plan(transform: Transform, size: int, read_at: ReadAt, max_moov: int) -> Plan:
    """The plan of a transform that is not an MP4 clip over an object of `size` bytes."""
    wanted = Wanted(
        transform.kind,
        audio_only=transform.audio_only,
        start=transform.start,
        end=transform.end,
        by_time=transform.by_time,
        track=transform.track,
    )
    return await run_async(plan_reading(wanted, size, max_moov=max_moov), read_at)


class PlanMemo:
    """Recently built plans per object version and transform, bounded by their size;
    and which clips were asked for recently."""

    ASKED = 4096

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._plans: OrderedDict[tuple[str, str, Transform], tuple[Plan, int]] = OrderedDict()
        self._bytes = 0
        self._asked: OrderedDict[tuple[str, str, Transform], None] = OrderedDict()

    def asked_before(self, key: str, version: str, transform: Transform) -> bool:
        """Whether this transform of this object version was asked for recently; it is
        remembered as asked from now on."""
        at = (key, version, transform)
        seen = at in self._asked
        self._asked[at] = None
        self._asked.move_to_end(at)
        if len(self._asked) > self.ASKED:
            self._asked.popitem(last=False)
        return seen

    @staticmethod
    def _weight(plan: Plan) -> int:
        return 64 * len(plan.pieces) + sum(
            len(piece) for piece in plan.pieces if not isinstance(piece, Span)
        )

    def get(self, key: str, version: str, transform: Transform) -> Plan | None:
        """A memoised plan, or None."""
        found = self._plans.get((key, version, transform))
        if found is None:
            return None
        self._plans.move_to_end((key, version, transform))
        return found[0]

    def put(self, key: str, version: str, transform: Transform, plan: Plan) -> None:
        """Remember a plan, forgetting the least recently used beyond the budget."""
        weight = self._weight(plan)
        if weight > self.max_bytes:
            return
        old = self._plans.pop((key, version, transform), None)
        if old is not None:
            self._bytes -= old[1]
        self._plans[(key, version, transform)] = (plan, weight)
        self._bytes += weight
        while self._bytes > self.max_bytes:
            _, (_, dropped) = self._plans.popitem(last=False)
            self._bytes -= dropped


async def plan_for(
    planner: Planner, key: str, body: Body, transform: Transform, read_at: ReadAt
) -> tuple[Plan, Mp4Index | FlvIndex | None]:
    """The plan of `transform` over `body` and the index it came from: an MP4 clip from
    the object's memoised index (every start is a new plan, cheap from the index), an
    FLV output from the object's tag index (with the index when audio only), others
    memoised once the object is complete (and no index)."""
    version = body.version
    if not transform.is_clip and body.final:
        found = planner.memo.get(key, version, transform)
        if found is not None:
            return found, None
    size = body.size
    if size is None:
        size = await body.wait_done()
    if transform.is_clip:
        index = await planner.indexes.get(
            key, version, size, read_at, planner.max_moov, keep=body.final
        )
        clip = index.clip(
            transform.start,
            transform.end,
            audio_only=transform.audio_only,
            track_id=transform.track,
        )
        return clip, index
    plan = None
    if transform.kind == "flv":
        if body.complete or transform.end is None:
            flv = await planner.flv_indexes.get(key, version, size, read_at, keep=body.final)
        else:
            # A sparse object's clip: a scan reads up to `end`, an index build every tag.
            flv = planner.flv_indexes.peek(key, version)
        if flv is not None:
            plan = await flv_index_plan(flv, transform)
            if plan is not None and transform.audio_only:
                if body.final:
                    planner.memo.put(key, version, transform, plan)
                return plan, flv
    if plan is None:
        plan = await build_plan(transform, size, read_at, planner.max_moov)
    if body.final:
        planner.memo.put(key, version, transform, plan)
    return plan, None


# An audio-only FLV plan of more tags than this is made in a worker thread: its spans
# (one per run of audio tags between video tags) take milliseconds to make.
FLV_OFFLOAD_TAGS = 20_000


async def flv_index_plan(index: FlvIndex, transform: Transform) -> Plan | None:
    """An FLV transform's plan from the object's tag index (None: only a scan can tell)."""
    seek = _flv_seek(transform)
    if transform.audio_only and len(index) > FLV_OFFLOAD_TAGS:
        return await asyncio.to_thread(index.plan, True, seek)
    return index.plan(transform.audio_only, seek)
