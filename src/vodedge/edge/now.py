"""Answers made without waiting: what the stages would answer, made without their
machinery. `from_memory` is the stages' own shortcut for the most common request (a
small fresh HIT); `answer_now` is the lane's question (see edge/lane.py)."""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDict

from vodedge.edge import listen, metrics
from vodedge.edge.cache import Body
from vodedge.edge.deliver import Piece, complete_pieces, idle
from vodedge.edge.http_semantics import Unsatisfiable, requested_range
from vodedge.edge.lane import Ready
from vodedge.edge.observe import EXCHANGE, Exchange, finish, finish_headers, record
from vodedge.edge.plan import Planned, plain_headers, plain_now, plan_now
from vodedge.edge.refusal import Refusal
from vodedge.edge.resolve import Resolved

if TYPE_CHECKING:
    from vodedge.edge.app import Edge


# Request headers that may make the answer other than the whole object with a 200.
_CONDITIONS = ("Range", "If-Range", "If-None-Match", "If-Modified-Since")


def from_memory(
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
# with or without If-Range, and a conditional GET are the lane's: see _from_file).
_NOT_NOW = ("Expect", "Transfer-Encoding", "Content-Length")


def answer_now(edge: Edge, request: web.BaseRequest) -> Ready | None:
    """The lane's question (see edge/lane.py): the answer `answer` would give, when the
    stages give it without waiting: a small fresh HIT from memory (`from_memory`), a
    fresh whole stored file asked whole (`plain_now`), an MP4 clip or an FLV seek of
    one from its remembered index (`plan_now`); None for anything else, refusals
    included (the stages answer those)."""
    headers = request.headers
    for name in _NOT_NOW:
        if name in headers:
            return None
    if listen.asked(request):
        return None
    exchange = request[EXCHANGE] = Exchange(send_timeout=edge.limits.send_timeout)
    try:
        resolved = edge.resolver.resolve(request, edge.config)
    except Refusal:
        return None
    rule = resolved.ttl_rule
    if resolved.source is not None or resolved.rate or (rule is not None and rule.follow_to_client):
        return None
    exchange.domain, exchange.function = resolved.domain.name, resolved.function
    if resolved.transform is None:
        small = from_memory(edge, request, exchange, resolved)
        if small is not None:
            finish(request, small, exchange)
            data = small.body
            assert isinstance(data, bytes)
            exchange.sent = 0 if request.method == "HEAD" else len(data)
            return _ready(edge, request, exchange, small.status, small.headers, data, None, None)
    body = edge.cache.fresh_body(resolved.key)
    if body is None:
        return None
    try:
        ready = _from_file(edge, request, exchange, resolved, body)
    except BaseException:
        body.close()
        raise
    if ready is None:
        body.close()
    return ready


def _from_file(
    edge: Edge, request: web.BaseRequest, exchange: Exchange, resolved: Resolved, body: Body
) -> Ready | None:
    """The answer over a fresh whole stored file (the Ready holds `body` until done;
    None: the stages answer, and the caller closes it)."""
    if resolved.transform is None:
        planned = plain_now(resolved, body, "HIT")
    else:
        planned = plan_now(edge.planner, resolved, body, "HIT")
    if planned is None:
        return None
    # As deliver: whether the client's copy is current (304) comes before any Range.
    current = planned.validators.not_modified(request)
    wanted = None if current else _ranged(request, planned)
    if wanted is None and not current:
        return None  # a 416: the stages send it
    metrics.count_lookup(resolved.domain.name, "HIT")
    exchange.cache = "HIT"
    if wanted is None:
        finish_headers(request, planned.headers, 304, exchange)
        return _ready(edge, request, exchange, 304, planned.headers, b"", None, body)
    saving = planned.saving
    if saving is not None:
        exchange.saving = lambda: saving
    plan = planned.plan
    status, start, end = wanted
    if status == 206:
        planned.headers["Content-Range"] = f"bytes {start}-{end - 1}/{plan.size}"
        plan = plan.slice(start, end)
    answer = planned.headers
    answer["Content-Length"] = str(end - start)  # as deliver's response.content_length
    finish_headers(request, answer, status, exchange)
    if request.method == "HEAD":
        return _ready(edge, request, exchange, status, answer, b"", None, body)
    pieces = complete_pieces(plan, body)
    return _ready(edge, request, exchange, status, answer, b"", pieces, body)


def _ranged(request: web.BaseRequest, planned: Planned) -> tuple[int, int, int] | None:
    """What deliver answers for `planned` and the request's Range: (200, 0, size) or
    (206, start, end); None when it answers 416 (the stages send that)."""
    size = planned.plan.size
    if "Range" not in request.headers:
        return 200, 0, size
    try:
        wanted = requested_range(request, planned.validators, size)
    except Unsatisfiable:
        return None
    if wanted is None:
        return 200, 0, size
    return 206, *wanted


def _ready(
    edge: Edge,
    request: web.BaseRequest,
    exchange: Exchange,
    status: int,
    headers: CIMultiDict[str],
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
        record(request, exchange, 499 if aborted == "client_gone" else status, None)

    if "Content-Length" not in headers and status != 304:  # a 304 has none (as aiohttp's)
        headers["Content-Length"] = str(len(data))
    body_data = b"" if request.method == "HEAD" else data
    return Ready(status, headers, body_data, pieces, exchange.send_timeout, done)
