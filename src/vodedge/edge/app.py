"""The edge's request handler, as four stages: resolve, source, plan, deliver.

    request ─ resolve ──> Resolved (domain, transform, cache key) or a refusal
            ─ source ───> Body (a cached object, or one being filled from the origins)
            ─ plan ─────> Output (headers, validators, size, how to make its bytes)
            ─ deliver ──> the response: conditionals, Range, HEAD, one body writer

Logging, metrics and the last-resort 500 wrap every request (`observe`). The server is
aiohttp's low-level one with a single handler (`answer`): no Application, router,
middleware or signals, which a HIT would pay for on every request; in front of it, the
lane (edge/lane.py) answers what the stages would answer without waiting (edge/now.py).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from aiohttp import web

from vodedge.config import Domain, NodeConfig
from vodedge.config.limits import NodeLimits
from vodedge.edge import bad_requests, listen, metrics
from vodedge.edge.cache import DiskCache, First, OriginStatus, Uncached
from vodedge.edge.cache_sparse import SEGMENT
from vodedge.edge.deliver import deliver
from vodedge.edge.indexes import FlvIndexMemo, IndexMemo
from vodedge.edge.lane import LaneServer
from vodedge.edge.now import answer_now, from_memory
from vodedge.edge.observe import EXCHANGE, Exchange, exchange_of, finish, observe
from vodedge.edge.origin import OriginError
from vodedge.edge.parent_tier import ParentAccess, drop_if_purged, source_cache_control
from vodedge.edge.passthrough import no_room, uncached_output
from vodedge.edge.plan import PlanMemo, Planner, plain_output, plan_output
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
    route = listen.route if listen.asked(request) else handle
    response = await observe(request, route)
    if not response.prepared:
        finish(request, response, exchange)
    return response


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
    hot = from_memory(edge, request, exchange, resolved)
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
