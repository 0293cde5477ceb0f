"""The Redis store against a real redis-server, what only it does: two nodes writing at
once, tasks acknowledged across nodes, the change stream, access keys, and Redis out of
reach (the contract it shares with SQLite is tests/control/test_store.py's)."""

from __future__ import annotations

import multiprocessing
from dataclasses import replace
from pathlib import Path

import pytest
from dropping_proxy import DroppingProxy
from redis_harness import RedisServer
from store_records import record

from vodedge.config.keys import AccessKey
from vodedge.control.fleet_store import FleetStore
from vodedge.control.redis_store import RedisStore
from vodedge.control.replica import Replica
from vodedge.control.store import (
    Certificate,
    StaleRecord,
    StoreUnavailable,
    TaskQuery,
)


def _bump(url: str, node: str, times: int) -> None:
    store = RedisStore(url, node)
    for i in range(times):
        while True:
            current = store.domain("video.example.com")
            assert current is not None
            count = int(current.description or "0")
            try:
                store.update_domains([replace(current, description=str(count + 1))])
                break
            except StaleRecord:
                continue
        if i % 10 == 0:
            store.add_task("file", [("video.example.com", f"video.example.com/{node}{i}")], False)


def test_two_nodes_writing_at_once_lose_no_update(redis_server: RedisServer) -> None:
    """Two processes each read-modify-write 100 times: the counter ends at 200."""
    RedisStore(redis_server.url, "a").add_domain(record(description="0"))
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_bump, args=(redis_server.url, n, 100)) for n in ("a", "b")]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    store = RedisStore(redis_server.url, "c")
    assert store.domain("video.example.com").description == "200"  # type: ignore[union-attr]
    total, tasks = store.tasks(TaskQuery(size=50))
    assert total == 20 and len({t.task_id for t in tasks}) == 20


def test_tasks_complete_when_every_live_node_acknowledged_them(redis_server: RedisServer) -> None:
    """Complete needs each live node; a node that was away still gets it to apply."""
    a, b = RedisStore(redis_server.url, "a"), RedisStore(redis_server.url, "b")
    a.heartbeat(2)
    b.heartbeat(1)
    task = a.add_task("directory", [("v.example.com", "v.example.com/dir/")], True)
    assert [t.task_id for t in b.snapshot().tasks] == [task]
    a.ack_tasks([task])
    total, [row] = b.tasks(TaskQuery(task_id=task))
    assert (total, row.status, row.process, row.force) == (1, "Refreshing", "50%", True)
    b.ack_tasks([task])
    _, [row] = a.tasks(TaskQuery(task_id=task))
    assert (row.status, row.process) == ("Complete", "100%")
    assert a.snapshot().tasks == [] and b.snapshot().tasks == []
    # Node b is gone (its heartbeat is old): a alone completes the next one, and b,
    # back, still applies it.
    b.redis.zadd(b._k("nodes"), {"b": 1.0})
    later = a.add_task("file", [("v.example.com", "v.example.com/x.mp4")], False)
    a.ack_tasks([later])
    _, [row] = a.tasks(TaskQuery(task_id=later))
    assert row.status == "Complete"
    assert [t.task_id for t in b.snapshot().tasks] == [later]


def test_a_node_gone_before_acknowledging_does_not_hold_a_task(redis_server: RedisServer) -> None:
    """A task waiting only for a node whose heartbeat ran out is Complete when described."""
    a, b = RedisStore(redis_server.url, "a"), RedisStore(redis_server.url, "b")
    a.heartbeat(1)
    b.heartbeat(1)
    task = a.add_task("file", [("v.example.com", "v.example.com/x.mp4")], False)
    a.ack_tasks([task])
    assert a.tasks(TaskQuery(task_id=task))[1][0].status == "Refreshing"
    b.redis.zadd(b._k("nodes"), {"b": 1.0})
    assert a.tasks(TaskQuery(task_id=task))[1][0].status == "Complete"


def test_preloads_reach_every_node_and_failures_are_kept(redis_server: RedisServer) -> None:
    """Each node fetches a preload; a row one node could not fetch is Failed, with why."""
    a, b = RedisStore(redis_server.url, "a"), RedisStore(redis_server.url, "b")
    a.heartbeat(1)
    b.heartbeat(1)
    task = a.add_task("preload", [("v.example.com", f"v.example.com/{i}") for i in range(3)], False)
    rows = [t.row for t in b.snapshot().tasks]
    assert len(rows) == 3 and [t.row for t in a.snapshot().tasks] == rows
    a.ack_tasks([task])
    b.ack_tasks([task], {rows[1]: "the node answered 404"})
    _, described = a.tasks(TaskQuery(task_id=task))
    assert sorted((r.row, r.status) for r in described) == [
        (rows[0], "Complete"),
        (rows[1], "Failed"),
        (rows[2], "Complete"),
    ]
    assert [r.description for r in described if r.status == "Failed"] == ["the node answered 404"]
    assert a.task_counts_since(0) == {"preload": 3}


def test_the_stream_carries_every_change_and_says_when_it_was_trimmed(
    redis_server: RedisServer,
) -> None:
    """A reader gets each changed record as it is now, new tasks whole, and None once
    the stream no longer holds what it missed (not when only what it read is gone)."""
    a, b = RedisStore(redis_server.url, "a"), RedisStore(redis_server.url, "b")
    start = b.snapshot()
    added = a.add_domain(record())
    a.add_domain(record("gone.example.com"))
    a.delete_domain("gone.example.com")
    a.put_certificate(Certificate("video.example.com", "c", "CERT", "KEY"))
    task = a.add_task("file", [("video.example.com", "video.example.com/a.mp4")], True)
    a.put_access_key(AccessKey("fleet-key", "s" * 20, read_only=True))
    delta = b.read_changes(start.last_id, seen=start.seen)
    assert delta is not None and delta.last_id != start.last_id and delta.seen == 6
    assert delta.domains == {"video.example.com": added, "gone.example.com": None}
    assert list(delta.certificates) == ["video.example.com"]
    assert [(t.task_id, t.path, t.force) for t in delta.tasks] == [
        (task, "video.example.com/a.mp4", True)
    ]
    assert delta.keys == [AccessKey("fleet-key", "s" * 20, read_only=True)]
    assert b.read_changes(delta.last_id, seen=delta.seen) == replace(
        delta, version=None, domains={}, certificates={}, keys=None, tasks=[]
    )
    # Trimmed (by an operator, or the retention): a reader at the start must read a
    # snapshot; one that had read all that was removed goes on.
    a.redis.xtrim(a._k("changes"), maxlen=1, approximate=False)
    assert b.read_changes(start.last_id, seen=start.seen) is None
    assert b.read_changes(delta.last_id, seen=delta.seen) is not None
    # A quiet day: everything it read is trimmed as the next change comes; not a miss.
    a.redis.xtrim(a._k("changes"), maxlen=0, approximate=False)
    a.update_domains([added])
    later = b.read_changes(delta.last_id, seen=delta.seen)
    assert later is not None and list(later.domains) == ["video.example.com"]
    # Redis that lost its data (a new, empty server): the reader's history is gone.
    a.redis.delete(a._k("changes"))
    assert b.read_changes(later.last_id, seen=later.seen) is None


def test_file_keys_are_seeded_once_and_removal_sticks(redis_server: RedisServer) -> None:
    """The file's [[access_keys]] reach Redis; a key removed there is not brought back by
    the same file, only by a changed one."""
    store = RedisStore(redis_server.url, "a")
    key = AccessKey("ops", "x" * 24)
    assert store.import_file_keys([key]) == ["ops"]
    assert store.access_keys() == [key]
    assert store.delete_access_key("ops")
    assert store.import_file_keys([key]) == []
    assert store.access_keys() == []
    rotated = AccessKey("ops", "y" * 24)
    assert store.import_file_keys([rotated]) == ["ops"]
    assert store.access_keys() == [rotated]


def test_redis_out_of_reach_is_store_unavailable(redis_server: RedisServer) -> None:
    """A stopped Redis is StoreUnavailable, quickly; it works again once back."""
    store = RedisStore(redis_server.url, "a")
    store.add_domain(record())
    redis_server.stop()
    with pytest.raises(StoreUnavailable):
        store.domains()
    with pytest.raises(StoreUnavailable):
        store.add_task("file", [("video.example.com", "video.example.com/a")], False)
    redis_server.start()
    assert [d.name for d in store.domains()] == ["video.example.com"]


def test_a_connection_dropped_on_the_way_is_made_again(redis_server: RedisServer) -> None:
    """A pooled connection that a middlebox forgot (or a Redis restarted) fails only
    when used: the call is made again once on a new connection, not refused with 503."""
    proxy = DroppingProxy(redis_server.port)
    try:
        store = RedisStore(f"redis://127.0.0.1:{proxy.port}/0", "a")
        stored = store.add_domain(record())
        proxy.drop()
        assert store.update_domains([stored])[0].revision == stored.revision + 1
        proxy.drop()
        assert store.add_task("file", [("video.example.com", "video.example.com/a")], False)
        assert proxy.accepts == 3  # a new connection each time, the first call's reused
        store.close()
    finally:
        proxy.close()


def test_a_task_read_from_the_nodes_copy_is_never_complete(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """With Redis out of reach the API reads tasks from the node's copy, which knows only
    this node's part: a task its workers applied is still Refreshing there (Complete
    means applied on every node, which only Redis can say)."""
    fleet = RedisStore(redis_server.url, "a")
    fleet.add_domain(record())
    fleet.heartbeat(1)
    task_id = fleet.add_task("file", [("video.example.com", "video.example.com/a")], False)
    replica = Replica(tmp_path / "state")
    replica.replace_all(fleet.snapshot())
    replica.set_workers(1)
    assert [t.task_id for t in replica.pending_refreshes(0)] == [task_id]
    replica.ack_refreshes([task_id], 0)  # applied by this node's only worker
    store = FleetStore(fleet, replica)
    assert store.tasks(TaskQuery(task_id=task_id))[1][0].status == "Refreshing"  # Redis's
    redis_server.stop()
    total, [task] = store.tasks(TaskQuery(task_id=task_id))
    assert (total, task.status) == (1, "Refreshing")
    assert store.tasks(TaskQuery(status="Complete")) == (0, [])
    assert [t.task_id for t in store.tasks(TaskQuery(status="Refreshing"))[1]] == [task_id]
    redis_server.start()
    fleet.ack_tasks([task_id])  # as the node's follower tells Redis
    assert fleet.tasks(TaskQuery(task_id=task_id))[1][0].status == "Complete"
