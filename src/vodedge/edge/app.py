"""The edge's request handler, as four stages: resolve, source, plan, deliver.

    request ─ resolve ──> Resolved (domain, transform, cache key) or a refusal
            ─ source ───> Body (a cached object, or one being filled from the origins)
            ─ plan ─────> Output (headers, validators, size, how to make its bytes)
            ─ deliver ──> the response: conditionals, Range, HEAD, one body writer

Logging, metrics and the last-resort 500 wrap every request (`observe`). The server is
aiohttp's low-level one with a single handler (`answer`): no Application, router,
middleware or signals, which a HIT would pay for on every request.
"""

from __future__ import annotations

import re
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from vodedge.config import Domain, NodeConfig
from vodedge.config.limits import NodeLimits
from vodedge.edge import bad_requests, listen, metrics
from vodedge.edge.cache import Body, DiskCache, First, OriginStatus, Uncached
from vodedge.edge.cache_sparse import SEGMENT
from vodedge.edge.deliver import Piece, complete_pieces, deliver, idle
from vodedge.edge.http_semantics import Unsatisfiable, byte_range
from vodedge.edge.indexes import FlvIndexMemo, IndexMemo
from vodedge.edge.lane import LaneServer, Ready
from vodedge.edge.observe import EXCHANGE, Exchange, exchange_of, finish, observe, record
from vodedge.edge.origin import OriginError
from vodedge.edge.parent_tier import ParentAccess, drop_if_purged, source_cache_control
from vodedge.edge.passthrough import no_room, uncached_output
from vodedge.edge.plan import (
    PlanMemo,
    Planned,
    Planner,
    plain_headers,
    plain_now,
    plain_output,
    plan_now,
    plan_output,
)
from vodedge.edge.refusal import Refusal
from vodedge.edge.resolve import Resolved, ResolveMemo
from vodedge.edge.source import OriginPool, OriginSet

# A transform's cold object is first asked for this many bytes: where its index is.
HEAD = 64 << 10
_BYTES = re.compile(r"bytes=(\d*)-(\d*)", re.IGNORECASE)
ORIGIN_SETS = 2048


@dataclass
class Edge:
    """Everything a worker's handler needs; `config` may be replaced at any time (each
    request reads it once)."""

    config: NodeConfig
    cache: DiskCache
    memo: PlanMemo = field(default_factory=PlanMemo)
    indexes: IndexMemo = field(default_factory=IndexMemo)
    flv_indexes: FlvIndexMemo = field(default_factory=FlvIndexMemo)
    max_moov: int = 64 << 20
    origins: OriginPool = field(default_factory=OriginPool)
    limits: NodeLimits = field(default_factory=NodeLimits)
    resolver: ResolveMemo = field(default_factory=ResolveMemo)
    # Origins by what makes them (domain, Host, path, origin query, key): a clip at a
    # new start is a new Resolved but asks the origin for the same object.
    _origin_sets: dict[tuple[int, str, str, str, str], tuple[Domain, OriginSet]] = field(
        default_factory=dict
    )
    _origins_config: NodeConfig | None = None
    planner: Planner = field(init=False)
    # Requests the lane answered (see edge/lane.py).
    lane_answers: int = 0

    def origin_set(self, resolved: Resolved) -> OriginSet:
        """Where the resolved request's object is fetched from (remembered with it)."""
        config = self.config
        if config is not self._origins_config:
            self._origin_sets = {}
            self._origins_config = config
        domain = resolved.domain
        key = (id(domain), resolved.host, resolved.raw_path, resolved.origin_query, resolved.key)
        found = self._origin_sets.get(key)
        if found is not None and found[0] is domain and resolved.source is None:
            return found[1]
        origins = self.origins.origin_set(
            resolved.domain,
            resolved.host,
            resolved.raw_path,
            resolved.origin_query,
            _parents(self, resolved),
        )
        if resolved.source is None and resolved.rate is None:  # others are made per request
            if len(self._origin_sets) >= ORIGIN_SETS:
                self._origin_sets = {}
            self._origin_sets[key] = (domain, origins)
        return origins

    def __post_init__(self) -> None:
        # What a worker learns of an origin (it ignores Range...) reaches the others.
        self.origins.share_notes(self.cache.index)
        self.planner = Planner(self.cache, self.memo, self.indexes, self.max_moov, self.flv_indexes)

    async def close(self) -> None:
        """Release origin connections and the cache."""
        await self.origins.close()
        await self.cache.close()


EDGE: web.RequestKey[Edge] = web.RequestKey("edge", Edge)


async def answer(edge: Edge, request: web.BaseRequest) -> web.StreamResponse:
    """The server's one handler: the listening page's requests, or `handle`, observed;
    then the headers every response gets (unless it went out already)."""
    request[EDGE] = edge
    exchange = request[EXCHANGE] = Exchange(send_timeout=edge.limits.send_timeout)
    route = listen.route if _listening(request) else handle
    response = await observe(request, route)
    if not response.prepared:
        finish(request, response, exchange)
    return response


def _listening(request: web.BaseRequest) -> bool:
    """Whether the request's path (decoded) is the listening page's."""
    raw = request.raw_path
    if raw.startswith("/") and "%" not in raw:
        # Only an escape or an absolute-form target decodes to another start: a target
        # without them need not be decoded (yarl's path, ~1 us a request).
        return raw.startswith(listen.PREFIX)
    return request.path.startswith(listen.PREFIX)


async def handle(request: web.BaseRequest) -> web.StreamResponse:
    """Answer one client request; once more if a sparse object turned out to have changed
    at the origin before any byte was sent (its extents are gone: the next try starts
    cold, from the version the origin holds now)."""
    exchange = exchange_of(request)
    try:
        return await _handle(request, exchange)
    except Refusal as refusal:
        if refusal.code != "origin_changed" or exchange.prepared is not None:
            raise
    return await _handle(request, exchange)


async def _handle(request: web.BaseRequest, exchange: Exchange) -> web.StreamResponse:
    edge = request[EDGE]
    resolved = edge.resolver.resolve(request, edge.config)
    domain = resolved.domain
    exchange.domain, exchange.function = domain.name, resolved.function
    hot = _from_memory(edge, request, exchange, resolved)
    if hot is not None:
        return hot
    origins = edge.origin_set(resolved)
    if resolved.source is not None:
        drop_if_purged(edge.cache, resolved.key, resolved.source)
    ranged, first = _ranged_fetch(request, resolved, origins)
    try:
        how, body = await edge.cache.get(
            resolved.key,
            origins,
            rule=resolved.ttl_rule,
            source=ranged,
            first=first,
            small=resolved.transform is None,  # plain delivery reads a small one's bytes
        )
    except OriginStatus as exc:
        location = exc.headers.get("Location")
        raise Refusal(
            exc.status,
            "origin_status",
            f"the origin answered {exc.status}",
            headers={"Location": location} if location else None,
        ) from None
    except OriginError as exc:
        raise Refusal(exc.status, exc.code, exc.message) from None
    except Uncached as exc:
        metrics.count_lookup(domain.name, "BYPASS")
        exchange.cache = "BYPASS"
        if resolved.transform is not None:
            await exc.release(0)
            raise no_room() from None
        return await _bypass(request, resolved, exc, origins)
    metrics.count_lookup(domain.name, how)
    exchange.cache = how
    body.headers_only = request.method == "HEAD"
    rule = resolved.ttl_rule
    if resolved.source is not None:
        meta = body.meta
        exchange.cache_control = source_cache_control(meta.stored_at, meta.expires_at, time.time())
    elif rule is not None and rule.follow_to_client:
        # swift_follow_cachetime: clients may keep it as long as we still will.
        remaining = max(int(body.meta.expires_at - time.time()), 0)
        exchange.cache_control = f"max-age={remaining}"
    try:
        if resolved.transform is None:
            output = plain_output(resolved, body, how, origins)
        else:
            output, exchange.function = await plan_output(
                edge.planner, resolved, body, how, origins, ranged="Range" in request.headers
            )
        exchange.saving = output.saving
        try:
            return await deliver(request, output, resolved.rate)
        finally:
            await output.aclose()
    except OriginError as exc:
        # Raised before any byte was sent (after that, delivery aborts instead).
        raise Refusal(exc.status, exc.code, exc.message) from None
    finally:
        body.close()


# Request headers that may make the answer other than the whole object with a 200.
_CONDITIONS = ("Range", "If-Range", "If-None-Match", "If-Modified-Since")


def _from_memory(
    edge: Edge, request: web.BaseRequest, exchange: Exchange, resolved: Resolved
) -> web.Response | None:
    """The most common request, made cheap: a fresh whole object of at most
    SMALL_OBJECT bytes (its bytes in memory), asked for plainly (no transform, Range,
    conditional, limit_rate or Cache-Control to work out). The answer is what the
    stages give it (cache.get's HIT, plain_output's headers, deliver's whole
    web.Response), made without their machinery; None: the stages answer."""
    if resolved.transform is not None or resolved.source is not None or resolved.rate:
        return None
    rule = resolved.ttl_rule
    if rule is not None and rule.follow_to_client:
        return None
    headers = request.headers
    for name in _CONDITIONS:
        if name in headers:
            return None
    if not idle(request):
        return None
    store = edge.cache.store
    now = time.time()
    entry = store.lookup(resolved.key, now)
    if entry is None or not entry.meta.fresh(now):
        return None
    data = store.small_bytes(entry)
    if data is None:
        return None
    store.touch(resolved.key, now)
    metrics.count_lookup(resolved.domain.name, "HIT")
    exchange.cache = "HIT"
    # Made once per object version and second of Age: web.Response copies them.
    answer = plain_headers(entry.meta, "HIT", resolved.path, now)
    return web.Response(headers=answer, body=data)


# What makes a request the lane's business no more: aiohttp's way answers it (a Range,
# with or without If-Range, is the lane's: see _ranged).
_NOT_NOW = ("If-None-Match", "If-Modified-Since", "Expect", "Transfer-Encoding", "Content-Length")


def answer_now(edge: Edge, request: web.BaseRequest) -> Ready | None:
    """The lane's question (see edge/lane.py): the answer `answer` would give, when the
    stages give it without waiting: a small fresh HIT from memory (`_from_memory`), a
    fresh whole stored file asked whole (`plain_now`), or an MP4 clip of one from its
    remembered index (`plan_now`); None for anything else, refusals included (the
    stages answer those)."""
    headers = request.headers
    for name in _NOT_NOW:
        if name in headers:
            return None
    if _listening(request):
        return None
    request[EDGE] = edge
    exchange = request[EXCHANGE] = Exchange(send_timeout=edge.limits.send_timeout)
    try:
        resolved = edge.resolver.resolve(request, edge.config)
    except Refusal:
        return None
    rule = resolved.ttl_rule
    if resolved.source is not None or resolved.rate or (rule is not None and rule.follow_to_client):
        return None
    exchange.domain, exchange.function = resolved.domain.name, resolved.function
    if resolved.transform is None and "Range" not in headers and "If-Range" not in headers:
        small = _from_memory(edge, request, exchange, resolved)
        if small is not None:
            finish(request, small, exchange)
            data = small.body
            assert isinstance(data, bytes)
            exchange.sent = 0 if request.method == "HEAD" else len(data)
            return _ready(edge, request, exchange, small, data, None, None)
    body = edge.cache.fresh_body(resolved.key)
    if body is None:
        return None
    try:
        if resolved.transform is None:
            planned = plain_now(resolved, body, "HIT")
        else:
            planned = plan_now(edge.planner, resolved, body, "HIT")
    except BaseException:
        body.close()
        raise
    wanted = None if planned is None else _ranged(request, planned)
    if planned is None or wanted is None:
        body.close()
        return None
    metrics.count_lookup(resolved.domain.name, "HIT")
    exchange.cache = "HIT"
    saving = planned.saving
    if saving is not None:
        exchange.saving = lambda: saving
    plan = planned.plan
    status, start, end = wanted
    if status == 206:
        planned.headers["Content-Range"] = f"bytes {start}-{end - 1}/{plan.size}"
        plan = plan.slice(start, end)
    response = web.StreamResponse(status=status, headers=planned.headers)
    response.content_length = end - start
    finish(request, response, exchange)
    if request.method == "HEAD":
        body.close()
        return _ready(edge, request, exchange, response, b"", None, None)
    return _ready(edge, request, exchange, response, b"", complete_pieces(plan, body), body)


def _ranged(request: web.BaseRequest, planned: Planned) -> tuple[int, int, int] | None:
    """What deliver answers for `planned` and the request's Range: (200, 0, size) or
    (206, start, end); None when it answers 416 (the stages send that)."""
    size = planned.plan.size
    if "Range" not in request.headers:
        return 200, 0, size
    try:
        wanted = byte_range(request, size) if planned.validators.range_applies(request) else None
    except Unsatisfiable:
        return None
    if wanted is None:
        return 200, 0, size
    return 206, *wanted


def _ready(
    edge: Edge,
    request: web.BaseRequest,
    exchange: Exchange,
    response: web.StreamResponse,
    data: bytes,
    pieces: Generator[Piece, None, None] | None,
    body: Body | None,
) -> Ready:
    """The lane's answer; once it is over, the request is recorded as `observe` does."""

    def done(sent: int, aborted: str | None) -> None:
        if pieces is not None:
            pieces.close()
        if body is not None:
            body.close()
        exchange.aborted = aborted
        if pieces is not None:
            exchange.sent = sent
        edge.lane_answers += 1
        record(request, exchange, 499 if aborted == "client_gone" else response.status, None)

    body_data = b"" if request.method == "HEAD" else data
    if "Content-Length" not in response.headers:
        response.headers["Content-Length"] = str(len(data))
    return Ready(response.status, response.headers, body_data, pieces, exchange.send_timeout, done)


def _parents(edge: Edge, resolved: Resolved) -> ParentAccess | None:
    """How this request may ask the domain's parents: not at all on a parent node or
    for a child's source request (no loops), else signed with the fleet's secret."""
    tier = edge.config.tier
    if tier.role == "parent" or resolved.source is not None:
        return None
    return ParentAccess(tier.secret, partial(edge.cache.index.last_purge, resolved.key))


def _ranged_fetch(
    request: web.BaseRequest, resolved: Resolved, origins: OriginSet
) -> tuple[OriginSet | None, First | None]:
    """How the object may be fetched (the `range` function): as ranges from `origins`
    (None: whole), and the first bytes this request needs of a cold one (None: all)."""
    mode = resolved.domain.range_mode
    if mode == "off" or (mode == "on" and origins.ignores_ranges()):
        return None, None
    transform = resolved.transform
    if transform is None:
        if request.method == "HEAD":
            return origins, (0, 0)  # no bytes: a cold object is filled whole, as a GET
        return origins, client_first(request.headers.get("Range"))
    if transform.kind == "flv" and (
        transform.start is None or (transform.by_time and transform.audio_only)
    ):
        # FLV has no index of its tags: audio extraction reads every tag header, and a
        # streamed FLV reads from the start. Filled whole (README "The cache"). A seek
        # reads the head, where a keyframes index may say where its tags are.
        return origins, None
    return origins, (0, HEAD)


def client_first(header: str | None) -> First | None:
    """The first bytes a client's single Range asks for (at most a segment), or None."""
    found = _BYTES.fullmatch(header.strip()) if header else None
    if found is None:
        return None
    first, last = found.groups()
    if not first:
        return (-int(last), None) if last and int(last) > 0 else None
    start = int(first)
    end = start + SEGMENT if not last else min(int(last) + 1, start + SEGMENT)
    return (start, end) if end > start else None


async def _bypass(
    request: web.BaseRequest, resolved: Resolved, uncached: Uncached, origins: OriginSet
) -> web.StreamResponse:
    """No room in the cache: the object straight from the origin, not stored."""
    try:
        output = await uncached_output(uncached, origins, resolved.path)
        try:
            return await deliver(request, output, resolved.rate)
        finally:
            await output.aclose()
    except OriginError as exc:
        raise Refusal(exc.status, exc.code, exc.message) from None


def make_server(edge: Edge, *, lane: bool = True, **kwargs: Any) -> web.Server:
    """The client-facing server (`kwargs`: aiohttp's, e.g. keepalive_timeout), with the
    lane in front of `answer` unless `lane` is False. Whoever runs it closes `edge`
    after it."""
    bad_requests.install()
    handler = partial(answer, edge)
    if lane:
        now = partial(answer_now, edge)
        return LaneServer(handler, now=now, access_log=None, max_field_size=8190, **kwargs)
    return web.Server(handler, access_log=None, max_field_size=8190, **kwargs)
