"""Pass-through: an object the cache has no room for, sent from the origin as it comes."""

from __future__ import annotations

import mimetypes

from multidict import CIMultiDict

from vodedge.edge.cache_fill import Uncached
from vodedge.edge.deliver import Output, Pieces, upstream_pieces
from vodedge.edge.http_semantics import Validators
from vodedge.edge.origin import OriginError
from vodedge.edge.refusal import VIA, Refusal
from vodedge.edge.source import OriginSet

# Whoever cannot be served uncached (a transform needs the whole object at hand) is
# asked to come back once eviction may have made room.
RETRY_AFTER = "30"


def no_room() -> Refusal:
    """The answer to a transform of an object the cache has no room for."""
    return Refusal(
        503,
        "no_room",
        "no room to cache this object for its transform; try again later",
        headers={"Retry-After": RETRY_AFTER},
    )


async def uncached_output(uncached: Uncached, origins: OriginSet, path: str) -> Output:
    """The origin's answer, not stored: the fill's own response for the first client, a
    fetch of its own for each other. Range is ignored (a 200 is always a valid answer
    to one)."""
    upstream = uncached.take() or await origins(None)
    if upstream.status != 200:
        await upstream.aclose()
        raise OriginError(502, "origin_status", f"the origin answered {upstream.status}")
    source = upstream.headers
    headers: CIMultiDict[str] = CIMultiDict()
    headers["Via"] = VIA
    headers["X-Cache"] = "BYPASS"
    headers["Content-Type"] = (
        source.get("Content-Type") or mimetypes.guess_type(path)[0] or "application/octet-stream"
    )
    for name in ("ETag", "Last-Modified", "Content-Encoding"):
        if name in source:
            headers[name] = source[name]
    length = upstream.length

    async def open_upstream(start: int, end: int | None) -> Pieces:
        return upstream_pieces(upstream, length)

    validators = Validators(source.get("ETag"), source.get("Last-Modified"))
    output = Output(headers, validators, length, open_upstream, ranges=False)
    output.releases.append(upstream.aclose)
    return output
