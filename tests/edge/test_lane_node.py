"""The lane over a node's lifetime: idle connections, answers longer than the idle
timeout, a shutdown while the lane is sending.

First in-process nodes of their own (test_lane.py's harness, other limits than its
shared node), then a whole node (`vodedge serve`, the lane on by default) with its idle
sweep (node/serve.py) and a short idle timeout, so that the tests wait seconds.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, running
from edge_media import generated
from test_lane import (
    HEAD_MOOV,
    Node,
    ask,
    certificate,
    config,
    connected,
    get_request,
    line_for,
    same_answers,
    settle,
)

from vodedge.config.limits import NodeLimits

pytestmark = pytest.mark.xdist_group("lane_node")

IDLE = 2.0
# The idle timeout, the sweep's period (at most 2 s), and slack for a loaded machine.
BOUND = IDLE + 2.0 + 3.0


# --- in-process nodes ------------------------------------------------------------------


@contextlib.contextmanager
def another_node(origins: Origins, work: Path, **limits: float) -> Iterator[Node]:
    """A node of its own (test_lane's domains) with these limits, started and stopped."""
    cert = certificate(work / "certs")
    served = Node(work, config(origins, cert), NodeLimits(send_timeout=10.0, **limits))
    served.start()
    try:
        yield served
    finally:
        served.stop()


def test_idle_lane_connections_are_closed(origins: Origins, tmp_path: Path) -> None:
    """keepalive_timeout (the node's idle timeout) closes a kept-alive connection whose
    answers all came from the lane, as it closes one aiohttp answered."""
    path = origins.media.write("lane/idle.bin", b"idle" * 100)
    with another_node(origins, tmp_path, idle_timeout=1.0) as served:
        served.prime("lane.test", path)
        served.warm("lane.test", path)
        for port in (served.plain_port, served.lane_port):
            with connected(port) as client:
                client.send(get_request("lane.test", path))
                assert client.read().body == b"idle" * 100
                started = time.monotonic()
                assert client.closed_by_server(5), port == served.lane_port
                assert time.monotonic() - started < 3


def test_an_answer_longer_than_the_idle_timeout(origins: Origins, tmp_path: Path) -> None:
    """A reader taking longer than the idle timeout (1 s here) over a large clip, on a
    new connection and after an earlier answer: the idle timeout is for connections with
    no request in progress, so every byte comes, with the lane as without it."""
    path = origins.media.add(generated("big-head-moov", HEAD_MOOV, "mp4"), "lane/big.mp4")
    target = f"{path}?start=0&end=4"
    with another_node(origins, tmp_path, idle_timeout=1.0) as served:
        served.prime("lane.test", path)
        served.warm("lane.test", target)
        data = get_request("lane.test", target)
        small = get_request("lane.test", path, "Range: bytes=0-9")
        want = ask(served.plain_port, data)
        for port in (served.lane_port,):  # aiohttp's way: test_edge_slow_clients
            for earlier in (False, True):
                with connected(port, rcvbuf=8192) as client:
                    if earlier:
                        client.send(small)
                        assert client.read().status == 206
                        time.sleep(0.5)
                    client.send(data)
                    reply = client.read_head()
                    started = time.monotonic()
                    received = bytearray(client.buffer)
                    client.buffer = b""
                    while len(received) < len(want.body):
                        try:
                            chunk = client.sock.recv(65536)
                        except ConnectionError:
                            chunk = b""
                        assert chunk, (port == served.lane_port, earlier, len(received))
                        received += chunk
                        time.sleep(0.02 if time.monotonic() - started < 1.6 else 0)
                    reply.body = bytes(received)
                    same_answers(reply, want)


def test_a_lane_answer_in_flight_at_shutdown_is_finished(origins: Origins, tmp_path: Path) -> None:
    """The server stops (SIGTERM's runner cleanup) while the lane is still sending a
    large clip to a reader: the reader gets all of it within the shutdown timeout."""
    path = origins.media.add(generated("big-head-moov", HEAD_MOOV, "mp4"), "lane/big.mp4")
    target = f"{path}?start=0&end=4"
    with another_node(origins, tmp_path, shutdown_timeout=10.0) as served:
        served.prime("lane.test", path)
        served.warm("lane.test", target)
        want = ask(served.plain_port, get_request("lane.test", target))
        before = settle(served)
        known = sum(
            line["path"] == target and line["method"] == "GET" for line in served.access_lines()
        )
        with connected(served.lane_port, rcvbuf=8192) as client:
            client.send(get_request("lane.test", target))
            head = client.read_head()
            time.sleep(0.2)  # the socket is full: the rest is the lane's task's
            stopping = threading.Thread(target=served.stop)
            stopping.start()
            time.sleep(0.2)
            head.body = client._take(len(want.body))
            same_answers(head, want)
            assert client.closed_by_server(10)
            stopping.join(15)
            assert not stopping.is_alive()
        assert served.lane_answers == before + 1
        line = line_for(served, target, known=known)
        assert line["status"] == 200 and "aborted" not in line, line


# --- a whole node ----------------------------------------------------------------------


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


def test_a_lane_answer_longer_than_the_idle_timeout_is_not_cut(
    edge: Vodedge, origins: Origins
) -> None:
    """A whole cached file (the lane's) read by a slow client for longer than the idle
    timeout, on a new connection: every byte comes."""
    source = generated("big-head-moov", HEAD_MOOV, "mp4")
    path = origins.media.add(source, "lane-node/big.mp4")
    edge.prime("video.test", path)
    data = source.read_bytes()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", edge.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: video.test\r\n\r\n".encode())
        started = time.monotonic()
        received = bytearray()
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        received = bytearray(body)
        while len(received) < len(data):
            try:
                chunk = sock.recv(65536)
            except ConnectionError:
                chunk = b""
            assert chunk, f"cut after {len(received)} bytes, {time.monotonic() - started:.1f} s"
            received += chunk
            if time.monotonic() - started < IDLE * 1.5:
                time.sleep(0.01)
        assert bytes(received) == data
        assert time.monotonic() - started > IDLE
