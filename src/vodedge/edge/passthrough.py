"""Pass-through: an object the cache has no room for, sent from the origin as it comes."""

from __future__ import annotations

import asyncio
import mimetypes

from aiohttp import web
from multidict import CIMultiDict

from vodedge.edge.cache_fill import Uncached
from vodedge.edge.delivery import abort, send_timeout
from vodedge.edge.http_semantics import Validators
from vodedge.edge.origin import OriginError
from vodedge.edge.source import OriginSet

VIA = "1.1 vodedge"
# Whoever cannot be served uncached (a transform needs the whole object at hand) is
# asked to come back once eviction may have made room.
RETRY_AFTER = "30"


def no_room(status: int = 503) -> web.Response:
    """The answer to a transform of an object the cache has no room for."""
    return web.Response(
        status=status,
        text="no room to cache this object for its transform; try again later\n",
        headers={
            "X-Vodedge-Error": "no_room",
            "Retry-After": RETRY_AFTER,
            "Via": VIA,
            "Cache-Control": "no-store",
        },
    )


async def send_uncached(
    request: web.Request, uncached: Uncached, origins: OriginSet, path: str
) -> tuple[web.StreamResponse, int, int]:
    """Answer from the origin without storing: the fill's own response for the first
    client, a fetch of its own for each other. Range is ignored (a 200 is always a valid
    answer to one); the body is aborted, never cut short silently."""
    upstream = uncached.take() or await origins(None)
    try:
        if upstream.status != 200:
            raise OriginError(502, "origin_status", f"the origin answered {upstream.status}")
        source = upstream.headers
        headers: CIMultiDict[str] = CIMultiDict()
        headers["Via"] = VIA
        headers["X-Cache"] = "BYPASS"
        headers["Content-Type"] = (
            source.get("Content-Type")
            or mimetypes.guess_type(path)[0]
            or "application/octet-stream"
        )
        for name in ("ETag", "Last-Modified", "Content-Encoding"):
            if name in source:
                headers[name] = source[name]
        validators = Validators(source.get("ETag"), source.get("Last-Modified"))
        if validators.not_modified(request):
            return web.Response(status=304, headers=headers), 304, 0
        response = web.StreamResponse(status=200, headers=headers)
        length = upstream.length
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        sent = 0
        if request.method == "HEAD":
            await response.write_eof()
            return response, 200, 0
        try:
            async for chunk in upstream.body:
                if length is not None:
                    chunk = chunk[: length - sent]
                await asyncio.wait_for(response.write(chunk), send_timeout(request))
                sent += len(chunk)
            if length is not None and sent != length:
                raise OriginError(502, "origin_short", "the origin's body ended early")
            await response.write_eof()
        except (OriginError, OSError, TimeoutError):
            abort(request)
        return response, 200, sent
    finally:
        await upstream.aclose()
