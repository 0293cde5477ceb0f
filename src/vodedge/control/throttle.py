"""Per-key rate limits: a token bucket for each access key."""

from __future__ import annotations


class Throttle:
    """Buckets of `rate` tokens a second holding at most `rate` (one second's burst)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key id: (tokens, at)

    def allow(self, key_id: str, rate: float, now: float) -> bool:
        """Take a token from `key_id`'s bucket; False when it is empty."""
        return self.wait(key_id, rate, now) == 0.0

    def wait(self, key_id: str, rate: float, now: float) -> float:
        """Take a token from `key_id`'s bucket (0.0), or the seconds until there is one."""
        capacity = max(rate, 1.0)
        tokens, at = self._buckets.get(key_id, (capacity, now))
        tokens = min(capacity, tokens + max(0.0, now - at) * rate)
        if tokens < 1.0:
            self._buckets[key_id] = (tokens, now)
            return (1.0 - tokens) / rate
        self._buckets[key_id] = (tokens - 1.0, now)
        return 0.0
