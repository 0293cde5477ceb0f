"""A cold edge in front of the ranged origin (tests/origins/ranged_origin.py): whatever the
origin does wrong, with ranges or whole bodies, no response carries a byte that is not the
object's, and once the origin is healthy again the answer is exact.

Each case is a fault (origin side) crossed with a request (client side), on an object path
of its own, so every case starts cold. The expected bodies come from the same edge serving
the same files from the healthy nginx origin, and for plain and ranged requests from the
file itself. Nothing here depends on how the edge fetches (whole fills or ranges): only on
what it answers.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException
from pathlib import Path
from typing import Any

import pytest
from edge_config import SEEK, SPLIT, Origins, domain, domains
from edge_harness import Reply, Vodedge, concurrent_gets, running, wait_until
from edge_media import generated

from origins.ranged_origin import RangedOrigin

pytestmark = pytest.mark.xdist_group("edge_cold_origin")

HOST = "ranged.test"
# A few MB (noise keeps the video large): more than the edge's 1 MiB FAR_READ, so a tail
# moov and a Range far ahead are read apart from a whole fill today.
TAIL = (
    "-f", "lavfi", "-i", "testsrc2=size=192x144:rate=25:duration=6,noise=alls=30:allf=t",
    "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=6",
    "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "14",
    "-g", "25", "-c:a", "aac", "-b:a", "64k", "-f", "mp4",
)  # fmt: skip
HEAD = (*TAIL[:-2], "-movflags", "+faststart", "-f", "mp4")


@dataclass(frozen=True)
class Ask:
    """A client request: a query and/or a Range header."""

    name: str
    query: str = ""
    range: str | None = None  # "bytes=..." with {size} to fill in

    def headers(self, size: int) -> dict[str, str]:
        """The request headers for an object of `size` bytes."""
        return {} if self.range is None else {"Range": self.range.format(size=size)}


ASKS = [
    Ask("whole"),
    Ask("head-range", range="bytes=0-65535"),
    Ask("mid-range", range="bytes=1000000-1499999"),
    Ask("far-range", range="bytes={size}-"),  # {size}: size - 300000, see `far`
    Ask("audio", "?ali_audio_only=1"),
    Ask("clip", "?start=1&end=3"),
    Ask("audio-clip", "?ali_audio_only=1&start=2"),
]


def far(ask: Ask, size: int) -> dict[str, str]:
    """The headers, with the far range starting 300 kB before the end."""
    return ask.headers(size - 300_000)


@dataclass(frozen=True)
class Fault:
    """A way the origin misbehaves (see origins.ranged_origin.Fault), once or always."""

    name: str
    faults: tuple[dict[str, Any], ...]


V2 = "cold-origin/v2.mp4"  # the object's next version, for `change`
FAULTS = [
    Fault("healthy", ()),
    Fault("reset-once", ({"kind": "reset", "after": 100_000, "requests": "all", "count": 1},)),
    Fault("reset-always", ({"kind": "reset", "after": 100_000, "requests": "all"},)),
    Fault("reset-ranges", ({"kind": "reset", "after": 1000},)),
    Fault("reset-before-body", ({"kind": "reset", "after": 0, "requests": "all", "count": 1},)),
    Fault("short-once", ({"kind": "short", "after": 50_000, "requests": "all", "count": 1},)),
    Fault("content-range-start", ({"kind": "content_range", "start_delta": 1000},)),
    Fault("content-range-end", ({"kind": "content_range", "end_delta": -1000},)),
    Fault("content-range-total", ({"kind": "content_range", "total_delta": 1},)),
    Fault("change-new-bytes", ({"kind": "change", "requests": "all", "skip": 1, "source": V2},)),
    Fault("change-validators", ({"kind": "change", "requests": "all", "skip": 1},)),
    Fault("200-for-range", ({"kind": "full"},)),
    Fault("416-for-range", ({"kind": "unsatisfiable"},)),
    Fault("slow", ({"kind": "slow", "rate": 8_000_000, "requests": "all"},)),
]


@pytest.fixture(scope="module")
def sources() -> dict[str, Path]:
    """The tail-moov object and its head-moov twin (another encode: other bytes)."""
    return {"v1": generated("cold-tail", TAIL, "mp4"), "v2": generated("cold-head", HEAD, "mp4")}


@pytest.fixture(scope="module")
def ranged(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangedOrigin]:
    """The ranged origin, serving the directory nginx serves."""
    with RangedOrigin(origins.media.root, tmp_path_factory.mktemp("ranged")) as server:
        yield server


@pytest.fixture(scope="module")
def edge(
    origins: Origins, ranged: RangedOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vodedge]:
    """One worker with the test domains and one whose origin is the ranged origin."""
    extra = domain(HOST, ranged.url, SPLIT, SEEK)
    work = tmp_path_factory.mktemp("vodedge-cold-origin")
    with running(Vodedge(work, domains(origins, extra=extra), origin_read_timeout=5)) as server:
        yield server


def publish(origins: Origins, source: Path, name: str) -> str:
    """`source` in the origins' directory as `name` (a hard link where possible)."""
    target = origins.media.root / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return "/" + name


@pytest.fixture(scope="module")
def expected(
    edge: Vodedge, origins: Origins, sources: dict[str, Path]
) -> dict[tuple[str, str], bytes]:
    """(version, ask) -> the body the edge gives from the healthy nginx origin."""
    out = {}
    for version, source in sources.items():
        path = publish(origins, source, f"cold-origin/reference-{version}.mp4")
        data = source.read_bytes()
        for ask in ASKS:
            reply = edge.get("video.test", path + ask.query, far(ask, len(data)))
            assert reply.status in (200, 206) and reply.complete, (version, ask, reply)
            if ask.range is not None:
                first, _, last = far(ask, len(data))["Range"][6:].partition("-")
                end = int(last) + 1 if last else len(data)
                assert reply.body == data[int(first) : end], (version, ask.name)
            elif not ask.query:
                assert reply.body == data
            out[version, ask.name] = reply.body
    return out


def attempt(edge: Vodedge, path: str, ask: Ask, size: int) -> Reply | None:
    """The reply, or None when the connection closed before a status line came."""
    try:
        return edge.get(HOST, path + ask.query, far(ask, size), timeout=30)
    except (ConnectionError, HTTPException):
        return None


def judge(reply: Reply | None, wants: list[bytes], what: str) -> None:
    """A 2xx body is one of `wants` whole, or a prefix of one when cut short; anything else
    is a clean error status with its code (never a 500: that is a bug, not an answer).
    Never a connection closed before the status line: the edge sends its headers with
    the first body byte, and a fill that breaks before that byte is answered 502."""
    assert reply is not None, f"{what}: the connection closed before a status line"
    if reply.status not in (200, 206):
        assert reply.header("X-Vodedge-Error"), (what, reply)
    if reply.status in (200, 206):
        if reply.complete:
            assert reply.body in wants, f"{what}: a complete body that is not the object's"
        else:
            assert any(want.startswith(reply.body) for want in wants), (
                f"{what}: {len(reply.body)} bytes before the cut that are not the object's"
            )
    else:
        assert 400 <= reply.status < 600 and reply.status != 500, (what, reply)


def exact(edge: Vodedge, path: str, ask: Ask, size: int, want: bytes, what: str) -> None:
    """One request that must come complete and exact."""
    reply = edge.get(HOST, path + ask.query, far(ask, size), timeout=30)
    assert reply.status in (200, 206) and reply.complete, (what, ask.name, reply)
    assert reply.body == want, f"{what} / {ask.name}: not the object's bytes"


@pytest.mark.parametrize("ask", ASKS, ids=[a.name for a in ASKS])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_no_fault_yields_a_wrong_byte(
    edge: Vodedge,
    origins: Origins,
    ranged: RangedOrigin,
    sources: dict[str, Path],
    expected: dict[tuple[str, str], bytes],
    fault: Fault,
    ask: Ask,
) -> None:
    """Cold, under the fault: the object's bytes or a clean error. The fault gone: exact
    bytes, of the old version or (after a change) the new one, never a mix."""
    publish(origins, sources["v2"], V2)
    path = publish(origins, sources["v1"], f"cold-origin/{fault.name}-{ask.name}.mp4")
    size = sources["v1"].stat().st_size
    ranged.faults(path, *fault.faults)
    versions = ["v1", "v2"] if fault.name == "change-new-bytes" else ["v1"]
    wants = [expected[v, ask.name] for v in versions]
    what = f"{fault.name} / {ask.name}"

    if fault.name == "healthy":
        exact(edge, path, ask, size, wants[0], what)
    else:
        judge(attempt(edge, path, ask, size), wants, what)
    # Once more under the fault (a fill it broke must not have been kept), then healthy.
    judge(attempt(edge, path, ask, size), wants, what + " again")
    if any(f.get("requests") == "all" and f["kind"] != "change" for f in fault.faults):
        # However the edge fetches, these hit its first origin request: the case is real.
        assert any(s.faults for s in ranged.log(path)), f"{what}: the fault never fired"
    ranged.faults(path)
    recovered(edge, path, ask, size, wants, what + ", healthy")
    # The whole object too: all of one version, never a mix.
    whole = [sources[v].read_bytes() for v in versions]
    recovered(edge, path, ASKS[0], size, whole, what + ", healthy, whole")


def differences(got: bytes, want: bytes, block: int = 4096) -> str:
    """Where a body differs from the object's bytes, for a failure message."""
    ends = range(0, max(len(got), len(want)), block)
    bad = [i for i in ends if got[i : i + block] != want[i : i + block]]
    if not bad:
        return "the same bytes"
    zeros = sum(1 for i in bad if got[i : i + block] == bytes(len(got[i : i + block])))
    return (
        f"{len(got)} bytes (want {len(want)}), {len(bad)} blocks of {block} differ from offset "
        f"{bad[0]} to {bad[-1]}, {zeros} of them all zeros (holes served as bytes?)"
    )


def recovered(
    edge: Vodedge, path: str, ask: Ask, size: int, wants: list[bytes], what: str
) -> bytes:
    """With a healthy origin, one of `wants` exactly; at most one answer before it may be
    cut short (a prefix): an edge told a wrong total or version by the faulty origin learns
    otherwise only from the origin's next answer, perhaps after sending its headers."""
    first = attempt(edge, path, ask, size)
    judge(first, wants, what)
    if first is not None and first.status in (200, 206) and first.complete:
        return first.body
    again = edge.get(HOST, path + ask.query, far(ask, size), timeout=30)
    assert again.status in (200, 206) and again.complete, (what, first, again)
    assert again.body in wants, f"{what}: not the object's bytes"
    return again.body


def test_a_whole_get_while_a_range_is_first_asked(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin, sources: dict[str, Path]
) -> None:
    """A plain GET that comes while the object's first ranged request is still waiting for
    the origin's headers gets the whole object's bytes (not a file of holes)."""
    path = publish(origins, sources["v1"], "cold-origin/whole-joins-first-range.mp4")
    data = sources["v1"].read_bytes()
    ranged.faults(path, {"kind": "delay", "seconds": 1.0, "count": 1})
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(edge.get, HOST, path, {"Range": "bytes=0-999"}, timeout=30)
        wait_until(lambda: len(ranged.log(path, wait=0)) == 1, 10, "the first ranged request")
        whole = edge.get(HOST, path, timeout=30)
        ranged_reply = first.result()
    assert ranged_reply.status == 206 and ranged_reply.body == data[:1000], ranged_reply
    assert whole.status == 200 and whole.complete, whole
    assert whole.body == data, f"whole GET: {differences(whole.body, data)}"


@pytest.fixture
def edge2(
    origins: Origins, ranged: RangedOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vodedge]:
    """Two workers sharing a cache of their own, in front of the ranged origin."""
    extra = domain(HOST, ranged.url, SPLIT, SEEK)
    work = tmp_path_factory.mktemp("vodedge-cold-origin-2")
    with running(Vodedge(work, domains(origins, extra=extra), workers=2)) as server:
        yield server


def test_kill_9_mid_fetch_then_exact_bytes(
    edge2: Vodedge,
    origins: Origins,
    ranged: RangedOrigin,
    sources: dict[str, Path],
    expected: dict[tuple[str, str], bytes],
) -> None:
    """Both workers killed while a slow origin sends ranges and whole bodies to several cold
    requests: what reached the clients is the object's; after the master's new workers,
    and after a restart on the same cache, every request is exact."""
    path = publish(origins, sources["v1"], "cold-origin/kill-9.mp4")
    size = sources["v1"].stat().st_size
    ranged.faults(path, {"kind": "slow", "rate": 1_000_000, "requests": "all"})
    asks = [a for a in ASKS if a.name in ("whole", "mid-range", "far-range", "audio")]
    with ThreadPoolExecutor(len(asks)) as pool:
        futures = [pool.submit(attempt, edge2, path, ask, size) for ask in asks]
        wait_until(
            lambda: sum(s.sent for s in ranged.log(path, wait=0)) >= 600_000,
            20,
            "600 kB from the origin",
        )
        killed = edge2.worker_pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        replies = [f.result() for f in futures]
    for ask, reply in zip(asks, replies, strict=True):
        if reply is not None:  # a worker killed before a status line: nothing to judge
            judge(reply, [expected["v1", ask.name]], f"killed / {ask.name}")
    wait_until(
        lambda: not set(edge2.worker_pids()) & set(killed) and edge2.workers_ready(),
        20,
        "the master's new workers",
    )
    ranged.faults(path)
    for ask in ASKS:
        exact(edge2, path, ask, size, expected["v1", ask.name], "after kill -9")
    edge2.restart()
    for ask in ASKS:
        exact(edge2, path, ask, size, expected["v1", ask.name], "after a restart")


def test_adjacent_and_overlapping_ranges_at_once(
    edge2: Vodedge,
    origins: Origins,
    ranged: RangedOrigin,
    sources: dict[str, Path],
    expected: dict[tuple[str, str], bytes],
) -> None:
    """Two workers, a cold object, a slow origin: adjacent and overlapping ranges, the whole
    object and its audio asked at once all come exact, and so does everything afterwards."""
    path = publish(origins, sources["v1"], "cold-origin/concurrent.mp4")
    data = sources["v1"].read_bytes()
    ranged.faults(path, {"kind": "slow", "rate": 4_000_000, "requests": "all"})
    step = 256 << 10
    spans = [(i * step, (i + 1) * step) for i in range(8)]  # adjacent
    spans += [(i * step + step // 2, (i + 1) * step + step // 2) for i in range(6)]  # overlapping
    spans += [(len(data) - 3 * step, len(data))]  # near the end
    requests: list[tuple[str, str, dict[str, str]]] = [
        (HOST, path, {"Range": f"bytes={start}-{end - 1}"}) for start, end in spans
    ]
    requests += [(HOST, path, {}), (HOST, path + "?ali_audio_only=1", {})]
    replies = concurrent_gets(edge2.port, requests, timeout=60)
    wants = [data[start:end] for start, end in spans] + [data, expected["v1", "audio"]]
    for (_, target, headers), reply, want in zip(requests, replies, wants, strict=True):
        what = f"{target} {headers.get('Range', '')}"
        assert reply.status in (200, 206) and reply.complete, (what, reply)
        assert reply.body == want, f"{what}: {differences(reply.body, want)}"
    ranged.faults(path)
    for ask in ASKS:
        exact(edge2, path, ask, len(data), expected["v1", ask.name], "after the concurrent fills")


@pytest.mark.parametrize("ask", ASKS[:3], ids=[a.name for a in ASKS[:3]])
def test_a_fill_broken_before_its_first_byte_is_a_502(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin, sources: dict[str, Path], ask: Ask
) -> None:
    """The origin resets every connection after its headers, before any body byte: the
    client is answered 502 with the reason's code (nothing was sent, so it can be told),
    not a connection closed before any status line; whole fills and ranged ones alike."""
    path = publish(origins, sources["v1"], f"cold-origin/before-body-{ask.name}.mp4")
    size = sources["v1"].stat().st_size
    ranged.faults(path, {"kind": "reset", "after": 0, "requests": "all"})
    reply = attempt(edge, path, ask, size)
    assert reply is not None, "the connection closed before a status line"
    assert reply.status == 502, reply
    assert (reply.header("X-Vodedge-Error") or "").startswith("origin"), reply
    assert all(s.sent == 0 for s in ranged.log(path)), "the origin sent body bytes"
    ranged.faults(path)
    data = sources["v1"].read_bytes()
    first, _, last = (far(ask, size).get("Range", "bytes=0-")[6:]).partition("-")
    end = int(last) + 1 if last else size
    exact(edge, path, ask, size, data[int(first) : end], "healthy again")
