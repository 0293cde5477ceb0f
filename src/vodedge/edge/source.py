"""The source stage: an object's bytes from the cache or its origins.

`OriginSet` fetches one object from a domain's origins in priority order
(failover, ranged reads validated against the fill's version); `SourceReader`
answers the media parsers' reads from the cached file, or from the origin when
they are far ahead of a running fill (a tail moov).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from vodedge.config import Domain, OriginSpec
from vodedge.config.limits import NodeLimits
from vodedge.edge import metrics
from vodedge.edge.cache import Body
from vodedge.edge.origin import DirectoryOrigin, HttpOrigin, Origin, OriginError, OriginResponse

# Reads this far past what a fill has written go to the origin as ranged requests
# (a tail moov), instead of waiting for the fill to get there.
FAR_READ = 1 << 20
RANGE_WINDOW = 256 << 10


def origin_of(spec: OriginSpec, limits: NodeLimits) -> Origin:
    """The client for one configured origin."""
    if spec.directory is not None:
        return DirectoryOrigin(spec.directory)
    assert spec.url is not None  # an HTTP origin always has one
    return HttpOrigin(
        spec.url,
        connect_timeout=limits.origin_connect_timeout,
        read_timeout=limits.origin_read_timeout,
        deadline=limits.origin_deadline,
    )


class OriginPool:
    """The origin clients of a worker, created once per configured origin and kept."""

    def __init__(self, limits: NodeLimits | None = None) -> None:
        self.limits = limits or NodeLimits()
        self._clients: dict[tuple[str, str], Origin] = {}

    def origin_set(self, domain: Domain, host: str, path: str, query: str) -> OriginSet:
        """Where `path?query` of `domain` is fetched from, for a client that asked `host`."""
        origins: list[tuple[Origin, str]] = []
        for spec in sorted(domain.origins, key=lambda s: s.priority):
            key = (domain.name, repr(spec))
            if key not in self._clients:
                self._clients[key] = origin_of(spec, self.limits)
            origins.append((self._clients[key], domain.origin_host_for(spec, host)))
        return OriginSet(origins, path, query, domain.name)

    async def close(self) -> None:
        """Release every client's connections."""
        for origin in self._clients.values():
            await origin.close()


class OriginSet:
    """Fetches one object from a domain's origins, failing over in priority order."""

    def __init__(
        self, origins: list[tuple[Origin, str]], path: str, query: str, domain: str
    ) -> None:
        self.origins = origins
        self.path = path
        self.query = query
        self.domain = domain

    async def __call__(self, validators: Mapping[str, str] | None) -> OriginResponse:
        last: OriginError | None = None
        for origin, host in self.origins:
            started = time.monotonic()
            try:
                response = await origin.fetch(
                    self.path, self.query, host=host, validators=validators
                )
            except OriginError as exc:
                last = exc
                continue
            metrics.ORIGIN_SECONDS.labels(self.domain).observe(time.monotonic() - started)
            return response
        assert last is not None
        raise last

    async def open_range(self, start: int, end: int, etag: str | None) -> OriginResponse:
        """A response streaming bytes `[start, end)`, refused if the object changed;
        origins are tried in priority order, like the fill's own request."""
        response: OriginResponse | None = None
        last = OriginError(502, "no_origin", "the domain has no origin")
        for origin, host in self.origins:
            try:
                response = await origin.fetch(
                    self.path, self.query, host=host, byte_range=(start, end)
                )
            except OriginError as exc:
                last = exc
                continue
            break
        if response is None:
            raise last
        wanted = f"bytes {start}-{end - 1}/"
        problem = None
        if response.status != 206 or not response.headers.get("Content-Range", "").startswith(
            wanted
        ):
            problem = OriginError(502, "origin_range", f"a range request got {response.status}")
        elif etag is not None and response.headers.get("ETag") not in (None, etag):
            problem = OriginError(502, "origin_changed", "the object changed during the fill")
        if problem is not None:
            await response.aclose()
            raise problem
        return response

    async def ranged(self, start: int, end: int, etag: str | None) -> bytes:
        """Bytes `[start, end)` of the object, refused if it changed meanwhile."""
        response = await self.open_range(start, end, etag)
        try:
            parts = [chunk async for chunk in response.body]
        finally:
            await response.aclose()
        data = b"".join(parts)
        if len(data) > end - start:
            raise OriginError(502, "origin_range", "a range request got more than asked")
        return data


class SourceReader:
    """Reads for the media parsers: from disk, or from the origin when far ahead of a fill."""

    def __init__(self, body: Body, fetcher: OriginSet) -> None:
        self.body = body
        self.fetcher = fetcher
        self.window_start = 0
        self.window = b""

    async def __call__(self, offset: int, length: int) -> bytes:
        body = self.body
        size = body.size
        if body.complete or size is None or not body.meta.ranges:
            return await body.read_at(offset, length)
        if offset + length <= body.available or offset < body.available + FAR_READ:
            return await body.read_at(offset, length)
        end = min(offset + length, size)
        if not (self.window_start <= offset and end <= self.window_start + len(self.window)):
            fetch_end = min(max(end, offset + RANGE_WINDOW), size)
            try:
                self.window = await self.fetcher.ranged(offset, fetch_end, body.meta.etag)
            except OriginError as exc:
                if exc.code == "origin_changed":
                    body.discard(exc)  # the fill holds a version that no longer exists
                raise
            self.window_start = offset
        at = offset - self.window_start
        return self.window[at : at + (end - offset)]
