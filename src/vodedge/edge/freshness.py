"""HTTP caching rules for origin responses: may we store it, and for how long."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping

from vodedge.config import TtlRule

DEFAULT_TTL = 3600


def cache_control(value: str | None) -> dict[str, str | None]:
    """The directives of a Cache-Control header, lower-cased."""
    out: dict[str, str | None] = {}
    if not value:
        return out
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = arg.strip().strip('"') or None
    return out


def storable(headers: Mapping[str, str], rule: TtlRule | None = None) -> bool:
    """False when the origin forbids a shared cache from keeping the response (unless
    the domain's rule says to ignore that: swift_no_cache_low)."""
    if headers.get("Vary", "").strip() == "*":
        return False  # matches no later request (RFC 9111 4.1)
    if rule is not None and rule.ignore_origin_no_cache:
        return True
    directives = cache_control(headers.get("Cache-Control"))
    return not ({"no-store", "private"} & directives.keys())


def _seconds(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return min(int(value), 10 * 365 * 86400)


def origin_ttl(headers: Mapping[str, str], now: float) -> int | None:
    """The lifetime the origin gives: s-maxage, max-age, then Expires; None if silent."""
    directives = cache_control(headers.get("Cache-Control"))
    if "no-cache" in directives:
        return 0
    for name in ("s-maxage", "max-age"):
        if name in directives:
            seconds = _seconds(directives[name])
            if seconds is not None:
                return seconds
    expires = headers.get("Expires")
    if expires:
        try:
            when = email.utils.parsedate_to_datetime(expires).timestamp()
        except (TypeError, ValueError, IndexError):
            return 0  # an invalid Expires means "already expired" (RFC 9111 5.3)
        return max(int(when - now), 0)
    return None


def ttl_for(headers: Mapping[str, str], now: float, rule: TtlRule | None) -> int:
    """How long to keep a stored response: the domain's rule wins over the origin,
    unless the rule lets the origin's cache headers win (swift_origin_cache_high)."""
    from_origin = origin_ttl(headers, now)
    if rule is not None:
        if rule.origin_first and from_origin is not None:
            return from_origin
        return rule.ttl
    return DEFAULT_TTL if from_origin is None else from_origin
