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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from edge_config import SEEK, SPLIT, Origins, domain, domains
from edge_harness import Reply, Vodedge, running
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


def judge(reply: Reply, wants: list[bytes], what: str) -> None:
    """A 2xx body is one of `wants` whole, or a prefix of one when cut short; anything else
    is a clean error status (never a 500: that is a bug, not an answer)."""
    if reply.status in (200, 206):
        if reply.complete:
            assert reply.body in wants, f"{what}: a complete body that is not the object's"
        else:
            assert any(want.startswith(reply.body) for want in wants), (
                f"{what}: {len(reply.body)} bytes before the cut that are not the object's"
            )
    else:
        assert 400 <= reply.status < 600 and reply.status != 500, (what, reply)


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

    first = edge.get(HOST, path + ask.query, far(ask, size), timeout=30)
    judge(first, wants, what)
    if fault.name == "healthy":
        assert first.status in (200, 206) and first.complete and first.body == wants[0], first
    # Once more under the fault (a fill it broke must not have been kept), then healthy.
    judge(edge.get(HOST, path + ask.query, far(ask, size), timeout=30), wants, what + " again")
    if any(f.get("requests") == "all" and f["kind"] != "change" for f in fault.faults):
        # However the edge fetches, these hit its first origin request: the case is real.
        assert any(s.faults for s in ranged.log(path)), f"{what}: the fault never fired"
    ranged.faults(path)
    healthy = edge.get(HOST, path + ask.query, far(ask, size), timeout=30)
    assert healthy.status in (200, 206) and healthy.complete, (what, healthy)
    assert healthy.body in wants, f"{what}: not the object's bytes once the origin is healthy"
    # The whole object now agrees with that answer's version.
    whole = edge.get(HOST, path, timeout=30)
    assert whole.status == 200 and whole.complete, (what, whole)
    version = versions[wants.index(healthy.body)] if len(set(wants)) > 1 else None
    if version is not None:
        assert whole.body == sources[version].read_bytes(), f"{what}: versions mixed"
    else:
        assert whole.body in (sources[v].read_bytes() for v in versions), what
