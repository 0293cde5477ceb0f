"""Origin faults through a real vodedge: clean client errors, nothing partial cached, and
no descriptor or memory left behind once the faults are over."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from edge_config import SPLIT, Origins, domain, domains
from edge_harness import (
    Vodedge,
    free_port,
    process_fds,
    process_rss,
    running,
    stalled_reader,
    wait_until,
)
from edge_media import SAMPLES, big_tail_moov, cli_output

pytestmark = pytest.mark.xdist_group("edge_faults")

# vodedge's origin read timeout (30 s) and client send timeout (60 s) are settings;
# this server runs with 2 s each, and the stalls last longer.
READ_TIMEOUT = 2.0
SEND_TIMEOUT = 2.0
STALL = 4.0
# The origin drips every body, so a client follows the fill in small steps.
DRIP = {"chunk": 32 << 10, "drip_after": 0, "interval": 0.01}


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker with a short origin read timeout, and a domain whose origin is down."""
    down = domain("down.test", f"http://127.0.0.1:{free_port()}", SPLIT)
    server = Vodedge(
        tmp_path_factory.mktemp("vodedge-faults"),
        domains(origins, extra=down),
        origin_read_timeout=READ_TIMEOUT,
        send_timeout=SEND_TIMEOUT,
    )
    with running(server):
        yield server


@dataclass(frozen=True)
class Fault:
    """A misbehaving origin and what the client must see."""

    name: str
    behaviour: dict[str, Any]
    status: int  # 200: headers came, then the body must be cut short
    code: str | None = None
    audio: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


FAULTS = [
    Fault("reset", {"reset_at": 160_000}, 200),
    Fault("reset-audio", {"reset_at": 160_000}, 200, audio=True),
    Fault("short", {"short_by": 50_000}, 200),
    Fault("stall-mid-body", {"stall_at": 160_000, "stall": STALL}, 200),
    Fault("stall-before-headers", {"headers_delay": STALL}, 504, "origin_timeout"),
    Fault("500", {"status": 500}, 502, "origin_status"),
    Fault("503", {"status": 503}, 502, "origin_status"),
]


def run_fault(edge: Vodedge, origins: Origins, fault: Fault, tag: str) -> None:
    """One fault, then the same URL with a healthy origin: the right bytes, from a new fill."""
    path = origins.media.add(SAMPLES / "talk.mp4", f"faults/{fault.name}-{tag}.mp4")
    source = origins.media.file(path).read_bytes()
    origins.fault.behave(path, **DRIP, **fault.behaviour)
    url = path + ("?ali_audio_only=1" if fault.audio else "")
    reply = edge.get("faulty.test", url, timeout=20)
    assert reply.status == fault.status, (fault.name, reply)
    if fault.status == 200:
        # Headers were sent: the only honest end is a connection closed before
        # Content-Length bytes arrived.
        announced = int(reply.header("Content-Length") or 0)
        assert announced > 0, (fault.name, reply)
        assert not reply.complete and len(reply.body) < announced, (fault.name, reply)
        if not fault.audio:
            assert source.startswith(reply.body), f"{fault.name}: bytes that are not the object's"
    else:
        assert reply.header("X-Vodedge-Error") == fault.code, (fault.name, reply)
        assert reply.body.decode().count("\n") == 1
        assert reply.elapsed < READ_TIMEOUT + STALL + 3, reply.elapsed
    origins.fault.behave(path, **DRIP)
    again = edge.get("faulty.test", path)
    assert again.header("X-Cache") == "MISS", (fault.name, again)
    assert again.status == 200 and again.complete and again.body == source, fault.name
    wait_until(lambda: edge.tmp_files() == [], 5, f"store/tmp to empty after {fault.name}")


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_gives_a_clean_error_and_caches_nothing(
    edge: Vodedge, origins: Origins, fault: Fault
) -> None:
    """A 502/504 before headers or an aborted body; then a healthy origin's exact bytes."""
    run_fault(edge, origins, fault, "single")


def test_an_unreachable_origin_is_502(edge: Vodedge) -> None:
    """Connection refused: 502 origin_unreachable, one line."""
    reply = edge.get("down.test", "/talk.mp4")
    assert reply.status == 502, reply
    assert reply.header("X-Vodedge-Error") == "origin_unreachable"
    assert reply.body.decode().count("\n") == 1


def run_long_body(edge: Vodedge, origins: Origins, tag: str) -> None:
    """More bytes than Content-Length: the client gets Content-Length bytes, the stray ones
    never reach another response on the pooled origin connection."""
    path = origins.media.add(SAMPLES / "talk.mp4", f"faults/long-{tag}.mp4")
    source = origins.media.file(path).read_bytes()
    origins.fault.behave(path, **DRIP, extra=5000)
    reply = edge.get("faulty.test", path)
    assert reply.status == 200 and reply.complete and reply.body == source, reply
    for index in range(3):
        other = origins.media.add(SAMPLES / "talk.mp4", f"faults/after-long-{tag}-{index}.mp4")
        origins.fault.behave(other, **DRIP)
        follow = edge.get("faulty.test", other)
        assert follow.status == 200 and follow.complete and follow.body == source, follow
    assert edge.get("faulty.test", path).body == source


def test_a_body_longer_than_announced(edge: Vodedge, origins: Origins) -> None:
    """Bytes past Content-Length are not the object's, and do not poison the next response."""
    run_long_body(edge, origins, "single")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The several-MB tail-moov MP4 and its audio-only rendition from the CLI."""
    source = big_tail_moov()
    result = cli_output("extract", source, tmp_path_factory.mktemp("big"))
    assert result.output is not None, result.error
    return source, result.output


def test_a_range_answered_with_too_many_bytes(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """The tail moov's ranged read gets more than it asked for: that answer is not used,
    the request waits for the fill and gets the exact output; the fill is kept."""
    source, want = big
    path = origins.media.add(source, "faults/range-extra.mp4")
    origins.fault.behave(path, chunk=256 << 10, drip_after=0, interval=0.01, range_extra=1000)
    reply = edge.get("faulty.test", path + "?ali_audio_only=1", timeout=20)
    assert reply.status == 200 and reply.body == want, reply
    ranged = [r for r in origins.fault.requests(path) if r["range"] is not None]
    assert ranged, "the tail was not asked for with a ranged request"
    fills = [r for r in origins.fault.requests(path) if r["range"] is None]
    assert len(fills) == 1, fills
    origins.fault.behave(path)
    edge.prime("faulty.test", path)
    assert edge.get("faulty.test", path + "?ali_audio_only=1").body == want


def test_an_etag_change_during_the_fill_keeps_the_object(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """The fill's ETag and the tail read's differ, the length and Last-Modified agree (an
    origin whose servers tag one object differently): the tail read is used, the output
    is exact, and the object is kept (issue 12: this was a 502 that discarded the fill)."""
    source, want = big
    path = origins.media.add(source, "faults/etag-flip.mp4")
    origins.fault.behave(path, chunk=256 << 10, drip_after=0, interval=0.02, etag="flip")
    reply = edge.get("faulty.test", path + "?ali_audio_only=1", timeout=20)
    assert reply.status == 200 and reply.body == want, reply
    wait_until(lambda: edge.tmp_files() == [], 15, "the fill to end")
    after = edge.get("faulty.test", path, method="HEAD")
    assert after.header("X-Cache") == "HIT", "the fill was discarded"


def test_a_client_that_stops_reading_is_dropped(edge: Vodedge, origins: Origins) -> None:
    """A reader that takes nothing for longer than the send timeout loses its connection
    (before the body is complete); one that reads gets it all."""
    path = origins.media.add(big_tail_moov(), "faults/stalled-reader.mp4")
    size = origins.media.file(path).stat().st_size
    edge.prime("video.test", path)
    received, closed = stalled_reader(edge, "video.test", path)
    assert closed, f"still connected after {received} bytes"
    assert received < size, "the stalled reader got the whole object"
    reply = edge.get("video.test", path)
    assert reply.complete and len(reply.body) == size


# --- leaks ---------------------------------------------------------------------------------


def _round(edge: Vodedge, origins: Origins, tag: str) -> None:
    """Every fault once, several at a time (the stalls overlap)."""
    with ThreadPoolExecutor(max_workers=len(FAULTS) + 1) as pool:
        futures = [pool.submit(run_fault, edge, origins, f, tag) for f in FAULTS]
        futures.append(pool.submit(run_long_body, edge, origins, tag))
        for future in futures:
            future.result()


def _snapshot(edge: Vodedge) -> tuple[dict[str, int], int]:
    (worker,) = edge.worker_pids()
    return process_fds(worker), process_rss(worker)


def test_no_descriptor_or_memory_leak_after_the_faults(edge: Vodedge, origins: Origins) -> None:
    """After rounds of every fault, the worker's descriptors and RSS are back near a
    baseline taken after a warm-up round."""
    _round(edge, origins, "warm-up")
    time.sleep(0.5)
    fds_before, rss_before = _snapshot(edge)
    for index in range(3):
        _round(edge, origins, f"round-{index}")
    # The last round's connections close as the worker gets to them (later on a busy
    # machine); a leak stays. Waited for, then the same bounds are asserted.
    deadline = time.monotonic() + 30
    while True:
        fds_after, rss_after = _snapshot(edge)
        within = (
            fds_after["file"] <= fds_before["file"] + 1
            and fds_after["socket"] <= fds_before["socket"] + 8
            and rss_after <= rss_before + (24 << 20)
        )
        if within or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    # Files: every fill's descriptor is closed (store files, temporaries).
    assert fds_after["file"] <= fds_before["file"] + 1, (fds_before, fds_after)
    # Sockets: pooled origin connections come and go; three rounds of leaks would not.
    assert fds_after["socket"] <= fds_before["socket"] + 8, (fds_before, fds_after)
    assert rss_after <= rss_before + (24 << 20), (rss_before, rss_after)
