"""Usage over time: each domain's traffic, requests and cache lookups, per minute.

A sampler in the admin process reads the node's own counters (the workers' Prometheus
files) and adds what moved since its last look to a small store: SQLite in the state
directory for one node, the fleet's Redis for many (where every node adds to the same
buckets, so a read is the fleet's sum). Minutes are kept a day, hours a month.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from vodedge.config.errors import INVALID_PARAMETER, ConfigError

from .store import StoreUnavailable

if TYPE_CHECKING:
    from aiohttp import web

MINUTE = 60
HOUR = 3600
DAY = 86400
# How long each resolution is kept (a margin over the day and month the API offers).
KEPT = {MINUTE: DAY + 2 * HOUR, HOUR: 32 * DAY}
# The key of every domain's sum (no domain is named "").
ALL = ""
# What is counted, as metric names: requests:<function>, traffic:<function> (body bytes
# sent), saved (bytes audio extraction did not send), cache:<result> (cache lookups).
FUNCTIONS = ("plain", "audio_only", "audio_seek", "seek", "preview")
HITS = ("HIT", "STALE", "REVALIDATED")  # answered from the cache (a revalidation included)
SAMPLE_SECONDS_ENV = "VODEDGE_USAGE_SAMPLE_SECONDS"
SAMPLE_SECONDS = 60.0

Counts = dict[str, int]
# (domain, metric) -> how much it moved.
Deltas = Mapping[tuple[str, str], int]


class UsageStore(Protocol):
    """Where the per-minute and per-hour counts live."""

    def add(self, at: float, deltas: Deltas) -> None:
        """Add `deltas` to the buckets holding `at` (and to the all-domains sum)."""

    def buckets(self, domain: str, span: int, start: int, end: int) -> dict[int, Counts]:
        """The `span`-second buckets of `domain` (ALL: every domain) from `start` to `end`."""

    def seen(self, node: str, at: float) -> None:
        """Note that `node` sampled its counters at `at`."""

    def nodes(self, since: float) -> dict[str, float]:
        """The nodes that sampled since `since`, with their last sample's time."""

    def close(self) -> None:
        """Release the connection."""


def _rows(at: float, deltas: Deltas) -> list[tuple[int, int, str, str, int]]:
    """(span, bucket, domain, metric, count) rows of `deltas`, the ALL sum included."""
    total: dict[tuple[str, str], int] = {}
    for (domain, metric), count in deltas.items():
        if count > 0:
            total[(domain, metric)] = total.get((domain, metric), 0) + count
            total[(ALL, metric)] = total.get((ALL, metric), 0) + count
    out: list[tuple[int, int, str, str, int]] = []
    for span in KEPT:
        bucket = int(at) // span * span
        out.extend((span, bucket, domain, metric, n) for (domain, metric), n in total.items())
    return out


class SqliteUsage:
    """The usage store of one node: `usage.sqlite` in its state directory."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        self.clock = clock
        self.lock = threading.Lock()
        self.db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
        self.db.isolation_level = None
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS usage (span INTEGER, bucket INTEGER, domain TEXT,"
            " metric TEXT, value INTEGER, PRIMARY KEY (span, bucket, domain, metric))"
            " WITHOUT ROWID"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS nodes (name TEXT PRIMARY KEY, at REAL)")

    def add(self, at: float, deltas: Deltas) -> None:
        rows = _rows(at, deltas)
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany(
                    "INSERT INTO usage VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE"
                    " SET value = value + excluded.value",
                    rows,
                )
                for span, kept in KEPT.items():
                    self.db.execute(
                        "DELETE FROM usage WHERE span = ? AND bucket < ?", (span, at - kept)
                    )
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def buckets(self, domain: str, span: int, start: int, end: int) -> dict[int, Counts]:
        out: dict[int, Counts] = {}
        with self.lock:
            found = self.db.execute(
                "SELECT bucket, metric, value FROM usage"
                " WHERE span = ? AND domain = ? AND bucket >= ? AND bucket < ?",
                (span, domain, start, end),
            ).fetchall()
        for bucket, metric, value in found:
            out.setdefault(bucket, {})[metric] = value
        return out

    def seen(self, node: str, at: float) -> None:
        with self.lock:
            self.db.execute(
                "INSERT INTO nodes VALUES (?, ?) ON CONFLICT DO UPDATE SET at = excluded.at",
                (node, at),
            )

    def nodes(self, since: float) -> dict[str, float]:
        with self.lock:
            found = self.db.execute("SELECT name, at FROM nodes WHERE at >= ?", (since,))
            return {str(name): float(at) for name, at in found.fetchall()}

    def close(self) -> None:
        with self.lock:
            self.db.close()


# KEYS[1] a bucket's hash; ARGV: when it expires, then metric, count, metric, count...
_ADD_ALL = """
for i = 2, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIREAT', KEYS[1], ARGV[1])
"""


class RedisUsage:
    """A fleet's usage store: one hash per domain and bucket, each node adding to it."""

    def __init__(self, url: str, prefix: str = "vodedge:usage:") -> None:
        from .redis_store import connect as connect_redis

        # The same connection settings (sentinel URLs included) as the fleet's store.
        self.redis = connect_redis(url)
        self.prefix = prefix
        # One call per hash instead of one per field: a sample is a command per domain.
        self.add_all = self.redis.register_script(_ADD_ALL)

    def _key(self, span: int, bucket: int, domain: str) -> str:
        return f"{self.prefix}{span}:{bucket}:{domain}"

    def add(self, at: float, deltas: Deltas) -> None:
        import redis

        try:
            self._add(at, deltas)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}: {exc}") from None

    def _add(self, at: float, deltas: Deltas) -> None:
        hashes: dict[str, list[str | int]] = {}
        for span, bucket, domain, metric, count in _rows(at, deltas):
            args = hashes.setdefault(self._key(span, bucket, domain), [bucket + span + KEPT[span]])
            args += [metric, count]
        pipe = self.redis.pipeline(transaction=False)
        for key, args in hashes.items():
            self.add_all(keys=[key], args=args, client=pipe)
        pipe.execute()

    def buckets(self, domain: str, span: int, start: int, end: int) -> dict[int, Counts]:
        import redis

        try:
            return self._buckets(domain, span, start, end)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}: {exc}") from None

    def _buckets(self, domain: str, span: int, start: int, end: int) -> dict[int, Counts]:
        first = -(-start // span) * span
        wanted = list(range(first, end, span))
        pipe = self.redis.pipeline(transaction=False)
        for bucket in wanted:
            pipe.hgetall(self._key(span, bucket, domain))
        out: dict[int, Counts] = {}
        for bucket, found in zip(wanted, pipe.execute(), strict=True):
            if found:
                out[bucket] = {str(k): int(v) for k, v in found.items()}
        return out

    def seen(self, node: str, at: float) -> None:
        import redis

        try:
            self.redis.hset(self.prefix + "nodes", node, repr(at))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}: {exc}") from None

    def nodes(self, since: float) -> dict[str, float]:
        import redis

        try:
            found = self.redis.hgetall(self.prefix + "nodes")
            # Nodes gone longer than the hours are kept are forgotten (the hash stays small).
            gone = [name for name, at in found.items() if float(at) < time.time() - KEPT[HOUR]]
            if gone:
                self.redis.hdel(self.prefix + "nodes", *gone)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"Redis: {type(exc).__name__}: {exc}") from None
        return {str(name): float(at) for name, at in found.items() if float(at) >= since}

    def close(self) -> None:
        self.redis.close()


def open_usage(state_dir: Path, url: str | None) -> UsageStore:
    """The node's usage store: in the fleet's Redis at `url`, else beside its SQLite store."""
    if url:
        return RedisUsage(url)
    return SqliteUsage(state_dir / "usage.sqlite")


def series(
    store: UsageStore, domains: Iterable[str], start: int, end: int, interval: int
) -> list[tuple[int, Counts]]:
    """Every `interval`-second slot from `start` (aligned down) to `end`, summed over
    `domains`: minutes below an hour's interval, hours from there."""
    span = MINUTE if interval < HOUR else HOUR
    first = start // interval * interval
    slots: dict[int, Counts] = {slot: {} for slot in range(first, end, interval)}
    for domain in domains:
        for bucket, counts in store.buckets(domain, span, first, end).items():
            slot = slots.setdefault(bucket // interval * interval, {})
            for metric, count in counts.items():
                slot[metric] = slot.get(metric, 0) + count
    return sorted(slots.items())


# --- the sampler ------------------------------------------------------------------------

# Prometheus sample name -> (the label holding the function or result, metric prefix).
_COUNTERS = {
    "vodedge_requests_total": ("function", "requests:"),
    "vodedge_sent_bytes_total": ("function", "traffic:"),
    "vodedge_audio_saved_bytes_total": ("", "saved"),
    "vodedge_cache_lookups_total": ("result", "cache:"),
}


def prometheus_totals(directory: Path) -> dict[tuple[str, str], float]:
    """The node's counters now, summed over its workers' metric files, by (domain, metric)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))  # type: ignore[no-untyped-call]
    totals: dict[tuple[str, str], float] = {}
    for family in registry.collect():
        for sample in family.samples:
            known = _COUNTERS.get(sample.name)
            domain = sample.labels.get("domain")
            if known is None or domain is None:
                continue
            label, prefix = known
            metric = prefix + sample.labels.get(label, "") if label else prefix
            totals[(domain, metric)] = totals.get((domain, metric), 0.0) + sample.value
    return totals


class Sampler:
    """Adds what the counters moved since the last sample to a usage store."""

    def __init__(
        self,
        store: UsageStore,
        totals: Callable[[], Mapping[tuple[str, str], float]],
        clock: Callable[[], float] = time.time,
        node: str = "",
    ) -> None:
        self.store = store
        self.totals = totals
        self.clock = clock
        self.node = node  # named in the store at each sample (empty: not named)
        # The node's counters start at zero with it (its metric files are made afresh).
        self.last: dict[tuple[str, str], float] = {}

    def sample(self, minute_of: float | None = None) -> None:
        """One look at the counters; their movement goes to the store, in the minute
        holding `minute_of` (default: now)."""
        now = dict(self.totals())
        deltas: dict[tuple[str, str], int] = {}
        for key, value in now.items():
            before = self.last.get(key, 0.0)
            # A counter that went back was reset: all it holds is new.
            moved = int(value - before if value >= before else value)
            if moved > 0:
                deltas[key] = moved
        at = self.clock()
        if deltas:
            self.store.add(at if minute_of is None else minute_of, deltas)
        self.last = now
        if self.node:
            self.store.seen(self.node, at)

    async def run(self, seconds: float) -> None:
        """Sample every `seconds` (a period up to a minute also as each minute ends),
        until cancelled (and once more then)."""
        try:
            while True:
                wait, minute_of = self.next_sample(seconds)
                await asyncio.sleep(wait)
                await self._sample_logged(minute_of)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._sample_logged())

    def next_sample(self, seconds: float) -> tuple[float, float | None]:
        """How long to wait for the next sample, and the minute its counts go to (None:
        the one it is taken in)."""
        now = self.clock()
        ends = (now // MINUTE + 1) * MINUTE
        if seconds > MINUTE or ends - now > seconds:
            return seconds, None
        # The minute's last sample, taken as it ends (late by however long waking up
        # takes): what moved goes to that minute, not to the next.
        return ends - now, ends - 1

    async def _sample_logged(self, minute_of: float | None = None) -> None:
        try:
            await asyncio.to_thread(self.sample, minute_of)
        except Exception as exc:  # a store out of reach: the counts wait for the next look
            sys.stderr.write(f"vodedge: usage not sampled: {type(exc).__name__}: {exc}\n")


def sample_seconds(text: str | None) -> float:
    """The sampling period from the environment (tests shorten it), else a minute."""
    if text is None:
        return SAMPLE_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0.05 <= seconds <= 3600:
        raise ConfigError(
            INVALID_PARAMETER, f"{SAMPLE_SECONDS_ENV} must be seconds in [0.05, 3600]"
        )
    return seconds


def sampling(
    store: UsageStore, metrics_dir: Path, seconds: float, node: str
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp cleanup context sampling the counters in `metrics_dir` into `store` as
    `node` while the admin listener runs (once more as it stops), then closing the store."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        totals = functools.partial(prometheus_totals, metrics_dir)
        sampler = Sampler(store, totals, node=node)
        task = asyncio.create_task(sampler.run(seconds))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        store.close()

    return run
