"""Usage on a fleet: two real nodes sharing a real redis-server each count what they
serve, and either node's API answers the sum of both."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_node import FULL, ApiNode, keys_toml
from edge_harness import FaultOrigin, Vodedge, running, wait_until
from edge_media import SAMPLES, MediaDir
from redis_harness import RedisServer
from test_actions_sdk import NewSdk
from usage_tally import SAMPLE_SECONDS, USAGE_ENV, Tally, as_totals, last_hour, totals, video_usage

pytestmark = pytest.mark.xdist_group("fleet")
DOMAIN = "usage.example.com"


@pytest.fixture
def nodes(tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[list[Vodedge], str]]:
    media = MediaDir(tmp_path / "media")
    media.root.mkdir()
    talk = media.add(SAMPLES / "talk.mp4", "v/talk.mp4")
    with running(FaultOrigin(media.root, tmp_path / "origin")) as origin:
        nodes = [
            Vodedge(
                tmp_path / name, keys_toml(), env=USAGE_ENV, limits={"--store": redis_server.url}
            )
            for name in "ab"
        ]
        try:
            for node in nodes:
                node.start()
            sources = [{"content": "127.0.0.1", "type": "ipaddr", "port": origin.port}]
            NewSdk(ApiNode(nodes[0]), FULL)(
                "AddCdnDomain", DomainName=DOMAIN, CdnType="video", Sources=json.dumps(sources)
            )
            yield nodes, talk
        finally:
            for node in nodes:
                node.stop()


def test_either_node_answers_the_sum_of_both(nodes: tuple[list[Vodedge], str]) -> None:
    servers, talk = nodes
    tallies = [Tally(), Tally()]
    for server, tally in zip(servers, tallies, strict=True):
        wait_until(
            lambda s=server, t=tally: t.get(s.port, DOMAIN, talk, "plain").status == 200,
            5,
            "the domain served",
            interval=0.05,
        )
    for _ in range(2):
        tallies[0].get(servers[0].port, DOMAIN, talk, "plain")
    for _ in range(3):
        tallies[1].get(servers[1].port, DOMAIN, talk + "?x=1", "plain")
    tallies[1].get(servers[1].port, DOMAIN, "/v/missing.mp4", "plain")
    expected = as_totals(tallies[0].add(tallies[1]))
    alone = as_totals(tallies[0])
    assert expected["Requests"] > alone["Requests"] > 0
    done = time.monotonic()
    for server in servers:
        client = ApiNode(server).old_client()
        while True:
            got = totals(video_usage(client, DOMAIN, **last_hour()))
            shown = {name: got.get(name, 0) for name in expected}
            if shown == expected or time.monotonic() > done + SAMPLE_SECONDS + 3.0:
                break
            time.sleep(0.1)
        assert shown == expected
        assert {k: v for k, v in got.items() if v} == {k: v for k, v in expected.items() if v}
        # Both nodes' samples are in it, each under its fleet name.
        nodes = video_usage(client, DOMAIN, **last_hour())["Nodes"]["Node"]
        names = {(s.work / "state" / "node-name").read_text().strip() for s in servers}
        assert {n["NodeName"] for n in nodes} == names and len(names) == 2
