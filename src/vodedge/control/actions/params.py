"""Reading an action's parameters, with the API's errors for absent or bad ones."""

from __future__ import annotations

import calendar
import time
from collections.abc import Sequence

from vodedge.config.errors import shown

from ..calls import Call
from ..errors import ApiError, missing


def invalid(name: str, value: str, why: str) -> ApiError:
    """A bad value of parameter `name`: `Invalid<Name>.Malformed`, as the API names them."""
    return ApiError(400, f"Invalid{name}.Malformed", f"Specified {name} {shown(value)} {why}.")


def required(call: Call, name: str) -> str:
    """A parameter that must be present and not empty."""
    value = call.params.get(name, "")
    if not value.strip():
        raise missing(name)
    return value


def optional(call: Call, name: str) -> str | None:
    """A parameter that may be absent (an empty value counts as absent)."""
    value = call.params.get(name)
    return value if value else None


def integer(call: Call, name: str, default: int, low: int, high: int) -> int:
    """An integer parameter in `low..high`."""
    value = optional(call, name)
    if value is None:
        return default
    if not (value.isascii() and value.isdigit() and len(value) <= 12) or not (
        low <= int(value) <= high
    ):
        raise invalid(name, value, f"must be an integer from {low} to {high}")
    return int(value)


def boolean(call: Call, name: str, default: bool = False) -> bool:
    """`true`/`false` (as both SDKs send booleans)."""
    value = optional(call, name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise invalid(name, value, "must be true or false")
    return value.lower() == "true"


def choice(call: Call, name: str, allowed: Sequence[str], default: str | None = None) -> str | None:
    """One of `allowed`, or `default` when absent."""
    value = optional(call, name)
    if value is None:
        return default
    if value not in allowed:
        raise invalid(name, value, f"must be one of {', '.join(allowed)}")
    return value


def utc_time(call: Call, name: str) -> float | None:
    """A `yyyy-MM-ddTHH:mm:ssZ` time (UTC), as seconds since the epoch."""
    value = optional(call, name)
    if value is None:
        return None
    for layout in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%MZ"):
        try:
            return float(calendar.timegm(time.strptime(value, layout)))
        except ValueError:
            continue
    raise invalid(name, value, "must be a UTC time like 2026-01-31T08:00:00Z")


def iso(seconds: float) -> str:
    """A stored time as the API writes it: `2026-01-31T08:00:00Z`."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
