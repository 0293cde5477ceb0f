"""The Redis store's costs behind the README's capacity figures (a real redis-server):
memory per domain, per task and per stream entry, adds per second, a full read of
1,000 domains against one change read as a delta, 1,000 nodes acknowledging one
purge, and a node's catch-up (replaying the stream, or a full resync) into its copy."""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "fleet"))

from redis_harness import RedisServer

from vodedge.config import Function
from vodedge.control.follower import Follower
from vodedge.control.redis_store import RedisStore
from vodedge.control.replica import Replica
from vodedge.control.store import DomainRecord, Source, TaskQuery

DOMAINS = 1000
NODES = 1000


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def main() -> None:
    """Print the figures."""
    work = Path(tempfile.mkdtemp())
    server = RedisServer(work / "redis")
    server.start()
    try:
        store = RedisStore(server.url, "bench")
        memory = lambda: int(store.redis.info("memory")["used_memory"])  # noqa: E731
        sent = lambda: int(store.redis.info("stats")["total_net_output_bytes"])  # noqa: E731
        info_reply = -sent() + sent()  # what one INFO reply adds to the count
        functions = (
            Function.of("ali_video_split", enable="on"),
            Function.of("path_based_ttl_set", ttl="3600", path="/v"),
        )
        follower = Follower(RedisStore(server.url, "node-0"), Replica(work / "node-0"), 4)
        follower.catch_up()  # joined before the domains come
        before, started = memory(), time.monotonic()
        for i in range(DOMAINS):
            source = Source("domain", f"origin{i}.example.com", 80)
            store.add_domain(
                DomainRecord(f"d{i}.example.com", "video", (source,), functions=functions)
            )
        took = time.monotonic() - started
        entries = int(store.redis.xlen(store._k("changes")))
        print(
            f"memory per domain (record + its stream entry): {(memory() - before) / DOMAINS:.0f} B"
        )
        print(f"adds per second (appendfsync always): {DOMAINS / took:.0f}")

        # A node that was away during those 1,000 adds replays them into its copy.
        started = time.monotonic()
        follower.catch_up()
        print(
            f"catch-up: replay {entries} changes into the copy: {_ms(time.monotonic() - started)}"
        )
        assert len(follower.replica.domains()) == DOMAINS

        started, out = time.monotonic(), sent()
        for _ in range(20):
            store.domains()
        full_bytes = (sent() - out - info_reply) / 20
        print(
            f"full read of {DOMAINS} domains (the old per-change cost, per worker):"
            f" {_ms((time.monotonic() - started) / 20)}, {full_bytes / 1024:.0f} KiB"
        )
        # One change, read as a delta by a caught-up node.
        record = store.domain("d7.example.com")
        assert record is not None
        store.update_domains([replace(record, description="changed")])
        last = follower.replica.last_id()
        assert last is not None
        out, started = sent(), time.monotonic()
        delta = follower.fleet.read_changes(last, check=False)
        took, delta_bytes = time.monotonic() - started, sent() - out - info_reply
        assert delta is not None and list(delta.domains) == ["d7.example.com"]
        print(
            f"one change read as a delta (XREAD + HMGET): {_ms(took)},"
            f" {delta_bytes} B out of Redis (x{full_bytes / delta_bytes:.0f} less)"
        )
        started = time.monotonic()
        follower.catch_up()
        print(f"one change applied to the copy (SQLite, fsync): {_ms(time.monotonic() - started)}")

        # A full resync (a node behind the stream's retention).
        started = time.monotonic()
        follower.resync()
        print(f"full resync ({DOMAINS} domains) into the copy: {_ms(time.monotonic() - started)}")

        before = memory()
        for i in range(DOMAINS):
            store.add_task("file", [("d1.example.com", f"d1.example.com/v/{i}.mp4")], False)
        per_purge = (memory() - before) / DOMAINS
        print(f"memory per purge of one URL (task + its stream entry): {per_purge:.0f} B")

        # 1,000 nodes acknowledge one purge.
        nodes = [RedisStore(server.url, f"node-{i}") for i in range(NODES)]
        for node in nodes:
            node.heartbeat(4)
        task = store.add_task("file", [("d1.example.com", "d1.example.com/v/a.mp4")], False)
        commands = int(store.redis.info("stats")["total_commands_processed"])
        started = time.monotonic()
        for node in nodes:
            # Each node says it is alive every 2 s: here just before it acknowledges,
            # so that a slow run does not let the first heartbeats expire.
            node.heartbeat(4)
            node.ack_tasks([task])
        took = time.monotonic() - started
        # Less the heartbeats (a pipeline of 4) and the INFO calls around.
        used = int(store.redis.info("stats")["total_commands_processed"]) - commands - 4 * NODES - 1
        _, [row] = store.tasks(TaskQuery(task_id=task))
        assert row.status == "Complete"
        print(
            f"one purge, {NODES} nodes acknowledging: {used} Redis commands"
            f" ({used / NODES:.1f} per node), {_ms(took)} in all from one client"
        )
        for node in nodes:
            node.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
