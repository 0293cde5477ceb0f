"""The sparse cache: cold objects fetched as the ranges clients need (the `range` function
on, the default), against nginx, whose access log says exactly which bytes it sent."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import (
    OriginHit,
    RawClient,
    Vodedge,
    concurrent_gets,
    running,
    union,
    wait_until,
)
from edge_media import BIG_TAIL_MOOV, big_tail_moov, cli_output, generated

from vodedge.edge.cache_store import Store

pytestmark = pytest.mark.xdist_group("edge_sparse")

HOST = "video.test"  # nginx, audio extraction and seeking on, range on by default
SEGMENT = 8 << 20  # edge.cache_sparse.SEGMENT: the most one ranged request asks for
HEAD_MOOV = (*BIG_TAIL_MOOV[:-2], "-movflags", "+faststart", "-f", "mp4")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Two workers sharing one cache, so ranges of one object are filled by both."""
    work = tmp_path_factory.mktemp("vodedge-sparse")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        yield server


def _random_file(origins: Origins, name: str, size: int) -> tuple[str, bytes]:
    data = random.Random(name).randbytes(size)
    return origins.media.write(f"sparse/{name}", data), data


def _ranges(hits: list[OriginHit]) -> list[tuple[int, int]]:
    """The `[start, end)` of every range nginx sent (every hit must be ranged and answered
    in full: one range, or several in a multipart/byteranges body)."""
    out = []
    for hit in hits:
        assert hit.range.startswith("bytes="), f"a request without Range: {hit}"
        assert hit.status == 206, hit
        asked = []
        for spec in hit.range[6:].split(","):
            first, _, last = spec.partition("-")
            asked.append((int(first), int(last) + 1))
        if len(asked) == 1:
            asked = [(asked[0][0], asked[0][0] + hit.sent)]  # a range may run past the end
        else:
            assert hit.sent > sum(e - s for s, e in asked), hit  # the parts and their heads
        out += asked
    return out


def _sent(hits: list[OriginHit]) -> int:
    """Body bytes nginx sent (multipart part headers included)."""
    return sum(hit.sent for hit in hits)


def _disjoint(ranges: list[tuple[int, int]]) -> bool:
    ordered = sorted(ranges)
    return all(a[1] <= b[0] for a, b in itertools.pairwise(ordered))


def _stored(edge: Vodedge, path: str) -> tuple[Path, int, int, list[tuple[int, int]]]:
    """The object's file, length, bytes present and extents, from the index."""
    uri = f"file:{edge.store / 'index.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        row = db.execute(
            "SELECT file, size, present FROM objects WHERE key = ?", (HOST + path,)
        ).fetchone()
        assert row is not None, f"{path} is not in the index"
        extents = db.execute(
            "SELECT start, end FROM extents WHERE file = ? ORDER BY start", (row[0],)
        ).fetchall()
    return Path(row[0]), int(row[1]), int(row[2]), [(int(a), int(b)) for a, b in extents]


def _recorded(edge: Vodedge, path: str, extents: list[tuple[int, int]]) -> None:
    """Wait until the index holds exactly these extents of the object (a response may
    end a few milliseconds before its last bytes are durable and recorded)."""
    wait_until(lambda: _stored(edge, path)[3] == extents, 5, f"extents {extents}")


def _settled(origins: Origins, path: str) -> list[OriginHit]:
    return origins.nginx.settled_hits(path)


def test_a_cold_range_fetches_only_its_bytes_then_only_the_gaps(
    edge: Vodedge, origins: Origins
) -> None:
    """Each request fetches exactly the bytes not yet held, and the extents say so."""
    path, data = _random_file(origins, "ranges.bin", 3_000_000)
    reply = edge.get(HOST, path, {"Range": "bytes=1000000-1499999"})
    assert reply.status == 206 and reply.body == data[1_000_000:1_500_000]
    assert reply.header("X-Cache") == "MISS"
    assert _ranges(_settled(origins, path)) == [(1_000_000, 1_500_000)]
    _recorded(edge, path, [(1_000_000, 1_500_000)])
    file, size, present, extents = _stored(edge, path)
    assert (size, present, extents) == (len(data), 500_000, [(1_000_000, 1_500_000)])
    assert os.stat(file).st_size == len(data)  # sparse: the length, not the blocks
    assert os.stat(file).st_blocks * 512 < 1_000_000

    reply = edge.get(HOST, path, {"Range": "bytes=1400000-1599999"})
    assert reply.status == 206 and reply.body == data[1_400_000:1_600_000]
    assert _ranges(_settled(origins, path))[1:] == [(1_500_000, 1_600_000)]
    _recorded(edge, path, [(1_000_000, 1_600_000)])

    reply = edge.get(HOST, path, {"Range": "bytes=1100000-1199999"})
    assert reply.header("X-Cache") == "HIT" and reply.body == data[1_100_000:1_200_000]
    assert len(_settled(origins, path)) == 2

    reply = edge.get(HOST, path)  # the whole object: only the two gaps are fetched
    assert reply.status == 200 and reply.body == data
    fetched = _ranges(_settled(origins, path))
    assert sorted(fetched[2:]) == [(0, 1_000_000), (1_600_000, len(data))]
    assert _disjoint(fetched)
    _recorded(edge, path, [(0, len(data))])
    assert _stored(edge, path)[1:] == (len(data), len(data), [(0, len(data))])
    assert edge.get(HOST, path).header("X-Cache") == "HIT"
    assert len(_settled(origins, path)) == 4


def test_a_suffix_range_of_a_cold_object(edge: Vodedge, origins: Origins) -> None:
    """`bytes=-N` needs no length beforehand: the origin's Content-Range gives it."""
    path, data = _random_file(origins, "suffix.bin", 1_000_000)
    reply = edge.get(HOST, path, {"Range": "bytes=-1000"})
    assert reply.status == 206 and reply.body == data[-1000:]
    assert reply.header("Content-Range") == f"bytes {len(data) - 1000}-{len(data) - 1}/{len(data)}"
    assert [(h.range, h.sent) for h in _settled(origins, path)] == [("bytes=-1000", 1000)]
    _recorded(edge, path, [(len(data) - 1000, len(data))])


def test_an_open_range_far_into_a_cold_object_starts_after_one_round_trip(
    edge: Vodedge, origins: Origins
) -> None:
    """`bytes=N-` far into a big cold object: one origin request for bytes from N before
    the first byte goes out, never the N bytes before it; the rest comes in segments."""
    path, data = _random_file(origins, "open.bin", 40_000_000)
    start = 30_000_000
    client = RawClient(edge.port, HOST, path, timeout=30, headers={"Range": f"bytes={start}-"})
    headers = client.read_head()
    first = client.read_body(1)
    at_first_byte = _ranges(origins.nginx.hits(path))
    body, complete = client.read_to_end()
    client.close()
    assert client.status == 206 and complete
    assert headers["content-range"] == f"bytes {start}-{len(data) - 1}/{len(data)}"
    assert first[:1] == data[start : start + 1] and body == data[start:]
    # nginx logs a request once it is sent: at most the first segment was done by then.
    assert all(s >= start for s, _ in at_first_byte), at_first_byte
    fetched = _ranges(_settled(origins, path))
    assert (start, start + SEGMENT) in fetched
    assert union(fetched) == [(start, len(data))] and _disjoint(fetched)


@pytest.mark.parametrize("layout", ["tail", "head"])
def test_cold_audio_only_fetches_the_moov_and_the_audio(
    edge: Vodedge, origins: Origins, tmp_path: Path, layout: str
) -> None:
    """A cold `?ali_audio_only=1` asks for the head, the moov and the audio chunks, each
    byte once: no whole-object request, the extents are what was fetched."""
    source = big_tail_moov() if layout == "tail" else generated("big-head-moov", HEAD_MOOV, "mp4")
    path = origins.media.add(source, f"sparse/audio-{layout}.mp4")
    want = cli_output("extract", source, tmp_path).output
    assert want is not None
    reply = edge.get(HOST, path + "?ali_audio_only=1", timeout=30)
    assert reply.status == 200 and reply.body == want
    hits = _settled(origins, path)
    fetched = _ranges(hits)
    assert _disjoint(fetched), fetched
    payload = sum(end - start for start, end in fetched)
    # The head read (64 KiB), the moov (64 KiB past each parser read), the audio chunks
    # and gaps under 512 bytes between them; multipart part headers on top.
    assert payload < len(want) + 3 * (64 << 10) + 512 * len(fetched), (payload, len(want))
    assert _sent(hits) < 1.5 * payload
    _recorded(edge, path, union(fetched))
    _, size, present, extents = _stored(edge, path)
    assert extents == union(fetched) and present == payload and size == source.stat().st_size
    again = edge.get(HOST, path + "?ali_audio_only=1")
    assert again.body == want and len(_settled(origins, path)) == len(hits)


def test_a_cold_seek_fetches_only_the_clip(edge: Vodedge, origins: Origins, tmp_path: Path) -> None:
    """`?start=&end=` on a cold MP4: the moov and the clip's samples, not the whole file."""
    source = big_tail_moov()
    path = origins.media.add(source, "sparse/seek.mp4")
    want = cli_output("clip", source, tmp_path, "--start", "1", "--end", "2").output
    assert want is not None
    reply = edge.get(HOST, path + "?start=1&end=2", timeout=30)
    assert reply.status == 200 and reply.body == want
    hits = _settled(origins, path)
    fetched = _ranges(hits)
    payload = sum(end - start for start, end in fetched)
    assert _disjoint(fetched) and payload < 1.5 * len(want) + 3 * (64 << 10), (payload, len(want))


def test_two_workers_fill_overlapping_ranges_of_one_object(edge: Vodedge, origins: Origins) -> None:
    """Many overlapping ranges at once, over both workers: every answer exact, every byte
    fetched once (claims per range), and the extents are exactly what was fetched."""
    path, data = _random_file(origins, "overlap.bin", 24_000_000)
    rng = random.Random(7)
    wanted = []
    for _ in range(24):
        start = rng.randrange(0, len(data) - 1)
        end = min(start + rng.randrange(1, 6_000_000), len(data))
        wanted.append((start, end))
    requests = [(HOST, path, {"Range": f"bytes={s}-{e - 1}"}) for s, e in wanted]
    replies = concurrent_gets(edge.port, requests, timeout=60)
    for (start, end), reply in zip(wanted, replies, strict=True):
        assert reply.status == 206, reply
        assert reply.body == data[start:end], (start, end)
    fetched = _ranges(_settled(origins, path))
    assert _disjoint(fetched), fetched
    _recorded(edge, path, union(fetched))
    _, _, present, extents = _stored(edge, path)
    assert extents == union(fetched) == union(wanted)
    assert present == sum(e - s for s, e in extents)


def test_kill_9_during_ranged_fills_leaves_only_written_extents(
    origins: Origins, tmp_path: Path
) -> None:
    """A worker killed while it writes ranges: every extent the index holds is the
    origin's bytes, and the next requests complete the object."""
    path, data = _random_file(origins, "kill.bin", 48_000_000)
    with running(Vodedge(tmp_path / "node", domains(origins), workers=1)) as server:
        for round_ in range(3):
            start = 5_000_000 * round_
            client = RawClient(server.port, HOST, path, headers={"Range": f"bytes={start}-"})
            client.read_head()
            client.read_body(1)
            (worker,) = server.worker_pids()
            os.kill(worker, signal.SIGKILL)
            client.close()
            wait_until(lambda w=worker: w not in server.worker_pids(), 10, "worker gone")
            wait_until(server.workers_ready, 20, "worker replaced")
            file, size, present, extents = _stored(server, path)
            assert size == len(data) and present == sum(e - s for s, e in extents)
            with open(file, "rb") as held:
                for low, high in extents:
                    held.seek(low)
                    assert held.read(high - low) == data[low:high], (round_, low, high)
        reply = server.get(HOST, path, timeout=60)
        assert reply.status == 200 and reply.body == data
        _recorded(server, path, [(0, len(data))])


def test_range_off_fills_whole_objects(edge: Vodedge, origins: Origins) -> None:
    """The `range` function off: a cold Range is answered from a whole-object fill."""
    path, data = _random_file(origins, "whole.bin", 2_000_000)
    reply = edge.get("whole.test", path, {"Range": "bytes=100-199"})
    assert reply.status == 206 and reply.body == data[100:200]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        hits = origins.nginx.settled_hits(path)
        if hits and hits[0].sent == len(data):
            break
    assert [(h.range, h.sent) for h in hits][:1] == [("", len(data))]


MIB = 1 << 20


def _objects(server: Vodedge) -> dict[str, tuple[Path, list[tuple[int, int]]]]:
    """Every object the index holds: its file and extents."""
    uri = f"file:{server.store / 'index.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        out = {}
        for key, file in db.execute("SELECT key, file FROM objects").fetchall():
            extents = db.execute(
                "SELECT start, end FROM extents WHERE file = ? ORDER BY start", (file,)
            ).fetchall()
            out[key] = (Path(file), [(int(a), int(b)) for a, b in extents])
    return out


def _on_disk(server: Vodedge, objects: dict[str, bytes]) -> None:
    """Every extent the index claims holds its object's bytes (a punched hole reads as
    zeros, which random bytes are not). A row whose file is gone claims nothing that can
    be read: an object evicted whole loses its file first, and such a row goes when read."""
    for key, (file, extents) in _objects(server).items():
        data = objects[key.removeprefix(HOST)]
        if not file.exists():
            continue
        with open(file, "rb") as held:
            for low, high in extents:
                held.seek(low)
                assert held.read(high - low) == data[low:high], (key, low, high)


def test_eviction_trims_a_sparse_object_and_only_its_gaps_are_fetched_again(
    origins: Origins, tmp_path: Path
) -> None:
    """A bound smaller than the objects: the least recently used sparse object loses its
    last extents (its ends kept), not the whole object; reading it again fetches exactly
    the bytes it lost, and every answer is exact."""
    a_path, a = _random_file(origins, "trim-a.bin", 40_000_000)
    b_path, b = _random_file(origins, "trim-b.bin", 40_000_000)
    with running(Vodedge(tmp_path / "node", domains(origins), cache_size="48MiB")) as server:
        for start, end in [(0, 1_000_000), (10_000_000, 30_000_000), (39_000_000, 40_000_000)]:
            reply = server.get(HOST, a_path, {"Range": f"bytes={start}-{end - 1}"}, timeout=30)
            assert reply.status == 206 and reply.body == a[start:end]
        held = [(0, 1_000_000), (10_000_000, 30_000_000), (39_000_000, 40_000_000)]
        _recorded(server, a_path, held)
        reply = server.get(HOST, b_path, {"Range": "bytes=0-29999999"}, timeout=30)
        assert reply.status == 206 and reply.body == b[:30_000_000]
        _recorded(server, b_path, [(0, 30_000_000)])
        file, _, present, extents = _stored(server, a_path)
        # Trimmed from the end of what lies between its ends: the ends are all there.
        assert extents[0] == (0, 1_000_000) and extents[-1] == (39_000_000, 40_000_000)
        assert extents[1][0] == 10_000_000 and extents[1][1] < 30_000_000, extents
        assert os.stat(file).st_blocks * 512 < present + MIB  # the blocks went too
        _on_disk(server, {a_path: a, b_path: b})
        seen = len(_settled(origins, a_path))
        gaps = [(extents[1][1], 30_000_000)]
        reply = server.get(HOST, a_path, {"Range": "bytes=10000000-29999999"}, timeout=30)
        assert reply.status == 206 and reply.body == a[10_000_000:30_000_000]
        fetched = _ranges(_settled(origins, a_path)[seen:])
        assert union(fetched) == gaps and _disjoint(fetched), fetched
        _recorded(server, a_path, held)
        _on_disk(server, {a_path: a, b_path: b})
        whole = server.get(HOST, a_path, timeout=60)
        assert whole.status == 200 and whole.body == a


def test_kill_9_during_eviction_leaves_extents_that_are_on_disk(
    origins: Origins, tmp_path: Path
) -> None:
    """Three objects through a bound that holds about one: every fetch trims or drops
    another, and the worker is killed at varying moments. The index only ever claims
    bytes that are on disk, and the next requests are exact."""
    objects = dict(_random_file(origins, f"trim-kill-{n}.bin", 40_000_000) for n in range(3))
    rng = random.Random(9)
    paths = sorted(objects)
    with running(Vodedge(tmp_path / "node", domains(origins), cache_size="48MiB")) as server:
        for round_ in range(8):
            path = paths[round_ % 3]
            start = rng.randrange(0, 30_000_000)
            client = RawClient(server.port, HOST, path, headers={"Range": f"bytes={start}-"})
            client.read_head()
            client.read_body(rng.randrange(1, 12_000_000))
            (worker,) = server.worker_pids()
            os.kill(worker, signal.SIGKILL)
            client.close()
            wait_until(lambda w=worker: w not in server.worker_pids(), 10, "worker gone")
            wait_until(server.workers_ready, 20, "worker replaced")
            _on_disk(server, objects)
        for path in paths:
            reply = server.get(HOST, path, {"Range": "bytes=5000000-24999999"}, timeout=60)
            assert reply.status == 206 and reply.body == objects[path][5_000_000:25_000_000]
        _on_disk(server, objects)


@pytest.mark.parametrize("host", [HOST, "whole.test"])
def test_a_file_left_without_its_row_goes_at_the_next_contact(
    edge: Vodedge, origins: Origins, host: str
) -> None:
    """kill -9 between making an object's file and writing its row (the file comes first:
    a row never names a missing file) leaves a file without a row. The next request for
    the object, holding its lock, removes it, without waiting for a restart: sparse
    (range on) or filled whole (range off)."""
    path, data = _random_file(origins, f"orphan-{host}.bin", 2_000_000)
    digest = Store.digest(host + path)
    orphan = edge.store / "objects" / digest[:2] / f"{digest}.{'0' * 12}"
    orphan.parent.mkdir(parents=True, exist_ok=True)
    with open(orphan, "wb") as left:
        left.truncate(len(data))  # as first_contact leaves it: the object's length, holes
    reply = edge.get(host, path, {"Range": "bytes=1000-1999"}, timeout=30)
    assert reply.status == 206 and reply.body == data[1000:2000]
    uri = f"file:{edge.store / 'index.sqlite'}?mode=ro"

    def files() -> tuple[list[Path], str | None]:
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            row = db.execute("SELECT file FROM objects WHERE key = ?", (host + path,)).fetchone()
        return sorted(orphan.parent.glob(f"{digest}.*")), None if row is None else row[0]

    wait_until(lambda: files()[1] is not None, 10, "the object's row")
    found, named = files()
    assert not orphan.exists() and [str(f) for f in found] == [named]
