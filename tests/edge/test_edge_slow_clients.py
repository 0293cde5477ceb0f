"""Connections that never finish a request: silent, half-sent, idle after a response.

One test, on its own (it waits up to BOUND): 40 s is what this suite can afford,
tighter than nginx's defaults (client_header_timeout 60 s, keepalive_timeout 75 s).
"""

from __future__ import annotations

import select
import socket
import time

import pytest
from edge_harness import Vodedge

pytestmark = pytest.mark.xdist_group("edge_slow_clients")

BOUND = 40.0


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
            ready, _, _ = select.select(list(open_.values()), [], [], 1.0)
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
