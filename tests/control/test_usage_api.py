"""Usage through the API: requests made through a real node's edge are counted, exactly,
within a sampling period, by the CDN's actions (through the official SDK) and vodedge's."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_node import FULL, READ_ONLY, ApiNode, start_node
from edge_harness import wait_until
from test_actions_sdk import NewSdk, _refusal
from usage_tally import (
    SAMPLE_SECONDS,
    USAGE_ENV,
    Tally,
    as_totals,
    last_hour,
    totals,
    video_usage,
)

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
DOMAIN = "preloaded.example.com"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiNode]:
    work = tmp_path_factory.mktemp("usage-node")
    (work / "origin").mkdir()
    shutil.copyfile(SAMPLES / "talk.mp4", work / "origin" / "talk.mp4")
    server = start_node(work, workers=2, env=USAGE_ENV)
    try:
        yield ApiNode(server)
    finally:
        server.stop()


def _split_on(node: ApiNode) -> None:
    functions = [{"functionName": "ali_video_split",
                  "functionArgs": [{"argName": "enable", "argValue": "on"}]}]  # fmt: skip
    NewSdk(node)("BatchSetCdnDomainConfig", DomainNames=DOMAIN, Functions=json.dumps(functions))


def test_requests_through_the_edge_are_counted_exactly(node: ApiNode) -> None:
    sdk = NewSdk(node)
    whole = (SAMPLES / "talk.mp4").stat().st_size
    port = node.server.port
    tally = Tally()
    _split_on(node)
    # Until the switch is served (each try is a request the usage counts too).
    wait_until(
        lambda: (
            tally.get(port, DOMAIN, "/talk.mp4?ali_audio_only=1", "audio_only", whole).header(
                "Content-Type"
            )
            == "audio/mp4"
        ),
        5,
        "audio extraction on",
        interval=0.05,
    )
    for _ in range(3):
        assert tally.get(port, DOMAIN, "/talk.mp4", "plain").body
    for _ in range(2):
        tally.get(port, DOMAIN, "/talk.mp4?ali_audio_only=1", "audio_only", whole)
    assert tally.get(port, DOMAIN, "/missing.mp4", "plain").status == 404
    assert tally.get(port, DOMAIN, "/talk.mp4?start=1&end=2", "plain").status == 200
    assert tally.lookups >= 6 and tally.hits >= 4 and tally.saved > 0
    done = time.monotonic()
    expected = as_totals(tally)

    deadline = done + SAMPLE_SECONDS + 2.0
    while True:
        got = totals(video_usage(node.old_client(), DOMAIN, **last_hour()))
        shown = {name: got.get(name) for name in expected}
        if shown == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    took = time.monotonic() - done
    assert shown == expected
    for name, value in got.items():  # nothing counted that was not made
        assert expected.get(name, 0) == value, name
    print(f"counted {took:.2f} s after the last request (sampling every {SAMPLE_SECONDS} s)")

    # The CDN's own actions, through the current SDK's models, say the same.
    window = last_hour()
    traffic = sdk("DescribeDomainTrafficData", DomainName=DOMAIN, **window)
    assert traffic["DataInterval"] == "60" and traffic["DomainName"] == DOMAIN
    modules = traffic["TrafficDataPerInterval"]["DataModule"]
    assert 60 <= len(modules) <= 62
    assert sum(int(m["Value"]) for m in modules) == tally.traffic
    qps = sdk("DescribeDomainQpsData", DomainName=DOMAIN, **window)
    assert sum(int(m["AccValue"]) for m in qps["QpsDataInterval"]["DataModule"]) == sum(
        tally.requests.values()
    )
    hour = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime())
    end = time.strftime("%Y-%m-%dT%H:59:59Z", time.gmtime())
    rates = sdk(
        "DescribeDomainReqHitRateData",
        DomainName=DOMAIN,
        Interval="3600",
        StartTime=hour,
        EndTime=end,
    )
    [module] = rates["ReqHitRateInterval"]["DataModule"]
    if time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(done - 5)) == hour:  # all in this hour
        assert module["Value"] == f"{100 * tally.hits / tally.lookups:.2f}"
    # The real-time actions: by the minute over the last hour, as their models read them.
    live = sdk("DescribeDomainRealTimeTrafficData", DomainName=DOMAIN)
    assert live["DataInterval"] == "60"
    assert sum(int(m["Value"]) for m in live["RealTimeTrafficDataPerInterval"]["DataModule"]) == (
        tally.traffic
    )
    qps = sdk("DescribeDomainRealTimeQpsData", DomainName=DOMAIN)["Data"]["QpsModel"]
    assert 60 <= len(qps) <= 61
    assert round(sum(m["Qps"] * 60 for m in qps)) == sum(tally.requests.values())
    hit = sdk(
        "DescribeDomainRealTimeReqHitRateData",
        DomainName=DOMAIN,
        StartTime=window["StartTime"],
        EndTime=window["EndTime"],
    )
    minutes = hit["Data"]["ReqHitRateDataModel"]
    assert all(0.0 <= m["ReqHitRate"] <= 1.0 for m in minutes)
    assert any(m["ReqHitRate"] > 0 for m in minutes)
    # Every domain together holds at least this one (the unknown-Host refusal too).
    everything = totals(video_usage(node.old_client(), None, **last_hour()))
    assert everything["Requests"] >= expected["Requests"]


def test_a_read_only_key_reads_usage_and_bad_windows_are_refused(node: ApiNode) -> None:
    reader = NewSdk(node, READ_ONLY)
    answer = reader("DescribeDomainTrafficData", DomainName=DOMAIN)
    # Without a window: the last 24 hours by 5 minutes, as the CDN answers.
    assert answer["DataInterval"] == "300"
    assert 288 <= len(answer["TrafficDataPerInterval"]["DataModule"]) <= 289
    from aliyunsdkcore.acs_exception.exceptions import ServerException

    client = node.old_client(FULL)
    cases = {
        "InvalidInterval.Malformed": {"Interval": "61"},
        "InvalidEndTime.Mismatch": {
            "StartTime": "2026-01-02T00:00:00Z",
            "EndTime": "2026-01-01T00:00:00Z",
        },
        "InvalidStartTime.Malformed": {"StartTime": "yesterday", "EndTime": "2026-01-01T00:00Z"},
        "MissingParameter": {"StartTime": "2026-01-01T00:00:00Z"},
        "InvalidTime.Malformed": {"Interval": "60", **_days_ago(3)},
        "InvalidStartTime.ValueNotSupported": {"Interval": "86400", **_days_ago(400)},
    }
    for code, params in cases.items():
        with pytest.raises(ServerException) as raised:
            video_usage(client, DOMAIN, **params)
        assert raised.value.get_error_code() == code, (params, raised.value)
        assert raised.value.get_http_status() == 400
    with pytest.raises(ServerException) as raised:
        video_usage(client, "nowhere.example.com")
    assert raised.value.get_error_code() == "InvalidDomain.NotFound"
    # The real-time actions need a domain, and span 31 days at most.
    assert _refusal(reader, "DescribeDomainRealTimeTrafficData") == "MissingParameter"
    assert (
        _refusal(reader, "DescribeDomainRealTimeQpsData", DomainName=DOMAIN, **_days_ago(32))
        == "InvalidTime.Malformed"
    )
    with pytest.raises(ServerException) as raised:
        video_usage(client, ",".join(f"d{i}.example.com" for i in range(501)))
    assert raised.value.get_error_code() == "DomainNameOverLimit"
    # 100 domains' minutes over a day (144,000 buckets) are more than one call reads.
    names = [f"d{i}.example.com" for i in range(100)]
    sources = json.dumps([{"content": "127.0.0.1", "type": "ipaddr", "port": 80}])
    sdk = NewSdk(node)
    for name in names:
        sdk("AddCdnDomain", DomainName=name, CdnType="video", Sources=sources)
    with pytest.raises(ServerException) as raised:
        video_usage(client, ",".join(names), Interval="300")
    assert raised.value.get_error_code() == "DomainNameOverLimit"
    answer = video_usage(client, ",".join(names[:60]), Interval="300")
    assert len(answer["VideoUsageDataPerInterval"]["DataModule"]) in (288, 289)


def _days_ago(days: int) -> dict[str, str]:
    now = time.time()
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "StartTime": time.strftime(stamp, time.gmtime(now - days * 86400)),
        "EndTime": time.strftime(stamp, time.gmtime(now)),
    }


def test_what_was_counted_since_the_last_sample_is_kept_when_the_node_stops(
    tmp_path: Path,
) -> None:
    (tmp_path / "origin").mkdir()
    shutil.copyfile(SAMPLES / "talk.mp4", tmp_path / "origin" / "talk.mp4")
    # A period no test waits for: only the sample taken as the node stops can count these.
    server = start_node(tmp_path, env={"VODEDGE_USAGE_SAMPLE_SECONDS": "3600"})
    tally = Tally()
    try:
        for _ in range(2):
            assert tally.get(server.port, DOMAIN, "/talk.mp4", "plain").status == 200
        assert (
            totals(video_usage(ApiNode(server).old_client(), DOMAIN, **last_hour())).get("Requests")
            == 0
        )
    finally:
        server.stop()
    server.start()  # the same state directory
    try:
        got = totals(video_usage(ApiNode(server).old_client(), DOMAIN, **last_hour()))
        assert {name: got.get(name) for name in as_totals(tally)} == as_totals(tally)
    finally:
        server.stop()
