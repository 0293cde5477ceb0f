"""The usage sampler's costs: one look at the counters of 2 workers serving 500 domains,
one minute's sample written to SQLite and to a real redis-server, Redis memory for a
day of those minutes, and reading a day of one domain (the console's Last day)."""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fleet"))

from redis_harness import RedisServer

DOMAINS = 500
WORKERS = 2
FUNCTIONS = ("plain", "audio_only", "audio_seek", "seek", "preview")
RESULTS = ("HIT", "MISS", "STALE")


def _worker(directory: str) -> None:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    from vodedge.edge import metrics

    for d in range(DOMAINS):
        domain = f"d{d}.example.com"
        for function in FUNCTIONS:
            metrics.REQUESTS.labels(domain, function, "200").inc()
            metrics.SENT_BYTES.labels(domain, function).inc(1000)
        metrics.SAVED_BYTES.labels(domain).inc(100)
        for result in RESULTS:
            metrics.CACHE_LOOKUPS.labels(domain, result).inc()


def main() -> None:
    """Print the figures."""
    from vodedge.control.usage import MINUTE, RedisUsage, SqliteUsage, prometheus_totals, series

    work = Path(tempfile.mkdtemp())
    metrics_dir = work / "metrics"
    metrics_dir.mkdir()
    context = multiprocessing.get_context("spawn")
    for _ in range(WORKERS):
        process = context.Process(target=_worker, args=(str(metrics_dir),))
        process.start()
        process.join()
    started = time.monotonic()
    totals = prometheus_totals(metrics_dir)
    print(f"one look at {len(totals)} counters ({WORKERS} workers, {DOMAINS} domains):"
          f" {1000 * (time.monotonic() - started):.0f} ms")  # fmt: skip
    deltas = {key: int(value) for key, value in totals.items()}
    sqlite = SqliteUsage(work / "state" / "usage.sqlite")
    now = time.time() // MINUTE * MINUTE
    started = time.monotonic()
    sqlite.add(now, deltas)
    print(f"one sample into SQLite: {1000 * (time.monotonic() - started):.0f} ms")
    server = RedisServer(work / "redis")
    server.start()
    try:
        redis_usage = RedisUsage(server.url)
        before = int(redis_usage.redis.info("memory")["used_memory"])
        started = time.monotonic()
        redis_usage.add(now, deltas)
        print(f"one sample into Redis: {1000 * (time.monotonic() - started):.0f} ms")
        minutes = 60
        for i in range(1, minutes):
            redis_usage.add(now - i * MINUTE, deltas)
        used = int(redis_usage.redis.info("memory")["used_memory"]) - before
        print(f"Redis memory per minute of {DOMAINS} domains: {used / minutes / 1024:.0f} KiB"
              f" (a day: {used / minutes * 1440 / 2**20:.0f} MiB)")  # fmt: skip
        started = time.monotonic()
        series(redis_usage, ["d1.example.com"], int(now) - 86400, int(now) + 60, 300)
        print(f"a day of one domain by 5 minutes from Redis: "
              f"{1000 * (time.monotonic() - started):.0f} ms")  # fmt: skip
        redis_usage.close()
    finally:
        server.stop()
    started = time.monotonic()
    series(sqlite, ["d1.example.com"], int(now) - 86400, int(now) + 60, 300)
    print(f"a day of one domain by 5 minutes from SQLite: "
          f"{1000 * (time.monotonic() - started):.0f} ms")  # fmt: skip
    sqlite.close()


if __name__ == "__main__":
    main()
