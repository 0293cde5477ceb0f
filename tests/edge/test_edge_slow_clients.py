"""Connections that never finish a request: silent, half-sent, idle after a response.

vodedge closes them after its idle_timeout setting (30 s); this server runs with
3 s so the tests wait seconds, not minutes. A response that takes
longer than that, or a connection reused in time, must not be cut.
"""

from __future__ import annotations

import os
import select
import socket
import time
from collections.abc import Iterator
from http.client import HTTPConnection

import pytest
from edge_config import RATE, Origins, domains
from edge_harness import Vodedge, running

pytestmark = pytest.mark.xdist_group("edge_slow_clients")

IDLE = 3.0
# The idle timeout, the sweep's period (2 s), and slack for a loaded machine.
BOUND = IDLE + 2.0 + 3.0


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker closing idle connections after 3 s."""
    work = tmp_path_factory.mktemp("vodedge-idle")
    with running(Vodedge(work, domains(origins), idle_timeout=IDLE)) as server:
        yield server


def test_connections_without_a_request_are_closed(edge: Vodedge) -> None:
    """A silent connection, a request line without its end, and an idle keep-alive one are
    all closed by the server within the bound."""
    silent = socket.create_connection(("127.0.0.1", edge.port))
    partial = socket.create_connection(("127.0.0.1", edge.port))
    partial.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: dir.test\r\n")
    idle = socket.create_connection(("127.0.0.1", edge.port))
    idle.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: dir.test\r\n\r\n")
    open_ = {"silent": silent, "partial": partial, "idle": idle}
    deadline = time.monotonic() + BOUND
    try:
        while open_ and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_.values()), [], [], 0.5)
            for sock in ready:
                try:
                    data = sock.recv(65536)
                except ConnectionError:
                    data = b""
                if not data:  # closed by the server (the idle one first gets its answer)
                    open_ = {k: v for k, v in open_.items() if v is not sock}
        assert not open_, f"still open after {BOUND:.0f} s: {sorted(open_)}"
    finally:
        for sock in (silent, partial, idle):
            sock.close()


def test_a_response_longer_than_the_idle_timeout_is_not_cut(
    edge: Vodedge, origins: Origins
) -> None:
    """1.5 MB at limit_rate's 256 KiB/s takes about 5.5 s: it arrives whole."""
    data = os.urandom(1_500_000)
    path = origins.media.write("slow-clients/paced.bin", data)
    edge.prime("slow.test", path)
    reply = edge.get("slow.test", path, timeout=30)
    assert reply.complete and reply.body == data
    assert reply.elapsed > IDLE, "the response was not slower than the idle timeout"
    assert reply.elapsed >= (len(data) - RATE // 4) / RATE * 0.9


def test_a_connection_reused_in_time_stays_open(edge: Vodedge) -> None:
    """Keep-alive: a second request a second after the first uses the same connection."""
    connection = HTTPConnection("127.0.0.1", edge.port, timeout=10)
    try:
        for pause in (0.0, 1.0, 1.0):
            time.sleep(pause)
            connection.request("GET", "/hello.txt", headers={"Host": "dir.test"})
            response = connection.getresponse()
            assert response.status == 200 and response.read().startswith(b"hello")
            sock = connection.sock
            assert sock is not None and not response.will_close
        assert connection.sock is sock, "the connection was replaced"
    finally:
        connection.close()
