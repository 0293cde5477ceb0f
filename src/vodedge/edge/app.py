"""The edge's request handler: host to domain, cache or origin, transform, response."""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from vodedge import __version__
from vodedge.config import normalize_host
from vodedge.config.limits import NodeLimits
from vodedge.edge import metrics
from vodedge.edge.accesslog import log_request
from vodedge.edge.cache import Body, DiskCache, OriginStatus, Uncached
from vodedge.edge.delivery import (
    SEND_TIMEOUT,
    Pacer,
    abort,
    send_plan,
    send_timeout,
    stream_growing,
)
from vodedge.edge.http_semantics import Unsatisfiable, Validators, byte_range
from vodedge.edge.origin import OriginError
from vodedge.edge.passthrough import no_room, send_uncached
from vodedge.edge.resources import EXHAUSTED, RateLimitedLog
from vodedge.edge.source import FAR_READ, OriginPool, OriginSet, SourceReader
from vodedge.edge.tls import SchemeAnswer, scheme_answer
from vodedge.edge.transforms import PlanMemo, Transform, plan_for, transform_for
from vodedge.media.errors import MediaError
from vodedge.media.plan import Plan, Span

VIA = "1.1 vodedge"
SERVER = f"vodedge/{__version__}"
# Outputs of this many pieces or more are stored as renditions once built: a warm
# request then costs one sendfile, not one per audio chunk.
RENDITION_MIN_PIECES = 64

MEDIA_STATUS = {
    "invalid_seek": 400,
    "not_iso_bmff": 415,
    "not_flv": 415,
    "unsupported_media": 415,
    "no_audio_track": 422,
    "limit_exceeded": 422,
}
CONTENT_TYPES = {
    ("mp4", True): "audio/mp4",
    ("mp4", False): "video/mp4",
    ("flv", True): "video/x-flv",
    ("flv", False): "video/x-flv",
}


@dataclass
class Edge:
    """Everything a worker's handler needs; `config` may be replaced at any time."""

    config: Any
    cache: DiskCache
    memo: PlanMemo = field(default_factory=PlanMemo)
    max_moov: int = 64 << 20
    origins: OriginPool = field(default_factory=OriginPool)
    limits: NodeLimits = field(default_factory=NodeLimits)

    async def close(self) -> None:
        """Release origin connections and the cache."""
        await self.origins.close()
        await self.cache.close()


EDGE: web.AppKey[Edge] = web.AppKey("edge", Edge)
# Request errors reach stderr at most once a second per kind.
ERROR_LOG = RateLimitedLog("vodedge")
# A response, its status and the body bytes sent.
Answer = tuple[web.StreamResponse, int, int]


def error_response(status: int, code: str, message: str) -> web.Response:
    """A one-line plain-text error with a machine-readable code."""
    return web.Response(
        status=status,
        text=message.replace("\n", " ") + "\n",
        headers={"X-Vodedge-Error": code, "Via": VIA, "Cache-Control": "no-store"},
    )


def _scheme_response(answer: SchemeAnswer) -> web.Response:
    if answer.location is None:
        return error_response(answer.status, answer.code, answer.message)
    return web.Response(status=answer.status, headers={"Location": answer.location, "Via": VIA})


def cache_key(domain: Any, host: str, raw_path: str, query: Mapping[str, str]) -> str:
    """The cache key of a request: domain, path as sent (so %3F is not a query) and the
    kept query arguments.

    A wildcard domain whose origin is asked with the client's Host keys objects
    by that Host: the origin may answer each Host differently.
    """
    owner = domain.name
    if (
        "*" in owner
        and domain.origin_host is None
        and any(spec.kind == "http" and not spec.host_header for spec in domain.origins)
    ):
        owner = normalize_host(host) or owner
    args = domain.cache_key_args(query)
    return f"{owner}{raw_path}" + ("?" + _encode(args) if args else "")


def _pacer(domain: Any, request: web.Request) -> Pacer | None:
    """The limit_rate pacing of this request (its query may set the rate), or None."""
    config = domain.rate_limit_config
    if config is None:
        return None
    rate = config.rate_for(request.query, time.localtime().tm_hour)
    return None if rate is None else Pacer(rate, config.after or 0)


def _ip_refusal(domain: Any, request: web.Request) -> int | None:
    """The status refusing this client by the domain's IP list, None when allowed.

    Which addresses count follows ip_acl_xfwd: the first X-Forwarded-For
    address (on, the default), the connection's (off), or every one (all).
    """
    acl = domain.ip_acl
    if acl is None:
        return None
    remote = request.remote or ""
    forwarded = [a.strip() for a in request.headers.get("X-Forwarded-For", "").split(",")]
    forwarded = [a for a in forwarded if a]
    if acl.xfwd == "off" or not forwarded:
        addresses = [remote]
    elif acl.xfwd == "on":
        addresses = forwarded[:1]
    else:
        addresses = [remote, *forwarded]
    return None if all(acl.allows(a) for a in addresses) else int(acl.status)


def _bad_path(path: str) -> bool:
    if not path.startswith("/") or "\\" in path or any(ord(c) < 32 or c == "\x7f" for c in path):
        return True
    return any(segment in (".", "..") for segment in path.split("/"))


def _transformed_etag(body: Body, transform: Transform) -> str:
    base = body.meta.etag or body.version
    digest = hashlib.blake2s(f"{base}|{transform.tag()}".encode(), digest_size=10).hexdigest()
    return f'"{digest}"'


def _cache_headers(body: Body, how: str) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Via"] = VIA
    headers["X-Cache"] = how
    headers["Age"] = str(body.meta.age(time.time()))
    headers["Accept-Ranges"] = "bytes"
    if body.meta.last_modified:
        headers["Last-Modified"] = body.meta.last_modified
    if body.meta.content_encoding:
        headers["Content-Encoding"] = body.meta.content_encoding
    return headers


async def _respond_plan(
    request: web.Request,
    plan: Plan,
    body: Body,
    headers: CIMultiDict[str],
    validators: Validators,
    pacer: Pacer | None,
) -> Answer:
    """Send `plan` with conditional and Range handling."""
    if validators.etag:
        headers["ETag"] = validators.etag
    if validators.not_modified(request):
        return web.Response(status=304, headers=headers), 304, 0
    status = 200
    try:
        wanted = byte_range(request, plan.size) if validators.range_applies(request) else None
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{plan.size}"
        return web.Response(status=416, headers=headers), 416, 0
    if wanted is not None:
        status = 206
        headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1] - 1}/{plan.size}"
        plan = plan.slice(*wanted)
    response = web.StreamResponse(status=status, headers=headers)
    sent = await send_plan(request, response, plan, body, pacer)
    return response, status, sent


async def handle(request: web.Request) -> web.StreamResponse:
    """Answer one client request."""
    started = time.monotonic()
    edge = request.app[EDGE]
    fields: dict[str, Any] = {
        "host": request.host,
        "method": request.method,
        "path": request.raw_path,
        "remote": request.remote,
    }
    status, sent, function, domain_name = 500, 0, "plain", "-"
    try:
        domain = edge.config.domain_for(request.host or "")
        if domain is None:
            status = 403
            return error_response(
                403, "unknown_host", f"this node serves no domain {request.host!r}"
            )
        domain_name = domain.name
        answer = scheme_answer(
            domain,
            edge.config,
            secure=request.secure,
            host=request.host or "",
            path_qs=request.raw_path,
        )
        if answer is not None:
            status = answer.status
            return _scheme_response(answer)
        response, status, sent, function = await _handle_domain(request, edge, domain, fields)
        return response
    except (ConnectionError, asyncio.CancelledError):
        status = 499  # the client went away
        raise
    except Exception as exc:
        fields["error"] = f"{type(exc).__name__}: {exc}"
        if (isinstance(exc, OSError) and exc.errno in EXHAUSTED) or isinstance(
            exc, sqlite3.OperationalError
        ):
            # Out of descriptors or memory, or an index the full disk keeps from writing:
            # the client may try again, nothing is broken.
            status = 503
            ERROR_LOG.write("exhausted", f"refused {request.raw_path}: {fields['error']}")
            refused = error_response(503, "overloaded", "the node is out of resources")
            refused.headers["Retry-After"] = "1"
            return refused
        # A bug of ours: one line in the log and a plain 500, never a traceback page.
        status = 500
        ERROR_LOG.write("internal", f"internal error on {request.raw_path}: {fields['error']}")
        return error_response(500, "internal_error", "internal error")
    finally:
        metrics.REQUESTS.labels(domain_name, function, str(status)).inc()
        if sent:
            metrics.SENT_BYTES.labels(domain_name, function).inc(sent)
        fields.update(
            status=status,
            bytes=sent,
            function=function,
            ms=round((time.monotonic() - started) * 1000, 2),
        )
        log_request(**fields)


async def _handle_domain(
    request: web.Request, edge: Edge, domain: Any, fields: dict[str, Any]
) -> tuple[web.StreamResponse, int, int, str]:
    if request.method not in ("GET", "HEAD"):
        response = error_response(405, "method_not_allowed", "only GET and HEAD are served")
        response.headers["Allow"] = "GET, HEAD"
        return response, 405, 0, "plain"
    path = request.path
    if _bad_path(path):
        return error_response(400, "bad_path", "the path is not acceptable"), 400, 0, "plain"
    refused = _ip_refusal(domain, request)
    if refused is not None:
        denied = error_response(refused, "ip_denied", "your address may not fetch this")
        return denied, refused, 0, "plain"
    if not domain.referer_allowed(request.headers.get("Referer")):
        redirect = domain.referer_policy.redirect_url if domain.referer_policy else None
        if redirect:
            moved = web.Response(status=302, headers={"Location": redirect, "Via": VIA})
            return moved, 302, 0, "plain"
        return (
            error_response(403, "referer_denied", "this referer may not fetch this"),
            403,
            0,
            "plain",
        )
    query = request.query
    try:
        transform = transform_for(domain, path, query)
    except MediaError as exc:
        status = MEDIA_STATUS.get(exc.code, 422)
        return error_response(status, exc.code, str(exc)), status, 0, "seek"
    function = "plain" if transform is None else transform.function
    raw_path = request.raw_path.split("?", 1)[0]
    key = cache_key(domain, request.host or "", raw_path, query)
    fetcher = edge.origins.origin_set(
        domain, request.host or domain.name, raw_path, _encode(domain.origin_args(query))
    )
    try:
        rule = domain.ttl_rule_for(path)
        how, body = await edge.cache.get(key, fetcher, rule=rule)
    except OriginStatus as exc:
        response = error_response(exc.status, "origin_status", f"the origin answered {exc.status}")
        if "Location" in exc.headers:
            response.headers["Location"] = exc.headers["Location"]
        return response, exc.status, 0, function
    except OriginError as exc:
        return error_response(exc.status, exc.code, exc.message), exc.status, 0, function
    except Uncached as exc:
        metrics.CACHE_LOOKUPS.labels("BYPASS").inc()
        fields["cache"] = "BYPASS"
        if transform is not None:
            await exc.release(0)
            return no_room(), 503, 0, function
        try:
            return (*await send_uncached(request, exc, fetcher, path), function)
        except OriginError as error:
            return (
                error_response(error.status, error.code, error.message),
                error.status,
                0,
                function,
            )
    metrics.CACHE_LOOKUPS.labels(how).inc()
    if rule is not None and rule.follow_to_client:
        # swift_follow_cachetime: clients may keep it as long as we still will.
        remaining = max(int(body.meta.expires_at - time.time()), 0)
        request["cache_control"] = f"max-age={remaining}"
    fields["cache"] = how
    try:
        if transform is not None:
            answered = await _transformed(request, edge, domain, key, body, how, transform, fetcher)
            if answered is not None:
                return (*answered, function)
            function = "plain"  # fallback = passthrough
        return (*await _plain(request, domain, body, how, path, fetcher), function)
    except OriginError as exc:
        # Raised before any byte was sent (after that, delivery aborts instead).
        return error_response(exc.status, exc.code, exc.message), exc.status, 0, function
    finally:
        body.close()


def _encode(args: list[tuple[str, str]]) -> str:
    from urllib.parse import urlencode

    return urlencode(args)


async def _range_ahead_of_fill(
    request: web.Request,
    domain: Any,
    body: Body,
    headers: CIMultiDict[str],
    validators: Validators,
    fetcher: OriginSet,
    size: int,
) -> Answer | None:
    """A Range far beyond what the fill has written, answered by a ranged origin
    request (a player seeking in a cold file must not wait for the whole object)."""
    if validators.not_modified(request) or not validators.range_applies(request):
        return None
    try:
        wanted = byte_range(request, size)
    except Unsatisfiable:
        return None
    if wanted is None or wanted[0] < body.available + FAR_READ:
        return None
    upstream = await fetcher.open_range(wanted[0], wanted[1], body.meta.etag)
    pacer = _pacer(domain, request)
    if validators.etag:
        headers["ETag"] = validators.etag
    headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1] - 1}/{size}"
    response = web.StreamResponse(status=206, headers=headers)
    response.content_length = wanted[1] - wanted[0]
    sent = 0
    try:
        await response.prepare(request)
        if request.method != "HEAD":
            async for chunk in upstream.body:
                chunk = chunk[: response.content_length - sent]
                await asyncio.wait_for(response.write(chunk), send_timeout(request))
                sent += len(chunk)
                if pacer is not None:
                    await pacer.pace(len(chunk))
        if sent != (0 if request.method == "HEAD" else response.content_length):
            raise OriginError(502, "origin_short", "the origin's range ended early")
        await response.write_eof()
    except (OriginError, OSError, TimeoutError):
        abort(request)
    finally:
        await upstream.aclose()
    return response, 206, sent


async def _plain(
    request: web.Request, domain: Any, body: Body, how: str, path: str, fetcher: OriginSet
) -> Answer:
    headers = _cache_headers(body, how)
    headers["Content-Type"] = (
        body.meta.content_type or mimetypes.guess_type(path)[0] or "application/octet-stream"
    )
    validators = Validators(body.meta.etag, body.meta.last_modified)
    size = body.size
    if size is not None and not body.complete and body.meta.ranges:
        answer = await _range_ahead_of_fill(
            request, domain, body, headers, validators, fetcher, size
        )
        if answer is not None:
            return answer
    if size is None:
        if validators.etag:
            headers["ETag"] = validators.etag
        headers.pop("Accept-Ranges")
        response = web.StreamResponse(status=200, headers=headers)
        return response, 200, await stream_growing(request, response, body)
    return await _respond_plan(
        request, Plan([Span(0, size)]), body, headers, validators, _pacer(domain, request)
    )


async def _transformed(
    request: web.Request,
    edge: Edge,
    domain: Any,
    key: str,
    body: Body,
    how: str,
    transform: Transform,
    fetcher: OriginSet,
) -> Answer | None:
    """Answer with the transform's output; None means "fall back to the original"."""
    if body.meta.content_encoding:
        if domain.fallback == "passthrough":
            return None
        message = f"the origin sent this object {body.meta.content_encoding}-encoded"
        return error_response(415, "unsupported_media", message), 415, 0
    reader = SourceReader(body, fetcher)
    started = time.monotonic()
    try:
        if transform.kind == "flv" and not body.complete and _can_stream_flv(request, transform):
            return await _stream_flv(request, body, how, transform)
        plan = await plan_for(edge.memo, key, body, transform, reader, edge.max_moov)
    except MediaError as exc:
        if domain.fallback == "passthrough" and exc.code != "invalid_seek":
            return None
        status = MEDIA_STATUS.get(exc.code, 422)
        return error_response(status, exc.code, str(exc)), status, 0
    metrics.PLAN_SECONDS.labels(transform.kind).observe(time.monotonic() - started)
    headers = _cache_headers(body, how)
    headers["Content-Type"] = CONTENT_TYPES[(transform.kind, transform.audio_only)]
    validators = Validators(_transformed_etag(body, transform), body.meta.last_modified)
    if transform.audio_only and body.size:
        metrics.SAVED_BYTES.labels(domain.name).inc(max(body.size - plan.size, 0))
    pacer = _pacer(domain, request)
    if not body.complete or len(plan.pieces) < RENDITION_MIN_PIECES:
        return await _respond_plan(request, plan, body, headers, validators, pacer)
    tag = hashlib.blake2s(f"{body.version}|{transform.tag()}".encode(), digest_size=12).hexdigest()
    rendered = edge.cache.open_rendition(key, tag)
    if rendered is None or rendered.meta.size != plan.size:
        if rendered is not None:
            rendered.close()
        edge.cache.store_rendition(key, tag, plan, body)
        return await _respond_plan(request, plan, body, headers, validators, pacer)
    try:
        whole = Plan([Span(0, plan.size)])
        return await _respond_plan(request, whole, rendered, headers, validators, pacer)
    finally:
        rendered.close()


def _can_stream_flv(request: web.Request, transform: Transform) -> bool:
    # A time-based seek needs the keyframe index, and a Range needs the exact
    # size: both wait for the whole object and answer from a plan.
    return ((transform.start is None and transform.end is None) or not transform.by_time) and (
        "Range" not in request.headers
    )


async def _stream_flv(request: web.Request, body: Body, how: str, transform: Transform) -> Answer:
    from vodedge.media.flv_filter import FlvFilter

    start = None if transform.start is None else int(transform.start)
    end = None if transform.end is None else int(transform.end)
    flv = FlvFilter(audio_only=transform.audio_only, start=start, end=end)
    headers = _cache_headers(body, how)
    headers.pop("Accept-Ranges")
    headers["Content-Type"] = "video/x-flv"
    response = web.StreamResponse(status=200, headers=headers)
    first = flv.feed(await body.read_at(0, 64 << 10))  # header errors before any byte is sent
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return response, 200, 0
    sent = 0
    offset = min(64 << 10, body.available)
    try:
        for chunk in first:
            await response.write(chunk)
            sent += len(chunk)
        while True:
            if offset < body.available:
                data = await body.read_at(offset, min(body.available - offset, 1 << 20))
                offset += len(data)
                for chunk in flv.feed(data):
                    await response.write(chunk)
                    sent += len(chunk)
                continue
            if body.complete:
                break
            await body.wait_beyond(offset)
        for chunk in flv.close():
            await response.write(chunk)
            sent += len(chunk)
        await response.write_eof()
    except (MediaError, OriginError, OSError):
        abort(request)
        return response, 200, sent
    return response, 200, sent


def make_app(edge: Edge) -> web.Application:
    """The client-facing application."""
    app = web.Application(client_max_size=0, handler_args={"max_field_size": 8190})
    app[EDGE] = edge
    app[SEND_TIMEOUT] = edge.limits.send_timeout
    app.router.add_route("*", "/{tail:.*}", handle)

    async def on_cleanup(app: web.Application) -> None:
        await app[EDGE].close()

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Server"] = SERVER
        if "cache_control" in request and response.status < 400:
            response.headers["Cache-Control"] = request["cache_control"]

    app.on_cleanup.append(on_cleanup)
    app.on_response_prepare.append(on_prepare)
    return app
