"""The Redis store's costs behind the README's capacity figures: memory per domain and
per task, adds per second, and one full read of 1,000 domains (a real redis-server)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fleet"))

from redis_harness import RedisServer

from vodedge.config import Function
from vodedge.control.redis_store import RedisStore
from vodedge.control.store import DomainRecord, Source

DOMAINS = 1000


def main() -> None:
    """Print the figures."""
    server = RedisServer(Path(tempfile.mkdtemp()) / "redis")
    server.start()
    try:
        store = RedisStore(server.url, "bench")
        memory = lambda: int(store.redis.info("memory")["used_memory"])  # noqa: E731
        functions = (
            Function.of("ali_video_split", enable="on"),
            Function.of("path_based_ttl_set", ttl="3600", path="/v"),
        )
        before, started = memory(), time.monotonic()
        for i in range(DOMAINS):
            source = Source("domain", f"origin{i}.example.com", 80)
            store.add_domain(
                DomainRecord(f"d{i}.example.com", "video", (source,), functions=functions)
            )
        took = time.monotonic() - started
        print(f"memory per domain: {(memory() - before) / DOMAINS:.0f} bytes")
        print(f"adds per second (appendfsync always): {DOMAINS / took:.0f}")
        started = time.monotonic()
        for _ in range(20):
            store.domains()
        print(f"one read of {DOMAINS} domains: {(time.monotonic() - started) / 20 * 1000:.0f} ms")
        before = memory()
        for i in range(DOMAINS):
            store.add_task("file", [("d1.example.com", f"d1.example.com/v/{i}.mp4")], False)
        print(f"memory per task object: {(memory() - before) / DOMAINS:.0f} bytes")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
