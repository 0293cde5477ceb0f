"""Domain functions from the TOML config through a real vodedge: referer and IP lists,
limit_rate, set_hashkey_args; SIGHUP reloads; /metrics and the access log."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest
from edge_config import RATE, SPLIT, Origins, domain, domains
from edge_harness import Vodedge, catches_sighup, concurrent_gets, running, wait_until
from edge_media import SAMPLES
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.xdist_group("edge_functions")


@pytest.fixture(scope="module")
def talk(origins: Origins) -> str:
    """The plain sample on nginx."""
    return origins.media.add(SAMPLES / "talk.mp4", "functions/talk.mp4")


# --- access lists --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("referer", "allowed"),
    [
        (None, False),  # allow_empty is off
        ("http://good.example/page.html", True),
        ("https://good.example:443/", True),
        ("https://cdn.good.example/player", True),  # a listed domain covers its subdomains
        ("http://evil.example/", False),
        ("http://good.example.evil.test/", False),
        ("http://notgood.example/", False),
        ("good.example", False),  # no scheme, and ignore_scheme is off
        ("", False),
    ],
)
def test_referer_white_list(
    edge: Vodedge, origins: Origins, referer: str | None, allowed: bool
) -> None:
    """Listed referers (and their subdomains) get the object; the rest 403, origin untouched."""
    path = origins.media.add(
        SAMPLES / "talk.mp4", f"functions/referer-{allowed}-{abs(hash(referer))}.mp4"
    )
    headers = {} if referer is None else {"Referer": referer}
    reply = edge.get("referer.test", path, headers, method="HEAD")
    if allowed:
        assert reply.status == 200, reply
    else:
        assert reply.status == 403, reply
        assert reply.header("X-Vodedge-Error") == "referer_denied"
        assert origins.nginx.settled_hits(path) == []


def test_ip_black_list(edge: Vodedge, origins: Origins) -> None:
    """127.0.0.1 on the black list: 403 ip_denied, and the origin hears nothing."""
    path = origins.media.add(SAMPLES / "talk.mp4", "functions/ip-denied.mp4")
    reply = edge.get("blocked.test", path)
    assert reply.status == 403, reply
    assert reply.header("X-Vodedge-Error") == "ip_denied"
    assert origins.nginx.settled_hits(path) == []
    # The same node serves the same client on a domain without the list.
    assert edge.get("video.test", path, method="HEAD").status == 200


def test_ip_black_list_custom_status(edge: Vodedge, origins: Origins) -> None:
    """customize_response_status_code = 451: a refused client gets 451."""
    path = origins.media.add(SAMPLES / "talk.mp4", "functions/ip-451.mp4")
    assert edge.get("status.test", path).status == 451


def test_ip_black_list_reads_x_forwarded_for(edge: Vodedge, origins: Origins) -> None:
    """With ip_acl_xfwd on, a listed address in X-Forwarded-For is refused."""
    path = origins.media.add(SAMPLES / "talk.mp4", "functions/ip-xff.mp4")
    assert edge.get("xff.test", path, method="HEAD").status == 200
    reply = edge.get("xff.test", path, {"X-Forwarded-For": "203.0.113.7, 10.0.0.1"})
    assert reply.status == 403, reply


# --- limit_rate ----------------------------------------------------------------------------


def test_limit_rate_holds_a_response_to_the_rate(edge: Vodedge, origins: Origins) -> None:
    """1 MB at 256 KiB/s takes about 3.6 s (never much less); unlimited it takes no time."""
    data = os.urandom(1_000_000)
    path = origins.media.write("functions/one-megabyte.bin", data)
    edge.prime("slow.test", path)
    edge.prime("video.test", path)
    fast = edge.get("video.test", path)
    assert fast.body == data and fast.elapsed < 1.0, fast.elapsed
    slow = edge.get("slow.test", path, timeout=30)
    assert slow.status == 200 and slow.body == data
    # The pacer lets a quarter second's worth go before it first waits.
    floor = (len(data) - RATE // 4) / RATE
    assert slow.elapsed >= floor * 0.9, f"{slow.elapsed:.2f} s < {floor:.2f} s"
    assert slow.elapsed < floor + 8, slow.elapsed


def test_limit_rate_from_the_query(edge: Vodedge, origins: Origins) -> None:
    """traffic_limit_arg: ?rate=100 holds a 300 kB body to 100 KiB/s (about 2.2 s)."""
    data = os.urandom(300_000)
    path = origins.media.write("functions/rate-arg.bin", data)
    edge.prime("rate-arg.test", path + "?rate=100")
    reply = edge.get("rate-arg.test", path + "?rate=100", timeout=30)
    assert reply.body == data
    rate = 100 << 10
    floor = (len(data) - rate // 4) / rate
    assert reply.elapsed >= floor * 0.9, f"{reply.elapsed:.2f} s < {floor:.2f} s"


# --- cache keys ----------------------------------------------------------------------------


def test_set_hashkey_args(edge: Vodedge, origins: Origins) -> None:
    """Only `v` makes the cache key (in any order); the origin still gets every parameter."""
    path = origins.media.add(SAMPLES / "talk.mp4", "functions/hashkey.mp4")
    origins.fault.behave(path, chunk=64 << 10, drip_after=0, interval=0.005)

    def cache(query: str) -> str | None:
        return edge.get("hashkey.test", f"{path}?{query}", method="HEAD").header("X-Cache")

    assert cache("v=1&a=1") == "MISS"
    edge.prime("hashkey.test", f"{path}?v=1&a=1")
    assert cache("v=1&a=2") == "HIT"
    assert cache("a=3&v=1") == "HIT"
    assert cache("v=2&a=1") == "MISS"
    edge.prime("hashkey.test", f"{path}?v=2&a=1")
    assert cache("v=2") == "HIT"
    assert [r["query"] for r in origins.fault.requests(path)] == ["v=1&a=1", "v=2&a=1"]


# --- SIGHUP --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reloadable(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Two workers whose config file the test rewrites."""
    work = tmp_path_factory.mktemp("vodedge-reload")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        yield server


def _all_answer(server: Vodedge, host: str, path: str, status: int) -> bool:
    # Fresh connections land on either worker: every one must have reloaded.
    return all(server.get(host, path, method="HEAD").status == status for _ in range(12))


def test_sighup_reloads_the_config(reloadable: Vodedge, origins: Origins, talk: str) -> None:
    """A domain added to the file serves after SIGHUP, without a restart; one removed stops;
    a broken file is refused and the running config keeps serving."""
    server = reloadable
    pids = server.worker_pids()
    assert server.get("new.test", talk, method="HEAD").status == 403
    added = domains(origins, extra=domain("new.test", origins.nginx.url, SPLIT))
    server.reload(added)
    wait_until(lambda: _all_answer(server, "new.test", talk, 200), 10, "new.test to serve")
    assert server.worker_pids() == pids, "the workers were restarted, not reloaded"
    server.reload(added.replace('name = "video.test"', 'name = "gone.test"'))
    wait_until(lambda: _all_answer(server, "video.test", talk, 403), 10, "video.test to go")
    refused = server.log_text().count("not reloaded")
    server.reload("this is [not valid toml\n")
    wait_until(lambda: server.log_text().count("not reloaded") > refused, 30, "the refusal")
    assert _all_answer(server, "new.test", talk, 200)
    assert server.proc is not None and server.proc.poll() is None
    refused = server.log_text().count("not reloaded")
    os.kill(server.pid, signal.SIGHUP)  # a second signal on the same broken file
    wait_until(lambda: server.log_text().count("not reloaded") > refused, 30, "the refusal")
    assert server.proc.poll() is None
    assert server.worker_pids() == pids


def test_sighup_while_workers_start_kills_no_worker(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A reload that arrives while the workers are still starting leaves them running."""
    server = Vodedge(tmp_path_factory.mktemp("vodedge-early-hup"), domains(origins), workers=2)
    server.launch()
    try:
        wait_until(lambda: len(server.worker_pids()) == 2, 10, "two workers", interval=0.002)
        first = server.worker_pids()
        wait_until(lambda: catches_sighup(server.pid), 10, "the master's SIGHUP handler")
        os.kill(server.pid, signal.SIGHUP)
        wait_until(server.workers_ready, 10, "the workers to be ready")
        time.sleep(1.0)  # the master would notice a dead worker within 0.5 s
        assert "exited" not in server.log_text(), server.log_text()
        assert server.worker_pids() == first
    finally:
        server.stop()


def test_a_worker_restarted_while_the_config_is_broken_still_serves(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory, talk: str
) -> None:
    """A worker that crashes after a refused reload comes back with the config in force."""
    work = tmp_path_factory.mktemp("vodedge-broken-restart")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        server.reload("this is [not valid toml\n")
        wait_until(lambda: "not reloaded" in server.log_text(), 5, "the refusal")
        victim = server.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: victim not in server.worker_pids() and server.workers_ready(),
            5,
            "a new worker to start",
        )
        survivors = server.worker_pids()
        assert _all_answer(server, "video.test", talk, 200)
        time.sleep(1.0)
        assert server.worker_pids() == survivors, server.log_text()


# --- observability -------------------------------------------------------------------------


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _read_samples(server: Vodedge) -> Samples:
    out = {}
    for family in text_string_to_metric_families(server.metrics()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def _samples(server: Vodedge) -> Samples:
    """The metrics once they stop moving: a worker counts a request after its last byte."""
    last = _read_samples(server)
    for _ in range(50):
        time.sleep(0.1)
        now = _read_samples(server)
        if now == last:
            return now
        last = now
    raise AssertionError("the metrics never settled")


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_two_workers_log_and_count_every_request(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory, talk: str
) -> None:
    """200 concurrent requests over two workers: 200 whole JSON lines, 200 counted."""
    work = tmp_path_factory.mktemp("vodedge-two-logs")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        server.prime("video.test", talk)
        # A request's log line is written just after its response: let the priming
        # requests' lines land before counting.
        settled: list[int] = []
        wait_until(
            lambda: settled.append(len(server.access_lines())) or settled[-2:] == settled[-1:] * 2,
            5,
            "the access log to settle",
        )
        before_lines = len(server.access_lines())
        before = _samples(server)
        replies = concurrent_gets(server.port, [("video.test", talk, {})] * 200)
        assert all(reply.status == 200 for reply in replies)
        wait_until(lambda: len(server.access_lines()) >= before_lines + 200, 5, "200 log lines")
        after = _samples(server)
        lines = server.access_lines()[before_lines:]  # json.loads of every line
        assert len(lines) == 200 and all(line["path"] == talk for line in lines)
        counted = _value(
            after, "vodedge_requests_total", domain="video.test", function="plain", status="200"
        ) - _value(
            before, "vodedge_requests_total", domain="video.test", function="plain", status="200"
        )
        assert counted == 200


def test_metrics_count_requests_bytes_and_cache_lookups(
    edge: Vodedge, origins: Origins, talk: str
) -> None:
    """/metrics on the admin listener moves by exactly what the requests did."""
    edge.prime("video.test", talk)
    size = origins.media.file(talk).stat().st_size
    audio = edge.get("video.test", talk + "?ali_audio_only=1")
    assert audio.status == 200
    before = _samples(edge)
    for _ in range(3):
        assert edge.get("video.test", talk).body == origins.media.file(talk).read_bytes()
    assert edge.get("video.test", talk + "?ali_audio_only=1").body == audio.body
    assert edge.get("unknown.test", talk).status == 403
    after = _samples(edge)

    def delta(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    plain = {"domain": "video.test", "function": "plain"}
    assert delta("vodedge_requests_total", **plain, status="200") == 3
    assert delta("vodedge_requests_total", domain="video.test", function="audio_only",
                 status="200") == 1  # fmt: skip
    assert delta("vodedge_requests_total", domain="-", function="plain", status="403") == 1
    assert delta("vodedge_sent_bytes_total", **plain) == 3 * size
    assert delta("vodedge_sent_bytes_total", domain="video.test", function="audio_only") == len(
        audio.body
    )
    assert delta("vodedge_cache_lookups_total", domain="video.test", result="HIT") == 4
    assert delta("vodedge_audio_saved_bytes_total", domain="video.test") == size - len(audio.body)
    assert _value(after, "vodedge_origin_response_seconds_count", domain="video.test") >= 1
    lines = [line for line in edge.access_lines() if line.get("function") == "audio_only"]
    assert lines and lines[-1]["bytes"] == len(audio.body) and lines[-1]["cache"] == "HIT"
