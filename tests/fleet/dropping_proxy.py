"""A TCP proxy that can forget its connections silently, as a NAT or a balancer drops
idle flows: the client learns of it only when it next sends, from a reset."""

from __future__ import annotations

import socket
import struct
import threading

from ports import free_port


class DroppingProxy:
    """127.0.0.1:`port` forwarded to 127.0.0.1:`target`; `drop()` forgets every
    connection open now (new ones are forwarded)."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.lock = threading.Lock()
        self.open: list[tuple[socket.socket, socket.socket]] = []
        self.dropped: set[socket.socket] = set()
        self.accepts = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.accepts += 1
                self.open.append((client, upstream))
            threading.Thread(target=self._up, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._down, args=(client, upstream), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket) -> None:
        while data := _recv(client):
            if client in self.dropped:  # the flow is gone: the client's bytes get a reset
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                break
            upstream.sendall(data)
        client.close()
        upstream.close()

    def _down(self, client: socket.socket, upstream: socket.socket) -> None:
        while (data := _recv(upstream)) and client not in self.dropped:
            client.sendall(data)

    def drop(self) -> None:
        """Forget the open connections, telling neither side."""
        with self.lock:
            self.dropped.update(client for client, _ in self.open)
            self.open.clear()

    def close(self) -> None:
        """Stop listening (connections end with their sockets)."""
        self.listener.close()


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""
