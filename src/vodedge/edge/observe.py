"""Around every request: the access log, metrics and the last-resort 500."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.hdrs import EXPECT
from aiohttp.http import HttpVersion11
from multidict import CIMultiDict

from vodedge.edge import accesslog, metrics, resp_headers
from vodedge.edge.bad_requests import SERVER
from vodedge.edge.cache_fill import DISK_FULL
from vodedge.edge.refusal import Refusal, error_response
from vodedge.edge.resources import EXHAUSTED, RateLimitedLog

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
# Request errors reach stderr at most once a second per kind.
ERROR_LOG = RateLimitedLog("vodedge")


@dataclass(slots=True)
class Exchange:
    """What the stages learn about one request, for its log line and metrics."""

    domain: str = "-"
    function: str = "plain"
    cache: str | None = None
    sent: int = 0  # body bytes handed to the connection
    # The response whose headers went out: after that an error can only abort.
    prepared: web.StreamResponse | None = None
    # Why the body was cut short (client_gone, send_timeout, an origin error code).
    aborted: str | None = None
    # Audio extraction: source bytes saved per body byte sent (see Output.saving).
    saving: Callable[[], float] | None = None
    started: float = field(default_factory=time.monotonic)
    # How long a client may take to accept one step of its response (node setting).
    send_timeout: float = 60.0
    # The Cache-Control a stage chose for a successful answer (resp_headers.finish).
    cache_control: str | None = None


EXCHANGE: web.RequestKey[Exchange] = web.RequestKey("exchange", Exchange)


def exchange_of(request: web.BaseRequest) -> Exchange:
    """The request's exchange record (a fresh one outside `observe`)."""
    found = request.get(EXCHANGE)
    if found is None:
        found = request[EXCHANGE] = Exchange()
    return found


async def observe(request: web.BaseRequest, handler: Handler) -> web.StreamResponse:
    """Run the handler; log and count what it answered, whatever happened."""
    exchange = exchange_of(request)
    status = 500
    error: str | None = None
    try:
        try:
            if EXPECT in request.headers:
                await _expect(request)
            response = await handler(request)
        except Refusal as refusal:
            exchange.domain = refusal.domain or exchange.domain
            exchange.function = refusal.function or exchange.function
            response = refusal.response()
        # A client that went away mid-body is logged as nginx does, with what it got.
        status = 499 if exchange.aborted == "client_gone" else response.status
        if (
            not exchange.sent
            and isinstance(response, web.Response)
            and isinstance(response.body, bytes)
            and request.method != "HEAD"
        ):
            exchange.sent = len(response.body)  # an error page is served bytes too
        return response
    except (ConnectionError, asyncio.CancelledError):
        status = 499  # the client went away
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        # Out of descriptors, memory or disk (an index the full disk keeps from writing):
        # the client may try again, nothing is broken.
        exhausted = (isinstance(exc, OSError) and exc.errno in EXHAUSTED | DISK_FULL) or isinstance(
            exc, sqlite3.OperationalError
        )
        if exhausted:
            ERROR_LOG.write("exhausted", f"refused {request.raw_path}: {error}")
        else:
            # A bug of ours: one line in the log and a plain 500, never a traceback page.
            ERROR_LOG.write("internal", f"internal error on {request.raw_path}: {error}")
        if exchange.prepared is not None:
            # Headers are out: only dropping the connection tells the client.
            if request.transport is not None:
                request.transport.abort()
            status = exchange.prepared.status
            return exchange.prepared
        if exhausted:
            status = 503
            refused = error_response(503, "overloaded", "the node is out of resources")
            refused.headers["Retry-After"] = "1"
            return refused
        status = 500
        return error_response(500, "internal_error", "internal error")
    finally:
        record(request, exchange, status, error)


async def _expect(request: web.BaseRequest) -> None:
    """`Expect: 100-continue` gets its interim answer (as aiohttp's Application gives it);
    any other expectation is refused."""
    if request.version == HttpVersion11 and request.headers[EXPECT].lower() == "100-continue":
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size -= 25  # not the response: its headers are still to go
        return
    raise Refusal(417, "expectation_failed", "only 100-continue is understood")


def finish(
    request: web.BaseRequest, response: web.StreamResponse, exchange: Exchange | None = None
) -> None:
    """What every response gets just before its headers go out: Server, the domain's
    configured headers, and the Cache-Control a stage chose (not on errors)."""
    finish_headers(request, response.headers, response.status, exchange)


def finish_headers(
    request: web.BaseRequest,
    headers: CIMultiDict[str],
    status: int,
    exchange: Exchange | None = None,
) -> None:
    """`finish` on the headers of a response with this status."""
    headers["Server"] = SERVER
    resp_headers.apply(request, headers)
    cache_control = (exchange or exchange_of(request)).cache_control
    if cache_control is not None and status < 400:
        headers["Cache-Control"] = cache_control


def record(request: web.BaseRequest, exchange: Exchange, status: int, error: str | None) -> None:
    """Count the answered request and write its access-log line."""
    metrics.count_request(exchange.domain, exchange.function, status, exchange.sent)
    if exchange.sent and exchange.saving is not None:
        saved = round(exchange.sent * exchange.saving())
        if saved > 0:
            metrics.child(metrics.SAVED_BYTES, exchange.domain).inc(saved)
    if not accesslog.enabled():
        return
    fields: dict[str, object] = {
        "host": request.host,
        "method": request.method,
        "path": request.raw_path,
        "remote": request.remote,
    }
    if exchange.cache is not None:
        fields["cache"] = exchange.cache
    if error is not None:
        fields["error"] = error
    if exchange.aborted is not None:
        fields["aborted"] = exchange.aborted
    fields.update(
        status=status,
        bytes=exchange.sent,
        function=exchange.function,
        ms=round((time.monotonic() - exchange.started) * 1000, 2),
    )
    accesslog.log_request(fields)
