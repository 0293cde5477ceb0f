"""`vodedge serve --config FILE --listen-tls ...` as a subprocess, and an HTTPS client
that sends SNI and verifies the certificate against the test CA."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from edge_harness import START_TIMEOUT, catches_sighup, port_open

from oracle import vodedge_command
from ports import free_ports


class TlsNode:
    """A vodedge node with a plain and a TLS client listener, configured by TOML."""

    def __init__(
        self, work: Path, config: str, *, workers: int = 2, flags: Sequence[str] = ()
    ) -> None:
        self.work = work
        self.flags = list(flags)
        # VODEDGE_TEST_LOOP=uvloop runs every server on uvloop.
        self.loop = os.environ.get("VODEDGE_TEST_LOOP", "asyncio")
        self.config_file = work / "vodedge.toml"
        self.stderr_log = work / "stderr.log"
        self.workers = workers
        self.port = self.tls_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        work.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config)

    def command(self) -> list[str]:
        """The command line that starts this node."""
        return [
            *vodedge_command(), "serve", "--config", str(self.config_file),
            "--listen", f"127.0.0.1:{self.port}", "--listen-tls", f"127.0.0.1:{self.tls_port}",
            "--workers", str(self.workers), "--cache-dir", str(self.work / "cache"),
            "--access-log", "off", "--loop", self.loop, *self.flags,
        ]  # fmt: skip

    def start(self) -> None:
        """Start on free ports; return once both listeners and every worker are up."""
        for _attempt in range(5):
            self.port, self.tls_port = free_ports(2)
            with open(self.stderr_log, "ab") as log:
                self.proc = subprocess.Popen(
                    self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log
                )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if port_open(self.port) and port_open(self.tls_port) and self._workers_ready():
                    return
                time.sleep(0.05)
            self.stop()
            if "in use" not in self.log():
                break
        raise RuntimeError(f"vodedge did not start:\n{self.log()}")

    def _workers_ready(self) -> bool:
        pids = self.worker_pids()
        return len(pids) == self.workers and all(catches_sighup(pid) for pid in pids)

    def worker_pids(self) -> list[int]:
        """The worker processes."""
        assert self.proc is not None
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(pid) for pid in text.split())

    def reload(self, config: str) -> None:
        """Write a new configuration and send SIGHUP (workers reload it)."""
        assert self.proc is not None
        self.config_file.write_text(config)
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        """SIGTERM and reap; SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    def log(self) -> str:
        """What the node wrote on stderr."""
        try:
            return self.stderr_log.read_text(errors="replace")
        except OSError:
            return ""


@contextlib.contextmanager
def running(node: TlsNode) -> Iterator[TlsNode]:
    """Start `node`, yield it, always stop it."""
    node.start()
    try:
        yield node
    finally:
        node.stop()


@dataclass
class Answer:
    """One HTTPS exchange: the response and the certificate the server presented."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes
    peer: x509.Certificate | None


def client_context(ca_file: Path) -> ssl.SSLContext:
    """A client that trusts only the test CA and checks host names."""
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def get(
    port: int,
    host: str,
    path: str = "/",
    *,
    tls: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> Answer:
    """GET `path` with Host `host` from 127.0.0.1:`port`; over TLS when `tls` is given,
    sending SNI `server_name` (default: `host`; "": none)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock: socket.socket = raw
    peer = None
    try:
        if tls is not None:
            sni = host if server_name is None else server_name or None
            sock = tls.wrap_socket(raw, server_hostname=sni)
            der = sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
            peer = x509.load_der_x509_certificate(der) if der else None
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
        return Answer(response.status, response.msg, body, peer)
    finally:
        sock.close()
