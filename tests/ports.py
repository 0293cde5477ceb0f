"""Free loopback ports for the servers the tests start."""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nobody listens on right now (all held while chosen,
    so two of them cannot agree; callers retry if one is taken meanwhile)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    return free_ports(1)[0]
