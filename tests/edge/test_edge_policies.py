"""The finer arguments of the domain functions: TTL rule switches, referer redirects, IP
allow lists, limit_rate's free prefix and hours, cache-key and origin parameters."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from edge_config import RATE, Origins, domain, domains, function
from edge_harness import Vodedge, running
from edge_media import SAMPLES

pytestmark = pytest.mark.xdist_group("edge_policies")


def _quiet_hours() -> tuple[str, str]:
    """A limit_rate window that excludes this hour and the next."""
    hour = time.localtime().tm_hour
    return (str(hour + 2), "24") if hour < 22 else ("2", "22")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker with a domain per option under test."""
    fault, nginx = origins.fault.url, origins.nginx.url
    start, end = _quiet_hours()

    def ttl(**args: str) -> str:
        return function("path_based_ttl_set", ttl="3600", path="/policies", **args)

    extra = "".join(
        [
            domain("origin-first.test", fault, ttl(swift_origin_cache_high="on")),
            domain("rule-first.test", fault, ttl(swift_no_cache_low="on")),
            domain("follow.test", fault, ttl(swift_follow_cachetime="on")),
            domain(
                "revalidate.test",
                fault,
                function("path_based_ttl_set", ttl="0", path="/policies", force_revalidate="on"),
            ),
            domain(
                "redirect.test",
                nginx,
                function(
                    "referer_white_list_set",
                    refer_domain_allow_list="good.example",
                    redirect_url="https://good.example/denied",
                ),
            ),
            domain("allow.test", nginx, function("ip_allow_list_set", ip_list="127.0.0.0/8")),
            domain("allow-other.test", nginx, function("ip_allow_list_set", ip_list="10.0.0.0/8")),
            domain(
                "prefix.test",
                nginx,
                function("limit_rate", ali_limit_rate="256k", ali_limit_rate_after="1m"),
            ),
            domain(
                "hours.test",
                nginx,
                function(
                    "limit_rate",
                    ali_limit_rate="100k",
                    ali_limit_start_hour=start,
                    ali_limit_end_hour=end,
                ),
            ),
            domain(
                "remove.test",
                fault,
                function("ali_remove_args", ali_remove_args="sign t", keep_oss_args="off"),
            ),
            domain(
                "keyonly.test",
                fault,
                function("set_hashkey_args", hashkey_args="v", disable="on", keep_oss_args="off"),
            ),
        ]
    )
    work = tmp_path_factory.mktemp("vodedge-policies")
    with running(Vodedge(work, domains(origins, extra=extra))) as server:
        yield server


def _object(origins: Origins, name: str, **behaviour: object) -> tuple[str, bytes]:
    path = origins.media.add(SAMPLES / "talk.mp4", f"policies/{name}")
    origins.fault.behave(path, **behaviour)
    return path, origins.media.file(path).read_bytes()


# --- TTL rule switches -------------------------------------------------------------------


def test_swift_origin_cache_high_lets_the_origins_max_age_win(
    edge: Vodedge, origins: Origins
) -> None:
    """The rule says an hour, the origin max-age=1: with the switch on, the origin wins."""
    path, _ = _object(origins, "origin-first.mp4", cache_control="max-age=1")
    edge.prime("origin-first.test", path)
    edge.wait_expired("origin-first.test", path)
    reply = edge.get("origin-first.test", path, method="HEAD")
    assert reply.header("X-Cache") in ("REVALIDATED", "EXPIRED"), reply


def test_without_the_switch_the_rule_wins(edge: Vodedge, origins: Origins) -> None:
    """The same origin max-age=1 under a plain one-hour rule: still a HIT later."""
    path, _ = _object(origins, "rule-wins.mp4", cache_control="max-age=1")
    edge.prime("follow.test", path)
    time.sleep(1.2)  # past the origin's max-age; the rule keeps the row an hour
    assert edge.get("follow.test", path, method="HEAD").header("X-Cache") == "HIT"


def test_swift_no_cache_low_caches_what_the_origin_calls_no_store(
    edge: Vodedge, origins: Origins
) -> None:
    """The origin says no-store; with the switch on, the rule's hour applies."""
    path, source = _object(origins, "rule-first.mp4", cache_control="no-store")
    assert edge.get("rule-first.test", path).body == source
    reply = edge.get("rule-first.test", path)
    assert reply.header("X-Cache") == "HIT" and reply.body == source
    assert len(origins.fault.requests(path)) == 1


def test_swift_follow_cachetime_tells_clients_the_ttl(edge: Vodedge, origins: Origins) -> None:
    """The client is told to cache for the rule's TTL (what is left of it)."""
    path, _ = _object(origins, "follow.mp4")
    reply = edge.get("follow.test", path)
    control = reply.header("Cache-Control") or ""
    assert "max-age=" in control, reply
    max_age = int(control.split("max-age=")[1].split(",")[0])
    assert 3590 <= max_age <= 3600, control


def test_force_revalidate_asks_the_origin_every_time(edge: Vodedge, origins: Origins) -> None:
    """ttl 0 with force_revalidate: stored, yet every request is revalidated (304s)."""
    path, source = _object(origins, "revalidate.mp4")
    assert edge.get("revalidate.test", path).header("X-Cache") == "MISS"
    for _ in range(3):
        reply = edge.get("revalidate.test", path)
        assert reply.header("X-Cache") == "REVALIDATED" and reply.body == source, reply
    conditional = [r for r in origins.fault.requests(path) if r["if_none_match"]]
    assert len(conditional) >= 3 and all(r["status"] == 304 for r in conditional)


# --- access ----------------------------------------------------------------------------------


def test_a_refused_referer_is_redirected_when_the_list_says_so(
    edge: Vodedge, origins: Origins
) -> None:
    """redirect_url: a refused request gets 302 to it instead of 403."""
    path = origins.media.add(SAMPLES / "talk.mp4", "policies/redirect.mp4")
    reply = edge.get("redirect.test", path, {"Referer": "http://evil.example/"})
    assert reply.status == 302, reply
    assert reply.header("Location") == "https://good.example/denied"
    assert edge.get("redirect.test", path, {"Referer": "http://good.example/"}).status == 200


def test_ip_allow_list(edge: Vodedge, origins: Origins) -> None:
    """An allow list: 127.0.0.0/8 is served; a list without it refuses us."""
    path = origins.media.add(SAMPLES / "talk.mp4", "policies/allow.mp4")
    assert edge.get("allow.test", path, method="HEAD").status == 200
    refused = edge.get("allow-other.test", path)
    assert refused.status == 403 and refused.header("X-Vodedge-Error") == "ip_denied"


# --- limit_rate --------------------------------------------------------------------------


def test_limit_rate_after_a_free_prefix(edge: Vodedge, origins: Origins) -> None:
    """ali_limit_rate_after=1m: 2 MB takes about as long as its second MB at 256 KiB/s."""
    data = os.urandom(2 << 20)
    path = origins.media.write("policies/two-megabytes.bin", data)
    edge.prime("prefix.test", path)
    reply = edge.get("prefix.test", path, timeout=30)
    assert reply.body == data
    limited = ((1 << 20) - RATE // 4) / RATE  # the second MB, paced
    assert limited * 0.85 <= reply.elapsed < limited + 2.5, reply.elapsed


def test_limit_rate_outside_its_hours(edge: Vodedge, origins: Origins) -> None:
    """A limit whose hours are not now leaves the response unlimited."""
    data = os.urandom(1 << 20)
    path = origins.media.write("policies/off-hours.bin", data)
    edge.prime("hours.test", path)
    reply = edge.get("hours.test", path)
    assert reply.body == data and reply.elapsed < 2.0, reply.elapsed


# --- parameters --------------------------------------------------------------------------


def test_ali_remove_args(edge: Vodedge, origins: Origins) -> None:
    """Removed parameters make no cache key, and (keep_oss_args off) never reach the origin."""
    path, _ = _object(origins, "remove.mp4")
    edge.prime("remove.test", path + "?a=1&sign=x&t=1")
    assert (
        edge.get("remove.test", path + "?a=1&sign=y&t=2", method="HEAD").header("X-Cache") == "HIT"
    )
    assert edge.get("remove.test", path + "?a=2&sign=x", method="HEAD").header("X-Cache") == "MISS"
    assert [r["query"] for r in origins.fault.requests(path)] == ["a=1", "a=2"]


def test_hashkey_args_without_keep_oss_args(edge: Vodedge, origins: Origins) -> None:
    """keep_oss_args off: the origin gets only the cache key's parameters."""
    path, _ = _object(origins, "keyonly.mp4")
    assert edge.get("keyonly.test", path + "?v=3&token=abc", method="HEAD").status == 200
    assert [r["query"] for r in origins.fault.requests(path)] == ["v=3"]
