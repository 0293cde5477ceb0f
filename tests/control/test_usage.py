"""The usage store (SQLite, and a real redis-server) and the sampler's arithmetic."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fleet"))

from redis_harness import RedisServer

from vodedge.control.actions.usage import time_window
from vodedge.control.calls import Call, Caller
from vodedge.control.usage import (
    ALL,
    HOUR,
    KEPT,
    MINUTE,
    RedisUsage,
    Sampler,
    SqliteUsage,
    UsageStore,
    sample_seconds,
    series,
)

T0 = int(time.time()) // HOUR * HOUR - 3 * HOUR  # an hour's start, 2 to 3 hours ago


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UsageStore]:
    if request.param == "sqlite":
        sqlite = SqliteUsage(tmp_path / "state" / "usage.sqlite")
        yield sqlite
        sqlite.close()
        assert (tmp_path / "state" / "usage.sqlite").stat().st_mode & 0o077 == 0
        return
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        usage = RedisUsage(server.url)
        yield usage
        usage.close()
    finally:
        server.stop()


def test_counts_add_up_by_minute_hour_and_domain(store: UsageStore) -> None:
    store.add(T0 + 5, {("a.test", "requests:plain"): 2, ("b.test", "requests:plain"): 1})
    store.add(T0 + 50, {("a.test", "requests:plain"): 3, ("a.test", "saved"): 100})
    store.add(T0 + 70, {("a.test", "requests:seek"): 1})
    assert store.buckets("a.test", MINUTE, T0, T0 + HOUR) == {
        T0: {"requests:plain": 5, "saved": 100},
        T0 + 60: {"requests:seek": 1},
    }
    assert store.buckets(ALL, MINUTE, T0, T0 + 60) == {T0: {"requests:plain": 6, "saved": 100}}
    assert store.buckets("a.test", HOUR, T0, T0 + HOUR) == {
        T0: {"requests:plain": 5, "saved": 100, "requests:seek": 1}
    }
    assert store.buckets("c.test", MINUTE, T0, T0 + HOUR) == {}
    # Slots of five minutes over two domains, the empty ones included.
    slots = series(store, ["a.test", "b.test"], T0 + 10, T0 + 900, 300)
    assert slots == [
        (T0, {"requests:plain": 6, "saved": 100, "requests:seek": 1}),
        (T0 + 300, {}),
        (T0 + 600, {}),
    ]
    assert series(store, [ALL], T0, T0 + 2 * HOUR, 3600)[0][1]["requests:plain"] == 6


def test_minutes_are_kept_a_day_and_hours_a_month(store: UsageStore) -> None:
    store.add(T0, {("a.test", "requests:plain"): 1})
    later = T0 + KEPT[MINUTE] + HOUR
    store.add(later, {("a.test", "requests:plain"): 1})
    if isinstance(store, SqliteUsage):  # Redis forgets by itself (EXPIREAT), checked below
        assert store.buckets("a.test", MINUTE, T0, T0 + 60) == {}
        assert store.buckets("a.test", HOUR, T0, T0 + HOUR) == {T0: {"requests:plain": 1}}
    else:
        for span in (MINUTE, HOUR):
            ttl = store.redis.ttl(f"vodedge:usage:{span}:{T0}:a.test")
            assert abs(ttl - (T0 + span + KEPT[span] - time.time())) < 5


def test_the_sampler_adds_what_moved_and_survives_a_reset(tmp_path: Path) -> None:
    store = SqliteUsage(tmp_path / "usage.sqlite")
    counters: dict[tuple[str, str], float] = {("a.test", "requests:plain"): 3.0}
    now = [float(T0)]
    sampler = Sampler(store, lambda: counters, clock=lambda: now[0])
    sampler.sample()
    counters[("a.test", "requests:plain")] = 5.0
    counters[("a.test", "traffic:plain")] = 4096.0
    now[0] += 30
    sampler.sample()
    sampler.sample()  # nothing moved: nothing added
    counters[("a.test", "requests:plain")] = 1.0  # the node restarted its counters
    now[0] += 60
    sampler.sample()
    assert store.buckets("a.test", MINUTE, T0, T0 + HOUR) == {
        T0: {"requests:plain": 5, "traffic:plain": 4096},
        T0 + 60: {"requests:plain": 1},
    }
    store.close()


def test_a_minutes_counts_sampled_as_it_ends_stay_in_that_minute(tmp_path: Path) -> None:
    """The sampler wakes for each minute's end and files what moved under that minute,
    however late it wakes (a sample taken 0.3 s into the next minute once filed a whole
    period's requests there)."""
    store = SqliteUsage(tmp_path / "usage.sqlite")
    counters: dict[tuple[str, str], float] = {}
    now = [T0 + 10.0]
    sampler = Sampler(store, lambda: counters, clock=lambda: now[0])
    assert sampler.next_sample(60.0) == (50.0, T0 + 59)
    assert sampler.next_sample(0.5) == (0.5, None)
    assert sampler.next_sample(3600.0) == (3600.0, None)  # longer periods are kept as asked
    now[0] = T0 + 59.75
    assert sampler.next_sample(0.5) == (0.25, T0 + 59)

    async def one_period() -> None:
        task = asyncio.create_task(sampler.run(0.5))
        await asyncio.sleep(0.05)
        counters[("a.test", "requests:plain")] = 2.0
        now[0] = T0 + 60.3  # it wakes up late, in the next minute
        for _ in range(200):  # (bounded: 10 s)
            if store.buckets("a.test", MINUTE, T0, T0 + 120):
                break
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(one_period())
    assert store.buckets("a.test", MINUTE, T0, T0 + 120) == {T0: {"requests:plain": 2}}
    store.close()


def test_the_default_window_holds_the_current_minute(tmp_path: Path) -> None:
    """Asked without StartTime/EndTime in a minute's first second, the usage actions still
    read that minute (the window's end is exclusive, in whole seconds)."""
    store = SqliteUsage(tmp_path / "usage.sqlite")
    store.add(T0 + 60.2, {("a.test", "requests:plain"): 1})
    call = Call("DescribeDomainRealTimeQpsData", {}, Caller("key", True), "request")
    for real_time, interval in ((True, 60), (False, 300)):
        start, end, got = time_window(call, T0 + 60.4, real_time)
        assert got == interval and end > T0 + 60.4
        slots = series(store, [ALL], start, end, got)
        assert sum(counts.get("requests:plain", 0) for _, counts in slots) == 1
    store.close()


def test_the_sampling_period_is_checked() -> None:
    assert sample_seconds(None) == 60.0
    assert sample_seconds("0.5") == 0.5
    for bad in ("0", "x", "-1", "1e9"):
        with pytest.raises(ValueError, match="VODEDGE_USAGE_SAMPLE_SECONDS"):
            sample_seconds(bad)


def test_nodes_are_named_by_their_last_sample(store: UsageStore) -> None:
    assert store.nodes(0) == {}
    store.seen("a", T0 + 10)
    store.seen("b", T0 + 20)
    store.seen("a", T0 + 30)
    assert store.nodes(T0) == {"a": T0 + 30, "b": T0 + 20}
    assert store.nodes(T0 + 25) == {"a": T0 + 30}
