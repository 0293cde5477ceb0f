"""Three real nodes sharing one real redis-server: a change through one node's API is
served by the others within a second, a purge through one drops the object on all,
and an outage of Redis stops no node from serving and loses no purge."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from api_client import Key
from api_node import FULL, ApiNode, keys_toml
from edge_harness import FaultOrigin, Vodedge, http_request, running, seen_within, wait_until
from edge_media import SAMPLES, MediaDir
from redis_harness import RedisServer
from test_actions_sdk import NewSdk

from oracle import vodedge_command

pytestmark = pytest.mark.xdist_group("fleet")


@dataclass
class Fleet:
    redis: RedisServer
    origin: FaultOrigin
    nodes: list[Vodedge]
    talk: str  # the sample's URL path on the origin

    def sdk(self, index: int) -> NewSdk:
        """The official (current) SDK pointed at node `index`'s API."""
        return NewSdk(ApiNode(self.nodes[index]), FULL)

    def sources(self) -> str:
        return json.dumps([{"content": "127.0.0.1", "type": "ipaddr", "port": self.origin.port}])


def _node(work: Path, redis: RedisServer) -> Vodedge:
    # No domain in the file: everything comes from the shared store.
    return Vodedge(work, keys_toml(), workers=1, limits={"--store": redis.url})


@pytest.fixture
def fleet(tmp_path: Path, redis_server: RedisServer) -> Iterator[Fleet]:
    media = MediaDir(tmp_path / "media")
    media.root.mkdir()
    talk = media.add(SAMPLES / "talk.mp4", "v/talk.mp4")
    with running(FaultOrigin(media.root, tmp_path / "origin")) as origin:
        nodes = [_node(tmp_path / name, redis_server) for name in "abc"]
        try:
            # Started side by side: each mostly waits for its own imports and workers.
            with ThreadPoolExecutor(len(nodes)) as pool:
                list(pool.map(Vodedge.start, nodes))
            yield Fleet(redis_server, origin, nodes, talk)
        finally:
            for node in nodes:
                node.stop()


def _answer(node: Vodedge, host: str, path: str) -> tuple[int, str, str]:
    reply = http_request(node.port, host, path, timeout=10)
    return reply.status, reply.header("Content-Type") or "", reply.header("X-Cache") or ""


def _metric(node: Vodedge, name: str) -> float:
    """One unlabelled metric of the node's /metrics."""
    text = http_request(node.admin_port, "127.0.0.1", "/metrics").body.decode()
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, values
    return float(values[0])


def _add_domain(fleet: Fleet, name: str) -> None:
    fleet.sdk(0)("AddCdnDomain", DomainName=name, CdnType="video", Sources=fleet.sources())
    for node in fleet.nodes:
        wait_until(lambda n=node: _answer(n, name, fleet.talk)[0] == 200, 5, f"{name} served")


def _split(on: bool) -> str:
    args = [{"argName": "enable", "argValue": "on" if on else "off"}]
    return json.dumps([{"functionName": "ali_video_split", "functionArgs": args}])


def _audio_only_within_a_second(nodes: list[Vodedge], name: str, path: str, since: float) -> None:
    """Every worker of each node serves `path` audio-only from a second after `since` on,
    by the node's clock (see changed_within)."""
    for node in nodes:
        node.changed_within(
            name,
            since,
            lambda n=node: _answer(n, name, path)[1] == "audio/mp4",
            lambda line: (line["status"], line["function"]) == (200, "audio_only"),
        )


def test_a_change_on_one_node_is_served_by_the_others_within_a_second(fleet: Fleet) -> None:
    """ali_video_split on through node A's API: B and C serve audio-only within 1 s;
    a purge through B drops the object on A and C (the origin is asked again)."""
    name = "fleet.example.com"
    _add_domain(fleet, name)
    path = fleet.talk + "?ali_audio_only=1"
    assert all(_answer(n, name, path)[1] == "video/mp4" for n in fleet.nodes)
    fleet.sdk(0)("BatchSetCdnDomainConfig", DomainNames=name, Functions=_split(True))
    _audio_only_within_a_second(fleet.nodes[1:], name, path, time.time())

    # Each node has the source cached: a second request is a HIT everywhere.
    for node in fleet.nodes:
        _answer(node, name, fleet.talk)
        assert _answer(node, name, fleet.talk)[2] == "HIT"
    asked = len(fleet.origin.requests(fleet.talk))
    task = fleet.sdk(1)("RefreshObjectCaches", ObjectPath=f"{name}{fleet.talk}", ObjectType="File")
    task_id = task["RefreshTaskId"]

    def complete() -> bool:
        tasks = fleet.sdk(1)("DescribeRefreshTasks", TaskId=task_id)["Tasks"]["CDNTask"]
        return bool(tasks) and all(t["Status"] == "Complete" for t in tasks)

    wait_until(complete, 30, "the purge to be Complete on every node")
    for node in (fleet.nodes[0], fleet.nodes[2]):
        assert _answer(node, name, fleet.talk)[2] == "MISS"
    assert len(fleet.origin.requests(fleet.talk)) > asked


def test_redis_down_nodes_serve_writes_refused_and_nothing_lost(fleet: Fleet) -> None:
    """Redis killed: every node serves (HIT and MISS), writes are 503, a node restarted
    meanwhile serves its last configuration; Redis back: a purge accepted while a node
    was stopped reaches it, and a change made after reaches every node."""
    name = "outage.example.com"
    _add_domain(fleet, name)
    for node in fleet.nodes:
        node.prime(name, fleet.talk)  # stored: a MISS from now on is the purge's
    a, b, c = fleet.nodes
    c.stop()  # away during the purge
    task = fleet.sdk(1)("RefreshObjectCaches", ObjectPath=f"{name}{fleet.talk}", ObjectType="File")
    assert task["RefreshTaskId"]
    # A and B drop the object before the outage (applied later, it would drop the copy
    # the outage's requests below fill, and a HIT expected there would be a MISS).
    for node in (a, b):
        wait_until(lambda n=node: _answer(n, name, fleet.talk)[2] == "MISS", 5, "the purge")
    assert _metric(a, "vodedge_store_up") == 1 and _metric(a, "vodedge_store_version") > 0
    fleet.redis.stop()
    wait_until(lambda: _metric(b, "vodedge_store_up") == 0, 5, "store_up to show the outage")
    assert http_request(b.admin_port, "127.0.0.1", "/healthz").status == 200
    for node in (a, b):
        assert _answer(node, name, fleet.talk)[0] == 200
        assert _answer(node, name, fleet.talk)[2] == "HIT"
        assert _answer(node, name, fleet.talk + "?new=1")[0] == 200  # a MISS, from the origin
    with pytest.raises(Exception) as refused:
        fleet.sdk(0)("StopCdnDomain", DomainName=name)
    error: Any = refused.value  # the SDK's TeaException: the API's code, from a 503
    assert getattr(error, "code", None) == "ServiceUnavailable", error
    # Reads answer from the node's copy.
    detail = fleet.sdk(0)("DescribeCdnDomainDetail", DomainName=name)
    assert detail["GetDomainDetailModel"]["DomainName"] == name
    listed = fleet.sdk(1)("DescribeUserDomains")["Domains"]["PageData"]
    assert name in [d["DomainName"] for d in listed]
    # A node started during the outage serves from its local copy (C had the cached
    # object and has not applied the purge yet: a HIT).
    c.start()
    assert _answer(c, name, fleet.talk)[:2] == (200, "video/mp4")
    a.restart()
    assert _answer(a, name, fleet.talk)[0] == 200

    fleet.redis.start()
    # C applies the purge it missed: its next answer comes from the origin again.
    wait_until(lambda: _answer(c, name, fleet.talk + "?probe")[0] == 200, 5, "C serving")

    wait_until(lambda: _answer(c, name, fleet.talk)[2] == "MISS", 10, "the purge on C")
    for node in fleet.nodes:
        wait_until(lambda n=node: _metric(n, "vodedge_store_up") == 1, 5, "store_up: Redis back")
    assert _metric(b, "vodedge_store_lag_seconds") < 5
    # A change after the outage reaches every node within a second.
    fleet.sdk(0)("BatchSetCdnDomainConfig", DomainNames=name, Functions=_split(True))
    _audio_only_within_a_second(fleet.nodes, name, fleet.talk + "?ali_audio_only=1", time.time())


def test_a_node_stopped_during_a_change_and_a_purge_catches_up(fleet: Fleet) -> None:
    """A change and a purge made while C is stopped are applied by C as it starts: it
    replays the stream from the last id it applied."""
    name = "away.example.com"
    _add_domain(fleet, name)
    c = fleet.nodes[2]
    _answer(c, name, fleet.talk)
    assert _answer(c, name, fleet.talk)[2] == "HIT"
    c.stop()
    fleet.sdk(0)("BatchSetCdnDomainConfig", DomainNames=name, Functions=_split(True))
    fleet.sdk(1)("RefreshObjectCaches", ObjectPath=f"{name}{fleet.talk}", ObjectType="File")
    c.start()
    started = time.time()
    # The purge first (an audio-only request would bring the object back).
    seen_within(lambda: _answer(c, name, fleet.talk)[2] == "MISS", started, "the purge on C")
    path = fleet.talk + "?ali_audio_only=1"
    seen_within(lambda: _answer(c, name, path)[1] == "audio/mp4", started, "C to catch up")
    assert "reading it all" not in c.stderr_log.read_text()  # replayed, not resynced


def test_a_node_behind_the_trimmed_stream_reads_everything_again(fleet: Fleet) -> None:
    """The stream trimmed past a stopped node's last id: it reads a snapshot when it
    starts, and is right (the change, the deletion, and the purge it missed)."""
    name, gone = "trim.example.com", "gone.example.com"
    _add_domain(fleet, name)
    _add_domain(fleet, gone)
    c = fleet.nodes[2]
    _answer(c, name, fleet.talk)
    assert _answer(c, name, fleet.talk)[2] == "HIT"
    c.stop()
    fleet.sdk(0)("BatchSetCdnDomainConfig", DomainNames=name, Functions=_split(True))
    fleet.sdk(0)("DeleteCdnDomain", DomainName=gone)
    fleet.sdk(1)("RefreshObjectCaches", ObjectPath=f"{name}{fleet.talk}", ObjectType="File")
    client = redis.Redis(port=fleet.redis.port)
    client.xtrim("vodedge:changes", maxlen=0, approximate=False)
    client.close()
    c.start()
    assert "reading it all" in c.stderr_log.read_text()
    seen_within(lambda: _answer(c, name, fleet.talk)[2] == "MISS", time.time(), "the purge on C")
    assert _answer(c, name, fleet.talk + "?ali_audio_only=1")[1] == "audio/mp4"
    assert _answer(c, gone, fleet.talk)[0] == 403
    # And it follows the stream again afterwards.
    fleet.sdk(0)("BatchSetCdnDomainConfig", DomainNames=name, Functions=_split(False))
    path = fleet.talk + "?ali_audio_only=1"
    seen_within(lambda: _answer(c, name, path)[1] == "video/mp4", time.time(), "C following")


def _keys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*vodedge_command(), "keys", *args], capture_output=True, text=True, timeout=60
    )


def test_access_keys_live_in_redis(fleet: Fleet) -> None:
    """`vodedge keys add/remove --store` changes the keys of every node within a second;
    a read-only key stays read-only; a node authenticates from its copy while Redis is
    out of reach."""
    added = _keys("add", "ops-key", "--store", fleet.redis.url)
    answered = time.time()
    assert added.returncode == 0, added.stderr
    key_id, secret = added.stdout.split()
    viewer = _keys("add", "viewer-key", "--read-only", "--store", fleet.redis.url)
    viewer_key = Key(*viewer.stdout.split())
    ops = Key(key_id, secret)
    for node in fleet.nodes:

        def answers(n: Vodedge = node) -> bool:
            try:
                NewSdk(ApiNode(n), ops)("DescribeUserDomains")
            except Exception:
                return False
            return True

        seen_within(answers, answered, "the new key on every node")
    with pytest.raises(Exception) as refused:
        NewSdk(ApiNode(fleet.nodes[1]), viewer_key)("StopCdnDomain", DomainName="x.example.com")
    assert getattr(refused.value, "code", None) == "Forbidden.RAM"
    listed = _keys("list", "--store", fleet.redis.url).stdout
    assert "ops-key\tfull" in listed and "viewer-key\tread-only" in listed
    assert secret not in listed
    assert _keys("remove", "ops-key", "--store", fleet.redis.url).returncode == 0
    for node in fleet.nodes:

        def refuses(n: Vodedge = node) -> bool:
            try:
                NewSdk(ApiNode(n), ops)("DescribeUserDomains")
            except Exception as error:
                return getattr(error, "code", None) == "InvalidAccessKeyId.NotFound"
            return False

        wait_until(refuses, 1.0, "the removed key refused on every node")
    gone = _keys("remove", "ops-key", "--store", fleet.redis.url)
    assert gone.returncode == 2 and "no access key ops-key" in gone.stderr
    fleet.redis.stop()
    a = fleet.nodes[0]
    a.restart()  # started during the outage: the keys come from its copy
    assert NewSdk(ApiNode(a), viewer_key)("DescribeUserDomains")["RequestId"]
    down = _keys("list", "--store", fleet.redis.url)
    assert down.returncode == 2 and "Traceback" not in down.stderr


def test_a_prefetch_reaches_every_node_and_a_missing_object_fails(fleet: Fleet) -> None:
    """PushObjectCache through A: every node fetches the object once (the next request
    is a HIT on each) and the task is Complete; an object the origin does not have is
    Failed, with the node's reason."""
    name = "push.example.com"
    _add_domain(fleet, name)
    pushed = fleet.talk + "?pushed=1"  # an object no node has yet (_add_domain fetched talk)

    def fetched() -> int:
        return sum(r["query"] == "pushed=1" for r in fleet.origin.requests(fleet.talk))

    assert fetched() == 0
    push = fleet.sdk(0)("PushObjectCache", ObjectPath=f"{name}{pushed}")["PushTaskId"]

    def status(task_id: str) -> list[tuple[str, str]]:
        tasks = fleet.sdk(2)("DescribeRefreshTasks", TaskId=task_id)["Tasks"]["CDNTask"]
        return [(t["Status"], t.get("Description", "")) for t in tasks]

    wait_until(lambda: status(push) == [("Complete", "")], 10, "the prefetch on every node")
    assert fetched() == len(fleet.nodes)
    for node in fleet.nodes:
        assert _answer(node, name, pushed)[2] == "HIT"
    missing = fleet.sdk(1)("PushObjectCache", ObjectPath=f"{name}/v/none.mp4")["PushTaskId"]
    wait_until(lambda: status(missing)[0][0] != "Refreshing", 10, "the failed prefetch")
    assert status(missing) == [("Failed", "the node answered 404")]


def test_an_idle_fleet_costs_redis_one_stream_read_per_node(fleet: Fleet) -> None:
    """Idle, Redis sees each node's blocking stream read and its heartbeat, nothing per
    worker and no polling of a version or re-reading of the domains."""
    _add_domain(fleet, "idle.example.com")
    client = redis.Redis(port=fleet.redis.port, decode_responses=True)

    def calls() -> dict[str, int]:
        counts: dict[str, int] = {}
        for name, stats in client.info("commandstats").items():
            command = name.removeprefix("cmdstat_").partition("|")[0]  # xinfo|stream: xinfo
            counts[command] = counts.get(command, 0) + int(stats["calls"])
        return counts

    time.sleep(1.0)  # the last acknowledgements and heartbeats of the change settle
    # As each minute ends, a node that served requests adds that minute's usage (a script
    # call per domain: test_fleet_usage covers it); the window measured holds no minute end.
    if 60.0 - time.time() % 60.0 < 5.0:
        time.sleep(60.0 - time.time() % 60.0 + 1.5)
    before, started = calls(), time.monotonic()
    time.sleep(3.0)
    after, took = calls(), time.monotonic() - started
    client.close()
    used = {name: after[name] - before.get(name, 0) for name in after}
    used = {name: count for name, count in used.items() if count and name != "info"}
    # (xinfo: a caught-up reader checks now and then that Redis kept its stream)
    assert set(used) <= {"xread", "xinfo", "zadd", "hsetnx", "hset", "zremrangebyscore"}, used
    per_node = sum(used.values()) / len(fleet.nodes) / took
    assert used["xread"] >= len(fleet.nodes) * took  # every node is reading the stream
    assert per_node < 10, used
