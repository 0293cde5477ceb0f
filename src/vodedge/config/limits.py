"""The node's timeouts, limits and thresholds (`[node]` keys and `vodedge serve` flags)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from .errors import shown
from .values import bad, parse_int, parse_size

_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?) ?(ms|s|m|h)?")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_DURATION = 7 * 86400.0


def parse_duration(text: str) -> float:
    """Seconds from `30`, `2.5s`, `500ms`, `10m` or `1h`."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise bad(f"must be a duration like 30s or 500ms, got {shown(text)}")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if not 0 < seconds <= MAX_DURATION:
        raise bad(f"must be more than 0 and at most 7 days, got {shown(text)}")
    return seconds


@dataclass(frozen=True)
class NodeLimits:
    """How long the edge waits and how much it takes on, per worker (and whether it
    takes the lane, see edge/lane.py).

    Durations are in seconds.
    """

    # A connection with no request in progress is closed after this long.
    idle_timeout: float = 30.0
    # A client must take each step of a response (1 MiB, or a pacing step) this fast.
    send_timeout: float = 60.0
    # Connecting to an origin, and each wait for its next bytes.
    origin_connect_timeout: float = 5.0
    origin_read_timeout: float = 30.0
    # The longest one origin response may take, headers to last byte (a dripping
    # origin must not hold clients forever).
    origin_deadline: float = 600.0
    # Client connections a worker keeps (0: derived from the descriptor limit); past
    # it the longest-idle connection is closed, or the new one answered 503.
    max_connections: int = 0
    # On SIGTERM, responses in flight get this long to finish.
    shutdown_timeout: float = 5.0
    # Free space kept on the cache's filesystem (the index grows there too): a fill
    # that would eat into it evicts, or its object is served from the origin uncached.
    min_free_space: int = 2 << 20
    # Requests the stages answer from memory (a small HIT, a clip from a warm index) are
    # answered as they are parsed, outside aiohttp's request loop.
    lane: bool = True

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not 0 < value <= MAX_DURATION:
                raise bad(f"{item.name} must be more than 0 and at most 7 days, got {value}")
        if not 0 <= self.max_connections <= 1_000_000:
            raise bad(f"max_connections must be 0..1000000, got {self.max_connections}")
        if self.min_free_space < 0:
            raise bad(f"min_free_space must not be negative, got {self.min_free_space}")

    def with_values(self, values: Mapping[str, object]) -> NodeLimits:
        """These limits with some replaced; strings are parsed as in the file (durations,
        sizes), numbers taken as they are. ConfigError names the key at fault."""
        kinds = {item.name: item.type for item in fields(self)}
        changes: dict[str, object] = {}
        for name, value in values.items():
            if name not in kinds:
                raise bad(f"{name} is not a known limit")
            changes[name] = _value(name, kinds[name], value)
        return replace(self, **changes)  # type: ignore[arg-type]


def _value(name: str, kind: object, value: object) -> object:
    if kind in (bool, "bool"):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _SWITCH:
            return _SWITCH[value.strip().lower()]
        raise bad(f"{name} must be on or off, got {shown(value)}")
    if isinstance(value, bool):
        raise bad(f"{name} must be a number, got {shown(value)}")
    if kind in (float, "float"):
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return parse_duration(value)
        raise bad(f"{name} must be a duration like 30s, got {shown(value)}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return parse_size(value) if name == "min_free_space" else parse_int(value, 0, 1_000_000)
    raise bad(f"{name} must be an integer, got {shown(value)}")


_SWITCH = {"on": True, "true": True, "off": False, "false": False}
LIMIT_KEYS = frozenset(item.name for item in fields(NodeLimits))
