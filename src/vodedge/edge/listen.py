"""The listening page: GET /_vodedge/listen?src=/path.mp4 plays a file, video or audio only.

Three routes, on domains with `vodedge_listen_page` on (other domains pass these
paths to their origin like any other):

- `/_vodedge/listen?src=PATH` — the page (HTML, strict Content-Security-Policy);
- `/_vodedge/listen/info?src=PATH` — JSON about the file (duration, audio tracks
  and their languages, what audio only costs), resolved exactly as a client's
  request for PATH (signatures, IP and referer lists apply);
- `/_vodedge/static/NAME` — the page's script and style, and the vendored
  mpegts.js that plays FLV through Media Source Extensions.
"""

from __future__ import annotations

import hashlib
import html
import json
import mimetypes
from dataclasses import dataclass
from importlib import resources
from string import Template
from typing import TYPE_CHECKING
from urllib.parse import unquote

from aiohttp import web
from yarl import URL

from vodedge.config import Domain
from vodedge.config.query import AUDIO_ONLY_ARG, AUDIO_TRACK_ARG
from vodedge.edge.cache import OriginStatus, Uncached
from vodedge.edge.driver import run_async
from vodedge.edge.observe import exchange_of
from vodedge.edge.origin import OriginError
from vodedge.edge.passthrough import no_room
from vodedge.edge.refusal import Refusal
from vodedge.edge.resolve import media_refusal, resolve
from vodedge.edge.resp_headers import DOMAIN
from vodedge.edge.source import SourceReader
from vodedge.edge.target import BadTarget, normalize_path, read_target
from vodedge.edge.tls import scheme_answer
from vodedge.edge.transforms import kind_of
from vodedge.media.errors import MediaError

if TYPE_CHECKING:
    from vodedge.edge.app import Edge

PREFIX = "/_vodedge/"
PAGE = "/_vodedge/listen"
INFO = "/_vodedge/listen/info"
STATIC = "/_vodedge/static/"
# The byte counter (a service worker): beside the page, so that its scope covers it.
COUNTER = "/_vodedge/listen-counter.js"
MPEGTS = "mpegts-1.8.2/mpegts.js"
MAX_SRC = 2048
# What RFC 3986 lets a path and query hold: unreserved, sub-delims, ":@/?" and escapes.
URL_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/?%"
)
# Versioned URLs (a content hash in the query): browsers keep them a year.
IMMUTABLE = "public, max-age=31536000, immutable"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; worker-src 'self'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'self'"
)


def asked(request: web.BaseRequest) -> bool:
    """Whether the request's path (decoded) is the listening page's."""
    raw = request.raw_path
    if raw.startswith("/") and "%" not in raw:
        # Only an escape or an absolute-form target decodes to another start: a target
        # without them need not be decoded (yarl's path, ~1 us a request).
        return raw.startswith(PREFIX)
    return request.path.startswith(PREFIX)


@dataclass(frozen=True)
class Asset:
    """A static file of the page: its bytes, type and version tag."""

    body: bytes
    content_type: str
    version: str

    @property
    def etag(self) -> str:
        """Its entity tag (the version)."""
        return f'"{self.version}"'


def _load_assets() -> dict[str, Asset]:
    root = resources.files("vodedge.edge") / "static"
    found: dict[str, Asset] = {}
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                pending.append((entry, name + "/"))
                continue
            body = entry.read_bytes()
            kind = mimetypes.guess_type(entry.name)[0] or "text/plain"
            if kind.startswith("text/") or kind.endswith("javascript"):
                kind += "; charset=utf-8"
            found[name] = Asset(body, kind, hashlib.sha256(body).hexdigest()[:16])
    return found


ASSETS = _load_assets()
TEMPLATE = Template(ASSETS.pop("listen.html").body.decode())


def asset_url(name: str) -> str:
    """The versioned URL of a static asset."""
    return f"{STATIC}{name}?v={ASSETS[name].version}"


async def route(request: web.BaseRequest) -> web.StreamResponse:
    """Answer a /_vodedge/ request; where the page is off, the ordinary handler does."""
    from vodedge.edge.app import handle

    domain = _domain(request)
    if domain is None or not domain.listen_page:
        return await handle(request)
    request[DOMAIN] = domain
    exchange = exchange_of(request)
    exchange.domain, exchange.function = domain.name, "listen_page"
    path = request.path
    if request.method not in ("GET", "HEAD"):
        raise Refusal(405, "method_not_allowed", "only GET and HEAD are served", domain=domain.name,
                      headers={"Allow": "GET, HEAD"})  # fmt: skip
    answer = scheme_answer(
        domain,
        _edge(request).config,
        secure=request.secure,
        host=request.host,
        path_qs=request.rel_url.raw_path_qs,
    )
    if answer is not None:
        if answer.location is not None:
            raise Refusal.redirect(answer.location, answer.status, domain=domain.name)
        raise Refusal(answer.status, answer.code, answer.message, domain=domain.name)
    if path == PAGE:
        return _page(request, domain)
    if path == INFO:
        return await _info(request)
    if path == COUNTER:
        # Browsers look for a new service worker on every visit: no long caching here.
        return _asset(request, ASSETS["listen-sw.js"], cache="no-cache")
    if path.startswith(STATIC) and (asset := ASSETS.get(path[len(STATIC) :])) is not None:
        return _asset(request, asset)
    raise Refusal(404, "not_found", "no such page", domain=domain.name)


def _edge(request: web.BaseRequest) -> Edge:
    from vodedge.edge.app import EDGE  # the app's handler routes here: imported late

    return request[EDGE]


def _domain(request: web.BaseRequest) -> Domain | None:
    """The domain the Host names (None: the ordinary pipeline refuses it)."""
    try:
        target = read_target(request.raw_path, request.headers.get("Host"))
    except BadTarget:
        return None
    return _edge(request).config.domain_for(target.host_header)


def checked_src(request: web.BaseRequest, domain: Domain) -> tuple[str, str]:
    """The page's `src` (a path and query on this domain) and its kind (mp4 or flv);
    a 400 for anything else."""

    def refuse(reason: str) -> Refusal:
        return Refusal(400, "bad_listen_src", f"src {reason}", domain=domain.name)

    values = request.query.getall("src", [])
    if len(values) != 1:
        raise refuse("must be given once")
    src = values[0]
    if len(src) > MAX_SRC:
        raise refuse(f"must be at most {MAX_SRC} characters")
    if not src.startswith("/") or src.startswith("//") or any(c in src for c in "\\#"):
        raise refuse("must be a path on this domain, like /video.mp4")
    if not set(src) <= URL_CHARS:
        raise refuse("must be a URL path and query (percent-encode other characters)")
    raw_path = src.partition("?")[0]
    try:
        path = URL(normalize_path(raw_path), encoded=True).path
    except (BadTarget, ValueError):
        raise refuse("has a malformed percent-escape") from None
    if any(segment in (".", "..") for segment in path.split("/")):
        raise refuse("must not have . or .. segments")
    kind = kind_of(path)
    if kind not in ("mp4", "flv"):
        raise refuse("must name an MP4 (.mp4, .m4a, .m4v, .mov…) or FLV file")
    if path.startswith(PREFIX):
        raise refuse("must name a media file")
    return src, kind


def with_arg(src: str, name: str, value: str) -> str:
    """`src` with `name=value` appended to its query, the rest kept as it was written
    (a signature may cover it)."""
    return f"{src}{'&' if '?' in src else '?'}{name}={value}"


def _page(request: web.BaseRequest, domain: Domain) -> web.Response:
    src, kind = checked_src(request, domain)
    audio_src = with_arg(src, AUDIO_ONLY_ARG, "1") if domain.audio_split else ""
    name = unquote(src.partition("?")[0].rsplit("/", 1)[-1], errors="replace")
    info = f"{INFO}?{URL.build(query={'src': src}).raw_query_string}"
    scripts = [asset_url(MPEGTS)] if kind == "flv" else []
    scripts.append(asset_url("listen.js"))
    text = TEMPLATE.substitute(
        title=html.escape(name),
        src=html.escape(src),
        audio_src=html.escape(audio_src),
        track_arg=AUDIO_TRACK_ARG,
        kind=kind,
        info=html.escape(info),
        css=html.escape(asset_url("listen.css")),
        counter=COUNTER,
        counter_scope=PREFIX,
        scripts="\n".join(f'<script src="{html.escape(url)}"></script>' for url in scripts),
    )
    return web.Response(
        text=text,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cache-Control": "no-cache",
        },
    )


def _asset(request: web.BaseRequest, asset: Asset, cache: str = IMMUTABLE) -> web.Response:
    headers = {
        "ETag": asset.etag,
        "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff",
        "Content-Type": asset.content_type,
    }
    if request.headers.get("If-None-Match") == asset.etag:
        return web.Response(status=304, headers=headers)
    return web.Response(body=asset.body, headers=headers)


async def _info(request: web.BaseRequest) -> web.Response:
    """What the page shows about its file, from the object as a client would get it."""
    from vodedge.media.mp4.summary import mp4_summary

    edge = _edge(request)
    domain = request[DOMAIN]
    src, kind = checked_src(request, domain)
    resolved = resolve(request.clone(rel_url=URL(src, encoded=True)), edge.config)
    origins = edge.origins.origin_set(
        resolved.domain, resolved.host, resolved.raw_path, resolved.origin_query
    )
    try:
        _, body = await edge.cache.get(resolved.key, origins, rule=resolved.ttl_rule)
    except OriginStatus as exc:
        raise Refusal(exc.status, "origin_status", f"the origin answered {exc.status}") from None
    except OriginError as exc:
        raise Refusal(exc.status, exc.code, exc.message) from None
    except Uncached as exc:
        await exc.release(0)
        raise no_room() from None
    try:
        size = body.size if body.size is not None else await body.wait_done()
        answer: dict[str, object] = {"kind": kind, "size": size, "tracks": []}
        if kind == "mp4":
            try:
                summary = await run_async(
                    mp4_summary(size, max_moov=edge.max_moov), SourceReader(body, origins)
                )
            except MediaError as exc:
                raise media_refusal(exc, domain=domain.name) from None
            durations = [t.duration for t in summary.tracks if t.duration is not None]
            answer.update(
                duration=max(durations, default=None),
                audio_only_bytes=summary.audio_only_bytes,
                tracks=[
                    {
                        "id": t.id,
                        "kind": t.kind,
                        "codec": t.codec,
                        "language": t.language,
                        "duration": t.duration,
                    }
                    for t in summary.tracks
                    if t.kind in ("audio", "video")
                ],
            )
    finally:
        body.close()
    return web.Response(
        text=json.dumps(answer),
        content_type="application/json",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
