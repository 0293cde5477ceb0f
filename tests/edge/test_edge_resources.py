"""Descriptor exhaustion (issue 12, class 2): a node limited to 1024 descriptors under
2,500 idle connections, then 1,500 slow readers, keeps both workers serving or
answering 503 (never 500), logs at most a line a second per cause, and serves again
within 5 s of the pressure ending."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, http_request, process_fds, running

pytestmark = pytest.mark.xdist_group("edge_resources")

NOFILE = 1024
IDLE_CLIENTS = 2500
SLOW_READERS = 1500
PROBES = 20
RECOVERY = 5.0
BIG = 8 << 20  # larger than any socket buffers between a slow reader and the node
MAX_STDERR = 16 << 10


@pytest.fixture(scope="module", autouse=True)
def _room_for_clients() -> None:
    """The test process itself holds thousands of sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = IDLE_CLIENTS + SLOW_READERS + 512
    if soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"the test needs {wanted} descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


@pytest.fixture(scope="module")
def limited(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Two workers, each limited to 1024 descriptors, short send and idle timeouts."""
    work = tmp_path_factory.mktemp("vodedge-nofile")
    server = Vodedge(
        work, domains(origins), workers=2, nofile=NOFILE, send_timeout=30.0, idle_timeout=10.0
    )
    with running(server):
        yield server


@pytest.fixture(scope="module")
def big_object(origins: Origins, limited: Vodedge) -> tuple[str, bytes]:
    """An 8 MiB object, cached."""
    data = os.urandom(BIG)
    path = origins.media.write("resources/big.bin", data)
    limited.prime("video.test", path)
    return path, data


def _probe(server: Vodedge, path: str, data: bytes) -> int:
    """One ordinary client: the status, after checking a 200's body."""
    try:
        reply = http_request(server.port, "video.test", path, timeout=15)
    except (OSError, TimeoutError):
        return 0  # no answer at all
    if reply.status == 200:
        assert reply.complete and reply.body == data, "a 200 with a wrong body"
    return reply.status


def _recovery(server: Vodedge, path: str, data: bytes) -> float:
    """Seconds until an ordinary request is served again."""
    started = time.monotonic()
    while time.monotonic() - started < RECOVERY * 2:
        if _probe(server, path, data) == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    return float("inf")


def _worker_fds(server: Vodedge) -> list[int]:
    return [sum(process_fds(pid).values()) for pid in server.worker_pids()]


def _stderr_bytes(server: Vodedge) -> int:
    return server.stderr_log.stat().st_size


def _measure(name: str, **numbers: object) -> None:
    """Measurements go to the test's output (-s, or the report on failure)."""
    print(f"[{name}] " + " ".join(f"{key}={value}" for key, value in numbers.items()))


@contextlib.contextmanager
def _sockets() -> Iterator[list[socket.socket]]:
    held: list[socket.socket] = []
    try:
        yield held
    finally:
        for sock in held:
            sock.close()


def test_idle_connection_flood(limited: Vodedge, big_object: tuple[str, bytes]) -> None:
    """2,500 connections that never send a byte: ordinary clients are still served (the
    longest-idle connections make room), no worker runs out of descriptors."""
    path, data = big_object
    log_before = _stderr_bytes(limited)
    with _sockets() as idle:
        for _ in range(IDLE_CLIENTS):
            idle.append(socket.create_connection(("127.0.0.1", limited.port), timeout=10))
        time.sleep(0.5)  # let both workers accept what they will
        statuses = Counter(_probe(limited, path, data) for _ in range(PROBES))
        fds = _worker_fds(limited)
        assert len(fds) == 2, "a worker died"
    recovered = _recovery(limited, path, data)
    log_growth = _stderr_bytes(limited) - log_before
    _measure("idle flood", statuses=dict(statuses), worker_fds=fds, stderr_bytes=log_growth,
             recovery_s=round(recovered, 3))  # fmt: skip
    assert set(statuses) <= {200, 503}, statuses
    assert statuses[200] >= PROBES // 2, f"idle connections crowded clients out: {statuses}"
    assert max(fds) < NOFILE, fds
    assert log_growth < MAX_STDERR, limited.log_text()
    assert recovered < RECOVERY


def _slow_reader(port: int, path: str) -> tuple[socket.socket, int]:
    """A client that asks for the big object and then reads only the status line."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(15)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: video.test\r\n\r\n".encode())
    try:
        head = sock.recv(64)
    except (OSError, TimeoutError):
        return sock, 0
    parts = head.split(b" ", 2)
    return sock, int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def test_slow_readers_get_200_or_503(limited: Vodedge, big_object: tuple[str, bytes]) -> None:
    """1,500 clients that stop reading mid-body: each got 200 or 503 (never 500), ordinary
    clients meanwhile too, and service is back within 5 s of them leaving."""
    path, data = big_object
    log_before = _stderr_bytes(limited)
    readers: Counter[int] = Counter()
    with _sockets() as held:
        for _ in range(SLOW_READERS):
            sock, status = _slow_reader(limited.port, path)
            held.append(sock)
            readers[status] += 1
        statuses = Counter(_probe(limited, path, data) for _ in range(PROBES))
        fds = _worker_fds(limited)
        assert len(fds) == 2, "a worker died"
    recovered = _recovery(limited, path, data)
    log_growth = _stderr_bytes(limited) - log_before
    _measure("slow readers", readers=dict(readers), probes=dict(statuses), worker_fds=fds,
             stderr_bytes=log_growth, recovery_s=round(recovered, 3))  # fmt: skip
    assert set(readers) <= {200, 503}, readers
    assert readers[200] > 0, readers
    assert set(statuses) <= {200, 503}, statuses
    assert max(fds) < NOFILE, fds
    assert log_growth < MAX_STDERR, limited.log_text()
    assert recovered < RECOVERY


def test_the_soft_limit_is_raised_to_the_hard_one(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Started with soft 1024 under a higher hard limit, the workers run at the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= NOFILE:
        pytest.skip(f"the hard limit ({hard}) leaves nothing to raise")
    work = tmp_path_factory.mktemp("vodedge-raise")
    server = Vodedge(work, domains(origins), workers=2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, hard))
    try:
        server.start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        for pid in [server.pid, *server.worker_pids()]:
            limits = Path(f"/proc/{pid}/limits").read_text()
            line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
            assert line.split()[3] == str(hard), line
    finally:
        server.stop()
