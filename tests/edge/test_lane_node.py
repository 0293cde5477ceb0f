"""The lane in a whole node (`vodedge serve`, the lane on by default): the idle sweep and
long answers, as a client meets them.

test_lane.py serves one Edge in-process; here the node's own worker runs it, with its
idle sweep (node/serve.py) and a short idle timeout, so that the tests wait seconds.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, running

pytestmark = pytest.mark.xdist_group("lane_node")

IDLE = 2.0
# The idle timeout, the sweep's period (at most 2 s), and slack for a loaded machine.
BOUND = IDLE + 2.0 + 3.0


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One worker closing idle connections after IDLE seconds."""
    work = tmp_path_factory.mktemp("vodedge-lane-node")
    with running(Vodedge(work, domains(origins), idle_timeout=IDLE)) as server:
        yield server


def _read_answer(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """One response with a Content-Length from `sock`: (its body, what follows it)."""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {buffer[:200]!r}"
        buffer += chunk
    head, buffer = buffer.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(buffer) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed within an answer"
        buffer += chunk
    return buffer[:length], buffer[length:]


def test_a_connection_the_lane_keeps_busy_stays_open(edge: Vodedge, origins: Origins) -> None:
    """Small HITs (the lane's) asked every 0.8 s for longer than the idle timeout keep
    their connection: the sweep counts lane answers as activity. Once the client stops
    asking, the connection is closed within the bound."""
    data = b"lane " * 200
    path = origins.media.write("lane-node/small.bin", data)
    edge.prime("video.test", path)
    request = f"GET {path} HTTP/1.1\r\nHost: video.test\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", edge.port), timeout=10) as sock:
        buffer = b""
        started = time.monotonic()
        while time.monotonic() - started < IDLE * 2.5:
            sock.sendall(request)
            body, buffer = _read_answer(sock, buffer)
            assert body == data
            time.sleep(0.8)
        idle_since = time.monotonic()
        sock.settimeout(BOUND)
        try:
            rest = sock.recv(1)
        except ConnectionResetError:
            rest = b""
        assert rest == b"", rest
        assert time.monotonic() - idle_since < BOUND
