"""The disk cache through real processes: collapsed fills, misses served while filling,
tail-moov ranged reads, purge, restart, kill -9 mid-fill, LRU eviction."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import RawClient, Vodedge, concurrent_gets, open_files, running, wait_until
from edge_media import SAMPLES, big_tail_moov, cli_output

pytestmark = pytest.mark.xdist_group("edge_cache")

# A fill the clients can overtake: 64 kB every 50 ms (talk.mp4 takes ~0.3 s).
SLOW_DRIP = {"chunk": 64 << 10, "drip_after": 0, "interval": 0.05}


@pytest.fixture(scope="module")
def edge2(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Two workers sharing one socket and one cache, on uvloop."""
    config = domains(origins)
    work = tmp_path_factory.mktemp("vodedge2")
    with running(Vodedge(work, config, workers=2, loop="uvloop")) as server:
        yield server


def _publish(origins: Origins, name: str, sample: str = "talk.mp4") -> tuple[str, bytes]:
    path = origins.media.add(SAMPLES / sample, f"cache/{name}")
    return path, origins.media.file(path).read_bytes()


# --- misses --------------------------------------------------------------------------------


def test_a_miss_of_a_small_object_is_served(edge: Vodedge, origins: Origins) -> None:
    """The first client of a 3 kB object gets it (not a 500)."""
    data = os.urandom(3000)
    path = origins.media.write("cache/small.bin", data)
    reply = edge.get("video.test", path)
    assert reply.status == 200, reply
    assert reply.body == data


@pytest.mark.parametrize("how", ["audio_only", "range"])
def test_a_miss_served_while_filling_gets_the_origins_bytes(
    edge: Vodedge, origins: Origins, tmp_path: Path, how: str
) -> None:
    """Spans sent from a growing object are the origin's bytes, and so is what is stored."""
    path, source = _publish(origins, f"while-filling-{how}.mp4")
    origins.fault.behave(path, chunk=16 << 10, drip_after=0, interval=0.01)
    if how == "audio_only":
        want = cli_output("extract", origins.media.file(path), tmp_path).output
        reply = edge.get("faulty.test", path + "?ali_audio_only=1", timeout=3)
    else:
        want = source[:100_000]
        reply = edge.get("faulty.test", path, {"Range": "bytes=0-99999"}, timeout=3)
    assert reply.header("X-Cache") == "MISS"
    assert reply.complete and reply.body == want
    edge.prime("faulty.test", path)  # stored, without another origin request:
    assert len(origins.fault.requests(path)) == 1
    after = edge.get("faulty.test", path)
    assert after.header("X-Cache") == "HIT", after
    assert after.body == source


def test_a_whole_object_miss_follows_the_fill(edge: Vodedge, origins: Origins) -> None:
    """A plain GET of a cold object gets its bytes as the origin drips them, then it is stored."""
    path, source = _publish(origins, "follows.mp4")
    origins.fault.behave(path, **SLOW_DRIP)
    reply = edge.get("faulty.test", path)
    assert reply.header("X-Cache") == "MISS"
    assert reply.complete and reply.body == source
    hit = edge.get("faulty.test", path)
    assert hit.header("X-Cache") == "HIT" and hit.body == source
    assert len(origins.fault.requests(path)) == 1


@pytest.mark.parametrize("workers", [1, 2])
def test_concurrent_clients_share_one_origin_fetch(
    edge: Vodedge, edge2: Vodedge, origins: Origins, workers: int
) -> None:
    """20 clients of a cold object: one origin request, every client the exact bytes."""
    server = edge if workers == 1 else edge2
    path, source = _publish(origins, f"collapsed-{workers}.mp4")
    origins.fault.behave(path, **SLOW_DRIP)
    replies = concurrent_gets(server.port, [("faulty.test", path, {})] * 20)
    for reply in replies:
        assert reply.status == 200 and reply.complete, reply
        assert reply.body == source
    assert {r.header("X-Cache") for r in replies} <= {"MISS", "HIT"}
    assert len(origins.fault.requests(path)) == 1, origins.fault.requests(path)


def test_an_expired_object_is_revalidated_once_per_worker(edge2: Vodedge, origins: Origins) -> None:
    """20 clients over two workers after max-age ran out: at most one conditional request
    per worker (workers share the cache, not their revalidations), all REVALIDATED."""
    path, source = _publish(origins, "expired-two-workers.mp4")
    origins.fault.behave(path, cache_control="max-age=1")
    edge2.prime("faulty.test", path)
    edge2.wait_expired("faulty.test", path)
    origins.fault.behave(path, cache_control="max-age=1", headers_delay=0.3)
    replies = concurrent_gets(edge2.port, [("faulty.test", path, {})] * 20)
    assert all(r.status == 200 and r.body == source for r in replies)
    assert {r.header("X-Cache") for r in replies} <= {"REVALIDATED", "HIT"}
    conditional = [r for r in origins.fault.requests(path) if r["if_none_match"]]
    assert 1 <= len(conditional) <= 2, conditional


def test_a_client_leaving_does_not_cancel_the_fill(edge: Vodedge, origins: Origins) -> None:
    """The first client hangs up mid-body: a second still gets everything, from one fetch."""
    path, source = _publish(origins, "abandoned.mp4")
    origins.fault.behave(path, **SLOW_DRIP)
    leaver = RawClient(edge.port, "faulty.test", path)
    assert leaver.read_head()["x-cache"] == "MISS"
    leaver.read_body(1)
    stayer = RawClient(edge.port, "faulty.test", path)
    stayer.read_head()
    leaver.close()
    body, complete = stayer.read_to_end()
    stayer.close()
    assert complete and body == source
    # And a fill whose only client left is finished and stored all the same.
    lonely, _ = _publish(origins, "abandoned-alone.mp4")
    origins.fault.behave(lonely, **SLOW_DRIP)
    client = RawClient(edge.port, "faulty.test", lonely)
    client.read_head()
    client.close()
    for name in (path, lonely):
        edge.prime("faulty.test", name)
        reply = edge.get("faulty.test", name)
        assert reply.header("X-Cache") == "HIT" and reply.body == source
        assert len(origins.fault.requests(name)) == 1


# --- the tail moov on a miss --------------------------------------------------------------


@pytest.fixture(scope="module")
def big(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The several-MB tail-moov MP4 and what `vodedge extract` makes of it."""
    source = big_tail_moov()
    result = cli_output("extract", source, tmp_path_factory.mktemp("big"))
    assert result.output is not None, result.error
    return source, result.output


def test_tail_moov_miss_reads_the_moov_with_a_range(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """An audio-only miss of a tail-moov MP4 filled whole (range off) asks nginx for the
    moov with a Range request beside the fill."""
    source, want = big
    path = origins.media.add(source, "cache/big-tail-moov.mp4")
    # HEAD: the plan (and its Content-Length) needs the moov, yet no body is sent while
    # the object fills (see test_a_miss_served_while_filling_gets_the_origins_bytes).
    head = edge.get("whole.test", path + "?ali_audio_only=1", method="HEAD")
    assert head.status == 200, head
    assert head.header("X-Cache") == "MISS"
    assert head.header("Content-Length") == str(len(want))
    hits = origins.nginx.settled_hits(path)
    ranged = [h for h in hits if h.range]
    whole = [h for h in hits if not h.range]
    assert len(whole) == 1, hits
    assert ranged, f"no ranged request for the tail moov: {hits}"
    moov_at = source.stat().st_size - 1_000_000
    assert all(int(h.range.split("=")[1].split("-")[0]) > moov_at for h in ranged), ranged
    reply = edge.get("whole.test", path + "?ali_audio_only=1")
    assert reply.header("X-Cache") == "HIT"
    assert reply.body == want


def test_first_audio_byte_comes_before_the_fill_ends(
    edge: Vodedge, origins: Origins, big: tuple[Path, bytes]
) -> None:
    """With a slow origin, the audio-only response starts long before the object is in."""
    source, want = big
    path = origins.media.add(source, "cache/big-tail-moov-slow.mp4")
    # ~2.5 s for the whole object; the Range for the moov is answered at once.
    origins.fault.behave(path, chunk=64 << 10, drip_after=0, interval=0.025)
    client = RawClient(edge.port, "faulty.test", path + "?ali_audio_only=1")
    headers = client.read_head()
    first = client.read_body(64)
    records = origins.fault.requests(path)
    body, _ = client.read_to_end()  # then the audio chunks, as the fill reaches them
    client.close()
    assert client.status == 200 and headers["content-length"] == str(len(want))
    # The ftyp and the rewritten moov come first, before any audio sample.
    assert first[:64] == want[:64]
    # The moov is the file's last bytes: the whole-object fetch had not delivered them
    # when the first bytes went out (it is paced to ~2.5 s), so they came from the Range.
    whole = [r for r in records if r["range"] is None]
    assert len(whole) == 1 and not whole[0]["completed"], records
    assert any(r["range"] for r in records), records
    assert body == want


# --- purge, restart, crash -----------------------------------------------------------------


def test_purge_a_url_and_a_directory(edge: Vodedge, origins: Origins) -> None:
    """`vodedge purge` drops one object, or everything under a directory URL."""
    names = ["purge/one.mp4", "purge/dir/a.mp4", "purge/dir/b.mp4", "purge/other/c.mp4"]
    paths = [_publish(origins, name)[0] for name in names]
    for path in paths:
        edge.prime("video.test", path)
    proc = edge.purge(f"http://video.test{paths[0]}")
    assert proc.returncode == 0, proc.stderr
    assert "1 object" in proc.stdout
    proc = edge.purge("http://video.test/cache/purge/dir/")
    assert proc.returncode == 0, proc.stderr
    assert "2 object" in proc.stdout
    states = [edge.get("video.test", p, method="HEAD").header("X-Cache") for p in paths]
    assert states == ["MISS", "MISS", "MISS", "HIT"]
    unknown = edge.purge("http://nobody.test/x.mp4")
    assert unknown.returncode == 2 and unknown.stderr.startswith("vodedge: error:")


def test_restart_keeps_the_cache(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Objects stored before a restart are HITs after it, without asking the origin."""
    path, source = _publish(origins, "survives-restart.mp4")
    work = tmp_path_factory.mktemp("vodedge-restart")
    with running(Vodedge(work, domains(origins))) as server:
        server.prime("video.test", path)
        server.restart()
        reply = server.get("video.test", path)
        assert reply.header("X-Cache") == "HIT" and reply.body == source
    gets = [h for h in origins.nginx.settled_hits(path) if h.method == "GET"]
    assert len(gets) == 1, gets


def test_kill_9_mid_fill_leaves_nothing_served(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A worker killed mid-fill: the client sees a broken body; the partial file is never
    served, by the restarted worker or after a restart; nothing is left in store/tmp."""
    path, source = _publish(origins, "killed-mid-fill.mp4")
    origins.fault.behave(path, chunk=32 << 10, drip_after=0, interval=0.1)
    work = tmp_path_factory.mktemp("vodedge-kill")
    with running(Vodedge(work, domains(origins))) as server:
        (worker,) = server.worker_pids()
        client = RawClient(server.port, "faulty.test", path)
        client.read_head()
        client.read_body(64 << 10)
        assert server.tmp_files(), "no fill in progress"
        os.kill(worker, signal.SIGKILL)
        body, _ = client.read_to_end()
        client.close()
        assert len(body) < len(source), "a killed fill delivered the whole object?"
        wait_until(
            lambda: len(server.worker_pids()) == 1 and server.worker_pids() != [worker],
            10,
            "the master to restart the worker",
        )
        origins.fault.behave(path)  # healthy and quick from now on
        wait_until(lambda: server.get("dir.test", "/hello.txt").status == 200, 10, "a worker")
        head = server.get("faulty.test", path, method="HEAD")
        assert head.header("X-Cache") == "MISS", head
        server.prime("faulty.test", path)
        reply = server.get("faulty.test", path)
        assert reply.header("X-Cache") == "HIT" and reply.body == source
        server.restart()
        assert server.tmp_files() == []
        again = server.get("faulty.test", path)
        assert again.header("X-Cache") == "HIT" and again.body == source
    stored = [f.read_bytes() for f in server.object_files()]
    assert stored.count(source) == 1 and all(
        len(data) != len(source) for data in stored if data != source
    )


def _part_holders(server: Vodedge) -> dict[int, str]:
    """Which workers hold a fill's temporary file open: 'write' (filler) or 'read' (follower)."""
    roles: dict[int, str] = {}
    for pid in server.worker_pids():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # the worker exited meanwhile
        for fd in fds:
            # Descriptors close while we look: one gone is simply not held any more.
            try:
                target = os.readlink(fd)
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
            except OSError:
                continue
            if "/store/tmp/" in target:
                flags = int(info.split("flags:")[1].split()[0], 8)
                roles[pid] = "write" if flags & 3 else roles.get(pid, "read")
    return roles


def test_kill_9_of_the_filler_while_another_worker_follows(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Two workers, the filler killed: no client gets wrong bytes, the follower's own fill
    stores the object, and it keeps no descriptor of the dead fill's file."""
    path, source = _publish(origins, "killed-filler.mp4")
    origins.fault.behave(path, chunk=32 << 10, drip_after=0, interval=0.1)
    work = tmp_path_factory.mktemp("vodedge-kill2")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        clients = []
        # Connections go to whichever worker accepts first: open them until both
        # workers take part (one fills, the other follows the growing file).
        for _ in range(40):
            client = RawClient(server.port, "faulty.test", path)
            client.read_head()
            clients.append(client)
            time.sleep(0.02)
            if sorted(_part_holders(server).values()) == ["read", "write"]:
                break
        roles = _part_holders(server)
        assert sorted(roles.values()) == ["read", "write"], roles
        (filler,) = [pid for pid, role in roles.items() if role == "write"]
        (follower,) = [pid for pid, role in roles.items() if role == "read"]
        # Mid-body: some of the object is on disk when the filler dies.
        wait_until(lambda: origins.fault.requests(path)[0]["sent"] >= 96 << 10, 5, "96 kB of body")
        os.kill(filler, signal.SIGKILL)
        for client in clients:
            body, _ = client.read_to_end()
            client.close()
            assert source.startswith(body), "a client got bytes that are not the object's"

        def takeover_over() -> bool:
            records = origins.fault.requests(path)
            return len(records) >= 2 and bool(records[1]["completed"] or records[1]["error"])

        wait_until(takeover_over, 10, "the follower's own fetch to end")
        assert origins.fault.requests(path)[1]["completed"], "the follower's fill broke off"
        server.prime("faulty.test", path)
        assert len(origins.fault.requests(path)) == 2, "the follower's own fill stored nothing"
        reply = server.get("faulty.test", path)
        assert reply.body == source and reply.header("X-Cache") == "HIT"
        # Descriptors may close while /proc is read: open_files skips those.
        leaked = [target for target in open_files(follower) if "/store/tmp/" in target]
        assert leaked == [], f"the follower still holds {leaked}"


def _last_access(server: Vodedge, key: str) -> float:
    """The access time the cache index holds for `key`."""
    index = sqlite3.connect(f"file:{server.store / 'index.sqlite'}?mode=ro", uri=True)
    try:
        row = index.execute("SELECT last_access FROM objects WHERE key = ?", (key,)).fetchone()
    finally:
        index.close()
    assert row is not None, key
    return float(row[0])


def test_lru_bound_evicts_the_least_recently_used(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A cache of 1000 KiB holds two 370 kB objects: the third evicts the one not read since."""
    paths = [_publish(origins, f"lru/{name}.mp4")[0] for name in "abc"]
    size = origins.media.file(paths[0]).stat().st_size
    work = tmp_path_factory.mktemp("vodedge-lru")
    with running(Vodedge(work, domains(origins), cache_size="1000k")) as server:
        a, b, c = paths
        server.prime("video.test", a)
        server.prime("video.test", b)
        assert server.get("video.test", a, method="HEAD").header("X-Cache") == "HIT"
        # The worker writes access times to the index every 2 s (later when it is busy).
        wait_until(
            lambda: _last_access(server, "video.test" + a) > _last_access(server, "video.test" + b),
            30,
            "a's access written to the index",
        )
        server.prime("video.test", c)
        states = {p: server.get("video.test", p, method="HEAD").header("X-Cache") for p in paths}
        assert states == {a: "HIT", b: "MISS", c: "HIT"}, states
        server.prime("video.test", b)  # b's fill (and the eviction it causes) is over
        stored = server.object_files()
        assert sum(f.stat().st_size for f in stored) <= 1000 * 1024
        assert len(stored) == 2 and all(f.stat().st_size == size for f in stored)
