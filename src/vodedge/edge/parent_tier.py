"""The parent tier: an edge's source requests to a parent vodedge (an origin of kind
`vodedge`), and the parent's reading of them.

An edge asks its parent for source bytes only: the path and the query the origin
would get (function arguments and signatures were taken out by resolve), the
client's Host (so the parent finds the domain), a Range or validators when it wants
them. With the fleet's secret it signs each request in SOURCE_HEADER; a parent with
the same secret serves a signed request as source: never transformed, without the
client checks the edge already made (signed URLs, IP and Referer lists, scheme
redirects), without rate limits, and never through an origin of kind vodedge (no
loops). A header that does not verify is refused: it never counts as a client's.

The signature also carries when the edge last purged the object: a parent holding a
copy stored before that drops it and fetches again, so an edge that applied a purge
before its parent did cannot refill from the parent's stale copy.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vodedge.edge.origin import Origin, OriginError, OriginResponse

if TYPE_CHECKING:
    from vodedge.edge.cache import DiskCache

SOURCE_HEADER = "X-Vodedge-Source"
DENIED = "source_denied"  # the parent's error code for a request that does not verify
VERSION = "v1"
# A signed request is good this long either side of the parent's clock: a captured
# header is useless soon after, for any other URL at once.
MAX_SKEW = 60.0


class SourceDenied(Exception):
    """A source request whose signature does not verify (or a parent with no secret)."""


@dataclass(frozen=True, slots=True)
class SourceRequest:
    """An edge's verified source request: when the edge last purged the object."""

    purged_at: float | None


def _mac(secret: str, stamp: str, purged: str, host: str, target: str) -> str:
    message = "\n".join((VERSION, stamp, purged, host, target)).encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_source(secret: str, host: str, target: str, purged_at: float | None, now: float) -> str:
    """SOURCE_HEADER's value for a request of `target` (path and query) as `host`."""
    stamp = str(int(now))
    purged = "-" if purged_at is None else f"{purged_at:.6f}"
    return f"{VERSION} {stamp} {purged} {_mac(secret, stamp, purged, host, target)}"


def verify_source(
    secret: str | None, host: str, target: str, value: str, now: float
) -> SourceRequest:
    """The source request `value` signs; SourceDenied when it does not verify."""
    if secret is None:
        raise SourceDenied("this node takes no source requests (it has no fleet_secret)")
    parts = value.split(" ")
    if len(parts) != 4 or parts[0] != VERSION or not parts[1].isdigit() or len(parts[1]) > 12:
        raise SourceDenied("the source request's signature is malformed")
    _, stamp, purged, mac = parts
    if not hmac.compare_digest(mac, _mac(secret, stamp, purged, host, target)):
        raise SourceDenied("the source request's signature is not valid")
    if abs(now - int(stamp)) > MAX_SKEW:
        raise SourceDenied("the source request's signature has expired")
    try:
        purged_at = None if purged == "-" else float(purged)
    except ValueError:
        raise SourceDenied("the source request's purge time is malformed") from None
    return SourceRequest(purged_at)


def drop_if_purged(cache: DiskCache, key: str, source: SourceRequest) -> bool:
    """At the parent: drop the copy of `key` stored before the edge's last purge of it
    (this node has not applied that purge yet); whether one was dropped."""
    if source.purged_at is None:
        return False
    entry = cache.index.get(key)
    if entry is None or entry.meta.stored_at >= source.purged_at:
        return False
    return cache.purge(key) > 0


def source_cache_control(stored_at: float, expires_at: float, now: float) -> str:
    """What the parent tells an edge about keeping its answer: as long as the parent
    will (so the tiers expire together), or not at all when the parent keeps nothing."""
    if expires_at <= stored_at:
        return "no-store"
    return f"max-age={max(int(expires_at - now), 0)}"


@dataclass(frozen=True, slots=True)
class ParentAccess:
    """How one request asks a domain's parents: signed with `secret` (when the node has
    one), telling them when this node last purged the object (`purged_at`, asked only
    when a parent is)."""

    secret: str | None
    purged_at: Callable[[], float | None]


class ParentSource:
    """A parent vodedge asked for one object's source bytes: an HTTP origin whose
    requests are signed, and whose 5xx answers count as a failure (so the next origin
    in priority order is tried, e.g. the real origin as a backup)."""

    def __init__(self, client: Origin, access: ParentAccess) -> None:
        self.client = client
        self.secret = access.secret
        self.purged_at = access.purged_at

    async def fetch(
        self,
        path: str,
        query: str,
        *,
        host: str | None = None,
        byte_range: tuple[int, int] | None = None,
        validators: Mapping[str, str] | None = None,
    ) -> OriginResponse:
        """GET the source bytes of `path?query` from the parent, signed."""
        headers = dict(validators or {})
        if self.secret is not None and host:
            target = path + (f"?{query}" if query else "")
            headers[SOURCE_HEADER] = sign_source(
                self.secret, host, target, self.purged_at(), time.time()
            )
        response = await self.client.fetch(
            path, query, host=host, byte_range=byte_range, validators=headers
        )
        if response.status >= 500:
            await response.aclose()
            raise OriginError(502, "parent_failed", f"the parent answered {response.status}")
        if response.headers.get("X-Vodedge-Error") == DENIED:
            await response.aclose()
            raise OriginError(502, "parent_denied", "the parent refused the source request")
        return response

    async def close(self) -> None:
        """Nothing of its own: the pool closes the client."""
