"""The process model under kill -9 (issue 12, class 5): a killed worker's temporary files
go before its replacement starts, workers stop when their master dies, a new master
binds the same addresses, and no lock file outlives its use."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import RawClient, Vodedge, port_open, running, wait_until
from edge_media import SAMPLES

pytestmark = pytest.mark.xdist_group("edge_process")

SLOW = {"chunk": 32 << 10, "drip_after": 0, "interval": 0.1}


def _publish(origins: Origins, name: str) -> tuple[str, bytes]:
    path = origins.media.add(SAMPLES / "talk.mp4", f"process/{name}")
    return path, origins.media.file(path).read_bytes()


def _filler(server: Vodedge) -> int | None:
    """The worker writing a temporary file of the store, if one is."""
    for pid in server.worker_pids():
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
                info = Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text()
            except OSError:
                continue  # closed while we looked
            if "/store/tmp/" in target and int(info.split("flags:")[1].split()[0], 8) & 3:
                return pid
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def test_a_killed_workers_temporary_files_go_before_its_replacement_serves(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """kill -9 of a worker mid-fill, two workers: no temporary or lock file is left once
    the master has replaced it, with no restart of the node."""
    path, source = _publish(origins, "worker-killed.mp4")
    origins.fault.behave(path, **SLOW)
    work = tmp_path_factory.mktemp("vodedge-worker-kill")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        client = RawClient(server.port, "faulty.test", path)
        client.read_head()
        client.read_body(64 << 10)
        filler = _filler(server)
        assert filler is not None and server.tmp_files(), "no fill in progress"
        before = set(server.worker_pids())
        killed = time.monotonic()
        os.kill(filler, signal.SIGKILL)
        client.read_to_end()
        client.close()
        wait_until(
            lambda: len(server.worker_pids()) == 2 and filler not in server.worker_pids(),
            10,
            "the master to replace the worker",
        )
        wait_until(server.workers_ready, 10, "the new worker to serve")
        replaced = time.monotonic() - killed
        orphans = server.tmp_files()
        locks = server.lock_files()
        print(f"[worker kill -9] replaced_s={replaced:.2f} tmp_left={orphans} locks={locks}")
        assert orphans == [] and locks == []
        assert set(server.worker_pids()) - before, "no new worker"
        origins.fault.behave(path)
        server.prime("faulty.test", path)
        assert server.get("faulty.test", path).body == source
        assert server.tmp_files() == [] and server.lock_files() == []


def test_workers_stop_when_the_master_is_killed_and_a_new_master_binds(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """kill -9 of the master mid-fill: its workers stop (their listener closes at once), a
    new master on the same ports starts, and what the old fill left is removed."""
    path, source = _publish(origins, "master-killed.mp4")
    origins.fault.behave(path, **SLOW)
    work = tmp_path_factory.mktemp("vodedge-master-kill")
    server = Vodedge(work, domains(origins), workers=2)
    with running(server):
        client = RawClient(server.port, "faulty.test", path)
        client.read_head()
        client.read_body(64 << 10)
        workers = server.worker_pids()
        assert len(workers) == 2 and server.tmp_files()
        killed = time.monotonic()
        os.kill(server.pid, signal.SIGKILL)
        assert server.proc is not None
        server.proc.wait(timeout=5)
        wait_until(lambda: not port_open(server.port), 10, "the client listener to close")
        unbound = time.monotonic() - killed
        wait_until(lambda: not any(_alive(pid) for pid in workers), 15, "the workers to exit")
        exited = time.monotonic() - killed
        client.close()
        origins.fault.behave(path)
        started = time.monotonic()
        server.start(same_ports=True)
        restarted = time.monotonic() - started
        orphans = server.tmp_files()
        locks = server.lock_files()
        print(
            f"[master kill -9] listener_closed_s={unbound:.2f} workers_gone_s={exited:.2f}"
            f" restart_s={restarted:.2f} tmp_left={orphans} locks={locks}"
        )
        assert orphans == [] and locks == []
        server.prime("faulty.test", path)
        reply = server.get("faulty.test", path)
        assert reply.status == 200 and reply.body == source


def test_no_lock_file_outlives_its_fill(edge: Vodedge, origins: Origins) -> None:
    """Objects filled, followed and rendered leave store/locks empty."""
    paths = [_publish(origins, f"locks-{n}.mp4")[0] for n in range(3)]
    for path in paths:
        edge.prime("video.test", path)
        edge.get("video.test", path + "?ali_audio_only=1")
    wait_until(lambda: edge.lock_files() == [], 5, f"no lock files, not {edge.lock_files()}")


def test_lock_files_of_a_dead_process_go_when_its_worker_is_replaced(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A lock file its holder never removed (killed between taking and releasing it), and
    one still held by a live process: the first goes when a killed worker is replaced,
    the held one stays."""
    import fcntl

    work = tmp_path_factory.mktemp("vodedge-stray-lock")
    with running(Vodedge(work, domains(origins), workers=2)) as server:
        locks = server.store / "locks"
        (locks / "stray.lock").write_bytes(b"")
        held = locks / "held.lock"
        with open(held, "wb") as holder:
            fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
            victim = server.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            wait_until(
                lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids(),
                10,
                "the master to replace the worker",
            )
            wait_until(lambda: server.lock_files() == ["held.lock"], 5, "the stray lock to go")
        held.unlink()


def test_temporary_files_count_in_the_cache_size(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A 1000 KiB cache holding one 370 kB object, and 500 kB of another process's fill in
    store/tmp: storing a second object evicts the first (the fill's blocks count)."""
    import fcntl

    a, _ = _publish(origins, "counted-a.mp4")
    b, _ = _publish(origins, "counted-b.mp4")
    work = tmp_path_factory.mktemp("vodedge-counted")
    with running(Vodedge(work, domains(origins), cache_size="1000k")) as server:
        server.prime("video.test", a)
        digest = "f" * 40
        with open(server.store / "locks" / f"{digest}.lock", "wb") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # a fill running elsewhere
            (server.store / "tmp" / f"{digest}.0123456789ab.part").write_bytes(b"\1" * 500_000)
            server.prime("video.test", b)
            assert server.get("video.test", b, method="HEAD").header("X-Cache") == "HIT"
            assert server.get("video.test", a, method="HEAD").header("X-Cache") == "MISS"
        (server.store / "tmp" / f"{digest}.0123456789ab.part").unlink()
        (server.store / "locks" / f"{digest}.lock").unlink(missing_ok=True)
