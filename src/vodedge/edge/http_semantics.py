"""Conditional requests and byte ranges (RFC 9110) for any response of known size."""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import datetime

from aiohttp import web


@dataclass(frozen=True, slots=True)
class Validators:
    """What identifies the representation we are about to send."""

    etag: str | None
    last_modified: str | None

    def _modified(self) -> datetime | None:
        if not self.last_modified:
            return None
        try:
            return email.utils.parsedate_to_datetime(self.last_modified)
        except (TypeError, ValueError, IndexError):
            return None

    def not_modified(self, request: web.BaseRequest) -> bool:
        """True when the client's copy is current (If-None-Match, else If-Modified-Since)."""
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            if self.etag is None:
                return False
            tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
            return "*" in tags or self.etag.removeprefix("W/") in tags
        since = request.if_modified_since
        if since is None:
            return False
        modified = self._modified()
        return modified is not None and modified <= since

    def range_applies(self, request: web.BaseRequest) -> bool:
        """False when If-Range names another representation (send the whole one)."""
        if_range = request.headers.get("If-Range")
        if if_range is None:
            return True
        if if_range.startswith(('"', "W/")):
            # A strong comparison: weak tags never match.
            strong = self.etag is not None and not self.etag.startswith("W/")
            return strong and if_range == self.etag
        return self.last_modified is not None and if_range == self.last_modified


_ZERO_SUFFIX = re.compile(r"bytes=-0+", re.IGNORECASE)


class Unsatisfiable(Exception):
    """The requested range lies outside the representation."""


def byte_range(request: web.BaseRequest, size: int) -> tuple[int, int] | None:
    """The `[start, stop)` the client asked for, None for the whole representation.

    A malformed or multi-range header is ignored, as RFC 9110 allows.
    """
    header = request.headers.get("Range")
    if header is None:
        return None
    if _ZERO_SUFFIX.fullmatch(header.strip()):
        raise Unsatisfiable  # aiohttp reads "bytes=-0" as "from 0": it asks for nothing
    try:
        wanted = request.http_range
    except ValueError:
        return None
    start, stop = wanted.start, wanted.stop
    if start is None:
        return None
    if start < 0:  # a suffix: the last -start bytes
        if size == 0:
            raise Unsatisfiable
        return max(size + start, 0), size
    if start >= size:
        raise Unsatisfiable
    return start, size if stop is None else min(stop, size)


def requested_range(
    request: web.BaseRequest, validators: Validators, size: int
) -> tuple[int, int] | None:
    """The `[start, stop)` of this representation the request asks for: None for all of
    it (no Range, one ignored, or an If-Range naming another representation);
    Unsatisfiable: a 416."""
    return byte_range(request, size) if validators.range_applies(request) else None
