"""The sparse cache against an origin that misbehaves on ranges (origins.ranged_origin):
whatever it does, every answer is the object's bytes or a clean error, and every extent
the index holds is the bytes of the version its row names."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
from collections.abc import Iterator
from http.client import HTTPException
from pathlib import Path
from typing import Any

import pytest
from edge_config import SEEK, SPLIT, Origins, domain, domains, function
from edge_harness import Reply, Vodedge, running, wait_until

from origins.ranged_origin import RangedOrigin

pytestmark = pytest.mark.xdist_group("edge_sparse_faults")

HOST = "rsparse.test"
# The same origin under another domain: what a worker remembers of an origin (that it
# ignores Range) is per domain and origin, so this one's test leaves the others alone.
FULL_HOST = "rsparse-full.test"
FORCE_HOST = "rsparse-force.test"  # range = force
# Objects under /sparse-faults/reval/ expire a second after they are stored.
TTL_HOST = "rsparse-ttl.test"
TTL_ONE_SECOND = function("path_based_ttl_set", ttl="1", path="/sparse-faults/reval")


@pytest.fixture(scope="module")
def ranged(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangedOrigin]:
    """The ranged origin, serving the directory nginx serves."""
    with RangedOrigin(origins.media.root, tmp_path_factory.mktemp("ranged")) as server:
        yield server


@pytest.fixture(scope="module")
def edge(
    origins: Origins, ranged: RangedOrigin, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Vodedge]:
    """One worker (what it remembers of an origin is per worker), range on by default."""
    extra = (
        domain(HOST, ranged.url, SPLIT, SEEK)
        + domain(FULL_HOST, ranged.url)
        + domain(FORCE_HOST, ranged.url, function("range", enable="force"))
        + domain(TTL_HOST, ranged.url, TTL_ONE_SECOND)
    )
    work = tmp_path_factory.mktemp("vodedge-sparse-faults")
    with running(Vodedge(work, domains(origins, extra=extra), origin_read_timeout=5)) as server:
        yield server


def _write(origins: Origins, name: str, size: int, seed: str) -> tuple[str, bytes]:
    data = random.Random(seed).randbytes(size)
    return origins.media.write(f"sparse-faults/{name}", data), data


def _rows(
    edge: Vodedge, path: str, host: str = HOST
) -> list[tuple[Path, int, list[tuple[int, int]]]]:
    """Every row for the object: its file, length and extents."""
    uri = f"file:{edge.store / 'index.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        rows = db.execute("SELECT file, size FROM objects WHERE key = ?", (host + path,))
        out = []
        for file, size in rows.fetchall():
            extents = db.execute(
                "SELECT start, end FROM extents WHERE file = ? ORDER BY start", (file,)
            ).fetchall()
            out.append((Path(file), int(size), [(int(a), int(b)) for a, b in extents]))
    return out


def _extents_hold(edge: Vodedge, path: str, data: bytes, host: str = HOST) -> list[tuple[int, int]]:
    """The object's extents, each checked to hold `data`'s bytes; the length is `data`'s."""
    rows = _rows(edge, path, host)
    assert len(rows) <= 1
    if not rows:
        return []
    file, size, extents = rows[0]
    assert size == len(data)
    with open(file, "rb") as held:
        for start, end in extents:
            held.seek(start)
            assert held.read(end - start) == data[start:end], (start, end)
    return extents


def _attempt(edge: Vodedge, path: str, headers: dict[str, str]) -> Reply | None:
    """The reply, or None when the connection closed before a status line came (never
    expected: a fetch failing before the first body byte is answered 502)."""
    try:
        return edge.get(HOST, path, headers, timeout=30)
    except (ConnectionError, HTTPException):
        return None


def _clean(reply: Reply | None, want: bytes) -> None:
    """The object's bytes (a prefix when cut short), or a clean error with its code."""
    assert reply is not None, "the connection closed before a status line"
    if reply.status in (200, 206):
        assert want.startswith(reply.body) and (reply.body == want or not reply.complete)
    else:
        assert 400 <= reply.status < 600 and reply.status != 500, reply
        assert reply.header("X-Vodedge-Error"), reply


def test_a_change_between_two_ranges_drops_every_extent(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """Range A of version 1, then the object changes: range B is never a mix, and the
    extents held afterwards are all version 2's."""
    path, v1 = _write(origins, "change.bin", 2_000_000, "v1")
    _, v2 = _write(origins, "change-v2.bin", 2_000_000, "v2")
    reply = edge.get(HOST, path, {"Range": "bytes=0-99999"})
    assert reply.status == 206 and reply.body == v1[:100_000]
    change = {"kind": "change", "requests": "all", "source": "sparse-faults/change-v2.bin"}
    ranged.faults(path, change)
    _clean(_attempt(edge, path, {"Range": "bytes=1000000-1099999"}), v2[1_000_000:1_100_000])
    extents = _extents_hold(edge, path, v2)
    assert (0, 100_000) not in extents  # version 1's bytes went with their version
    whole = edge.get(HOST, path, timeout=30)
    assert whole.status == 200 and whole.body == v2
    # The last extent is recorded a moment after the last byte is sent.
    wait_until(lambda: _extents_hold(edge, path, v2) == [(0, len(v2))], 5, "all of v2")


def test_a_200_for_a_range_is_used_as_the_whole_object(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """An origin ignoring Range: its 200 fills the object whole (one extent), and later
    cold objects of that origin are asked for whole, without Range."""
    path, data = _write(origins, "full.bin", 1_500_000, "full")
    ranged.faults(path, {"kind": "full", "requests": "all"})
    reply = edge.get(FULL_HOST, path, {"Range": "bytes=5000-5999"})
    assert reply.status == 206 and reply.body == data[5000:6000]
    served = ranged.log(path)
    assert len(served) == 1 and served[0].status == 200
    edge.prime(FULL_HOST, path)
    assert _extents_hold(edge, path, data, FULL_HOST) == [(0, len(data))]
    other, more = _write(origins, "after-full.bin", 300_000, "after")
    reply = edge.get(FULL_HOST, other, {"Range": "bytes=100-199"})
    assert reply.status == 206 and reply.body == more[100:200]
    assert [s.range for s in ranged.log(other)] == [None]


def test_force_asks_for_ranges_even_of_an_origin_that_ignored_them(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """range force: after a 200 for a range, the next cold object is still asked for
    the range its client wants."""
    path, data = _write(origins, "force-full.bin", 400_000, "force")
    ranged.faults(path, {"kind": "full", "requests": "all"})
    reply = edge.get(FORCE_HOST, path, {"Range": "bytes=100-199"})
    assert reply.status == 206 and reply.body == data[100:200]
    assert [s.status for s in ranged.log(path)] == [200]
    other, more = _write(origins, "force-after.bin", 400_000, "force-after")
    reply = edge.get(FORCE_HOST, other, {"Range": "bytes=100-199"})
    assert reply.status == 206 and reply.body == more[100:200]
    assert [(s.range, s.status) for s in ranged.log(other)] == [("bytes=100-199", 206)]


FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("reset", {"kind": "reset", "after": 40_000}),
    ("short", {"kind": "short", "after": 40_000}),
    ("content-range-start", {"kind": "content_range", "start_delta": 1000}),
    ("content-range-end", {"kind": "content_range", "end_delta": -1000}),
    ("unsatisfiable", {"kind": "unsatisfiable", "skip": 1}),
]


@pytest.mark.parametrize(("name", "fault"), FAULTS, ids=[n for n, _ in FAULTS])
def test_faulty_ranges_leave_only_the_objects_bytes(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin, name: str, fault: dict[str, Any]
) -> None:
    """Ranges asked while the origin misbehaves: clean answers, and extents that hold the
    object's bytes; healthy again, every range and the whole object exact."""
    path, data = _write(origins, f"{name}.bin", 3_000_000, name)
    asks = [(0, 200_000), (1_000_000, 1_400_000), (2_900_000, 3_000_000), (150_000, 1_100_000)]
    first = edge.get(HOST, path, {"Range": "bytes=500000-599999"})
    assert first.status == 206 and first.body == data[500_000:600_000]
    ranged.faults(path, fault)
    for start, end in asks:
        _clean(_attempt(edge, path, {"Range": f"bytes={start}-{end - 1}"}), data[start:end])
        _extents_hold(edge, path, data)
    assert any(s.faults for s in ranged.log(path)), "the fault never fired"
    ranged.faults(path)
    for start, end in asks:
        reply = edge.get(HOST, path, {"Range": f"bytes={start}-{end - 1}"}, timeout=30)
        if not reply.complete:  # one answer may be cut before the edge learns better
            reply = edge.get(HOST, path, {"Range": f"bytes={start}-{end - 1}"}, timeout=30)
        assert reply.status == 206 and reply.body == data[start:end], (start, end)
    whole = edge.get(HOST, path, timeout=30)
    assert whole.status == 200 and whole.body == data
    wait_until(lambda: _extents_hold(edge, path, data) == [(0, len(data))], 5, "every byte")


def test_a_stale_sparse_object_is_revalidated_and_keeps_its_extents(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """Expired, unchanged at the origin: one conditional request (304), the extents kept
    and served, nothing fetched again."""
    path, data = _write(origins, "reval/same.bin", 2_000_000, "same")
    reply = edge.get(TTL_HOST, path, {"Range": "bytes=100000-199999"})
    assert reply.status == 206 and reply.body == data[100_000:200_000]
    wait_until(lambda: _rows(edge, path, TTL_HOST)[0][2] == [(100_000, 200_000)], 5, "extent")
    edge.wait_expired(TTL_HOST, path)
    seen = len(ranged.log(path))
    reply = edge.get(TTL_HOST, path, {"Range": "bytes=120000-179999"})
    assert reply.status == 206 and reply.body == data[120_000:180_000]
    assert reply.header("X-Cache") == "REVALIDATED"
    assert [(s.range, s.status) for s in ranged.log(path)[seen:]] == [("bytes=0-0", 304)]
    assert _extents_hold(edge, path, data, TTL_HOST) == [(100_000, 200_000)]
    # Fresh again: served from its extents without asking.
    reply = edge.get(TTL_HOST, path, {"Range": "bytes=150000-159999"})
    assert reply.header("X-Cache") == "HIT" and reply.body == data[150_000:160_000]
    assert len(ranged.log(path)) == seen + 1


def test_a_stale_sparse_object_that_changed_drops_its_extents(
    edge: Vodedge, origins: Origins, ranged: RangedOrigin
) -> None:
    """Expired, and another version at the origin: the conditional request says so, every
    extent of the old version goes, and the answer is the new version's bytes."""
    path, v1 = _write(origins, "reval/changed.bin", 2_000_000, "c1")
    _, v2 = _write(origins, "reval/changed-v2.bin", 2_000_000, "c2")
    reply = edge.get(TTL_HOST, path, {"Range": "bytes=100000-199999"})
    assert reply.status == 206 and reply.body == v1[100_000:200_000]
    wait_until(lambda: _rows(edge, path, TTL_HOST)[0][2] == [(100_000, 200_000)], 5, "extent")
    edge.wait_expired(TTL_HOST, path)
    change = {"kind": "change", "requests": "all", "source": "sparse-faults/reval/changed-v2.bin"}
    ranged.faults(path, change)
    seen = len(ranged.log(path))
    reply = edge.get(TTL_HOST, path, {"Range": "bytes=120000-179999"})
    assert reply.status == 206 and reply.body == v2[120_000:180_000]
    asked = [(s.range, s.status) for s in ranged.log(path)[seen:]]
    assert asked == [("bytes=0-0", 206), ("bytes=120000-179999", 206)], asked
    wait_until(
        lambda: _extents_hold(edge, path, v2, TTL_HOST) == [(120_000, 180_000)], 5, "v2 only"
    )


def test_an_origin_ignoring_ranges_is_known_to_every_worker(
    origins: Origins, ranged: RangedOrigin, tmp_path: Path
) -> None:
    """What one worker learns (the origin answers Range with the whole object) is in the
    shared index: the master's replacements of both workers, which never saw that answer,
    fill the next cold objects whole without asking for ranges."""
    host = "rsparse-shared.test"
    config = domains(origins, extra=domain(host, ranged.url))
    path, data = _write(origins, "shared-full.bin", 600_000, "shared")
    ranged.faults(path, {"kind": "full", "requests": "all"})
    with running(Vodedge(tmp_path / "node", config, workers=2)) as server:
        reply = server.get(host, path, {"Range": "bytes=5000-5999"})
        assert reply.status == 206 and reply.body == data[5000:6000]
        assert [s.status for s in ranged.log(path)] == [200]
        killed = server.worker_pids()
        for pid in killed:
            os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: not set(server.worker_pids()) & set(killed) and server.workers_ready(),
            20,
            "the master's new workers",
        )
        for n in range(4):
            other, more = _write(origins, f"shared-after-{n}.bin", 300_000, f"shared-{n}")
            reply = server.get(host, other, {"Range": "bytes=100-199"})
            assert reply.status == 206 and reply.body == more[100:200]
            assert [s.range for s in ranged.log(other)] == [None], n
