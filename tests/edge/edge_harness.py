"""Real processes for the edge integration tests: nginx, the fault origin, vodedge.

Each runs on a free loopback port, logs to a file the tests can show, and is
stopped with SIGTERM (then SIGKILL) by whoever started it. Every wait here is
bounded in time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPException, HTTPMessage, IncompleteRead
from pathlib import Path
from typing import Any

from oracle import vodedge_command
from origins.process import start_origin, stop_origin
from ports import free_port, free_ports

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
# How long a process may take to start: long, since every test starting one waits for it
# on a machine other jobs may keep busy (it is a wait, never a measure).
START_TIMEOUT = 60.0
# Every vodedge started and not yet stopped (conftest shows their stderr on failures).
RUNNING: list[Vodedge] = []


def port_open(port: int) -> bool:
    """True when something accepts connections on 127.0.0.1:`port`."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.02
) -> None:
    """Poll `predicate` until it holds; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def seen_within(
    check: Callable[[], bool], since: float, what: str, within: float = 1.0, timeout: float = 60.0
) -> None:
    """`check()` holds within `within` s of `since` (time.time() of the change's answer).

    Judged by when each check began, not by how long checking took: a check begun
    later than that must see the change (the node handles it later still), while a
    test runner slowed by a busy machine only checks less often. Waited for `timeout`.
    """
    deadline = time.monotonic() + timeout
    while True:
        began = time.time()
        if check():
            return
        late = began - since
        assert late <= within, f"{what}: not seen {late:.2f} s after the change"
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.02)


def request_started(line: dict[str, Any]) -> float:
    """When the node began the request of an access-log line, by its own clock (the line
    is written at the end, with the time the request took)."""
    return float(line["time"]) - float(line["ms"]) / 1000


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file (for failure messages)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} unreadable)"


def stop_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Signal one process we started and reap it; SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --- HTTP client helpers -------------------------------------------------------------


@dataclass
class Reply:
    """A response as a client saw it; `complete` is False when the body was cut short."""

    status: int
    headers: HTTPMessage
    body: bytes
    complete: bool = True
    elapsed: float = 0.0

    def header(self, name: str) -> str | None:
        """One response header, None when absent."""
        return self.headers.get(name)

    def __repr__(self) -> str:
        heads = {k: v for k, v in self.headers.items()}
        return f"<Reply {self.status} {len(self.body)} bytes complete={self.complete} {heads}>"


def http_request(
    port: int,
    host: str,
    path: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> Reply:
    """One request on a fresh connection; an aborted body gives `complete=False`."""
    started = time.monotonic()
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        complete = True
        try:
            body = response.read()
        except IncompleteRead as exc:
            body, complete = exc.partial, False
        except (ConnectionError, HTTPException):
            body, complete = b"", False
        return Reply(response.status, response.headers, body, complete, time.monotonic() - started)
    finally:
        connection.close()


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and return everything the server answers before closing (or timing out)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def stalled_reader(
    server: Vodedge, host: str, path: str, timeout: float = 30.0
) -> tuple[int, bool]:
    """GET `path` and take nothing until the node logs that it dropped the reader
    (`send_timeout`), then read what is left: (bytes received, whether it was closed).

    Waiting for the node's word, not for a fixed time: on a busy machine the buffers
    between the node and the reader may take longer than the send timeout to fill.
    `timeout` stays under the node's default send timeout (60 s): a node that ignored
    its configured one would not drop the reader in time.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        wait_until(
            lambda: any(
                line["path"] == path and line.get("aborted") == "send_timeout"
                for line in server.access_lines()
            ),
            timeout,
            "the access log line saying the reader was dropped",
        )
        sock.settimeout(10)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            return received, False
    return received, True


class RawClient:
    """One request on a raw socket, read at the test's pace (to stop midway, or time bytes)."""

    def __init__(
        self,
        port: int,
        host: str,
        path: str,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n".encode()
        )
        self.started = time.monotonic()
        self.buffer = b""
        self.status = 0
        self.headers: dict[str, str] = {}

    def read_head(self) -> dict[str, str]:
        """Read the status line and headers (lower-cased names); body bytes stay buffered."""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"closed before the headers: {self.buffer[:200]!r}")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        return self.headers

    def read_body(self, at_least: int) -> bytes:
        """Body bytes until `at_least` have come (or the connection closed)."""
        while len(self.buffer) < at_least:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        return self.buffer

    def read_to_end(self) -> tuple[bytes, bool]:
        """The rest of the body; False if the connection broke (reset or timeout) first."""
        try:
            while chunk := self.sock.recv(65536):
                self.buffer += chunk
        except (ConnectionError, TimeoutError):
            return self.buffer, False
        return self.buffer, True

    def close(self) -> None:
        """Hang up."""
        self.sock.close()


async def _aio_get(
    session: Any, port: int, host: str, path: str, headers: Mapping[str, str]
) -> Reply:
    import aiohttp

    started = time.monotonic()
    url = f"http://127.0.0.1:{port}{path}"
    async with session.get(url, headers={"Host": host, **headers}) as response:
        complete = True
        try:
            body = await response.read()
        except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError):
            body, complete = b"", False
        message = HTTPMessage()
        for name, value in response.headers.items():
            message[name] = value
        return Reply(response.status, message, body, complete, time.monotonic() - started)


def concurrent_gets(
    port: int,
    requests: list[tuple[str, str, Mapping[str, str]]],
    timeout: float = 20.0,
) -> list[Reply]:
    """(host, path, headers) requests all at once, each on its own connection."""
    import asyncio

    import aiohttp

    async def run() -> list[Reply]:
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with aiohttp.ClientSession(
            connector=connector, timeout=client_timeout, auto_decompress=False
        ) as session:
            return await asyncio.gather(
                *(_aio_get(session, port, h, p, hd) for h, p, hd in requests)
            )

    return asyncio.run(run())


def _json_request(url: str, body: Any | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if data is None else "POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null") if data is None else None


# --- nginx -----------------------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log info;
events {{ worker_connections 512; }}
http {{
    # One tab-separated line per request: what the edge asked for, and what it got.
    log_format counted '$request\\t$http_range\\t$status\\t$body_bytes_sent\\t$http_if_none_match';
    access_log {work}/access.log counted;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    types {{
        video/mp4 mp4 m4v; audio/mp4 m4a; video/quicktime mov; video/3gpp 3gp;
        video/x-flv flv; text/plain txt;
    }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


@dataclass(frozen=True)
class OriginHit:
    """One line of nginx's access log."""

    method: str
    target: str
    range: str
    status: int
    sent: int
    if_none_match: str

    @property
    def path(self) -> str:
        """The request target without its query."""
        return self.target.split("?", 1)[0]


def union(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Byte ranges `[start, end)` merged where they touch or overlap, in order."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


class Nginx:
    """Debian's nginx as a single foreground process serving `root`."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.work = work
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The origin's base URL."""
        return f"http://127.0.0.1:{self.port}"

    name = "nginx"

    def config(self) -> str:
        """nginx.conf for the chosen port."""
        return NGINX_CONF.format(work=self.work, port=self.port, root=self.root)

    def start(self) -> None:
        """Start on a free port (retrying if another process took it first)."""
        self.work.mkdir(parents=True, exist_ok=True)
        for _attempt in range(5):
            self.port = free_port()
            conf = self.work / "nginx.conf"
            conf.write_text(self.config())
            log = open(self.work / "stderr.log", "ab")  # noqa: SIM115 - owned by the child
            self.proc = subprocess.Popen(
                [NGINX, "-p", str(self.work), "-c", str(conf), "-e", str(self.work / "error.log")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
            log.close()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if port_open(self.port):
                    return
                time.sleep(0.02)
            stop_process(self.proc)
            if "in use" not in tail(self.work / "error.log"):
                break
        raise RuntimeError(f"{self.name} did not start:\n{tail(self.work / 'error.log')}")

    def stop(self) -> None:
        """Stop nginx."""
        if self.proc is not None:
            stop_process(self.proc, signal.SIGQUIT)

    def hits(self, path: str | None = None) -> list[OriginHit]:
        """Access-log lines, all or those for one path (query ignored)."""
        out = []
        log = self.work / "access.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        for line in text.splitlines():
            request, range_, status, sent, inm = line.split("\t")
            method, _, rest = request.partition(" ")
            target = rest.rsplit(" ", 1)[0]
            # nginx logs an absent header as "-".
            range_, inm = ("" if v == "-" else v for v in (range_, inm))
            hit = OriginHit(method, target, range_, int(status), int(sent), inm)
            if path is None or hit.path == path:
                out.append(hit)
        return out

    def settled_hits(self, path: str, settle: float = 0.15) -> list[OriginHit]:
        """The hits for `path` once the log has stopped growing (nginx logs after sending)."""
        before = self.hits(path)
        while True:
            time.sleep(settle)
            now = self.hits(path)
            if now == before:
                return now
            before = now


# --- the fault-injecting origin ------------------------------------------------------------


class FaultOrigin:
    """`python -m origins.faulty` in its own process, and its control API."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.work = work
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The origin's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and read the port it chose."""
        self.proc, self.port = start_origin(
            "origins.faulty", ["--root", str(self.root)], self.work / "faulty.log"
        )

    def stop(self) -> None:
        """Stop the origin."""
        if self.proc is not None:
            stop_origin(self.proc)

    def behave(self, path: str, **spec: Any) -> None:
        """Make `path` answer as `spec` says (see origins.faulty.Behaviour)."""
        _json_request(f"{self.url}/_control/behave", {"path": path, **spec})

    def wait_filled(self, path: str, count: int = 1, timeout: float = 15.0) -> None:
        """Wait until `count` whole-object requests of `path` have been answered in full."""

        def done() -> bool:
            records = self.requests(path)
            return sum(1 for r in records if r["completed"] and r["range"] is None) >= count

        wait_until(done, timeout, f"{count} complete origin response(s) for {path}")

    def requests(self, path: str) -> list[dict[str, Any]]:
        """Every request `path` got so far."""
        from urllib.parse import quote

        records: list[dict[str, Any]] = _json_request(
            f"{self.url}/_control/requests?path={quote(path)}"
        )
        return records


# --- vodedge ----------------------------------------------------------------------------------


class Vodedge:
    """`vodedge serve --config FILE` as a subprocess, and ways to poke at it."""

    def __init__(
        self,
        work: Path,
        config: str,
        *,
        workers: int = 1,
        cache_size: str = "1GiB",
        origin_read_timeout: float | None = None,
        send_timeout: float | None = None,
        idle_timeout: float | None = None,
        origin: str | None = None,
        loop: str | None = None,
        env: Mapping[str, str] | None = None,
        limits: Mapping[str, object] | None = None,
        nofile: int | None = None,
    ) -> None:
        self.work = work
        self.env = env  # added to this process's environment
        self.origin = origin  # zero-config mode (`--origin`) instead of the config file
        self.config_file = work / "vodedge.toml"
        self.cache_dir = work / "cache"
        self.access_log = work / "access.log"
        self.stderr_log = work / "stderr.log"
        self.workers = workers
        self.cache_size = cache_size
        self.origin_read_timeout = origin_read_timeout
        self.send_timeout = send_timeout
        self.idle_timeout = idle_timeout
        # Other [node] limits as `vodedge serve` flags: {"--max-connections": 100}.
        self.limits = dict(limits or {})
        self.nofile = nofile  # RLIMIT_NOFILE (soft and hard) of the serve process
        # The event loop (`--loop`): VODEDGE_TEST_LOOP=uvloop runs every server on uvloop.
        self.loop = loop or os.environ.get("VODEDGE_TEST_LOOP", "asyncio")
        self.port = 0
        self.admin_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        work.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config)

    def command(self) -> list[str]:
        """The command line that starts this server."""
        head = vodedge_command()
        limits = {
            "--origin-read-timeout": self.origin_read_timeout,
            "--send-timeout": self.send_timeout,
            "--idle-timeout": self.idle_timeout,
            **self.limits,
        }
        flags = [str(part) for flag, value in limits.items() if value is not None
                 for part in (flag, value)]  # fmt: skip
        source = ["--origin", self.origin] if self.origin else ["--config", str(self.config_file)]
        return [
            *head, "serve", *source,
            "--listen", f"127.0.0.1:{self.port}", "--admin", f"127.0.0.1:{self.admin_port}",
            "--workers", str(self.workers), "--cache-dir", str(self.cache_dir),
            "--cache-size", self.cache_size, "--access-log", str(self.access_log),
            "--loop", self.loop, *flags,
        ]  # fmt: skip

    def launch(self, *, same_ports: bool = False) -> None:
        """Start the serve process on free ports (or the last ones), without waiting."""
        if not same_ports:
            self.port, self.admin_port = free_ports(2)
        log = open(self.stderr_log, "ab")  # noqa: SIM115 - owned by the child
        env = None if self.env is None else {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            preexec_fn=None if self.nofile is None else self._limit_descriptors,
        )
        log.close()

    def _limit_descriptors(self) -> None:
        import resource

        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def start(self, *, same_ports: bool = False) -> None:
        """Start on free ports (or, once, the last ones) and wait until the listeners and
        every worker are up."""
        for _attempt in range(1 if same_ports else 5):
            self.launch(same_ports=same_ports)
            assert self.proc is not None
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if port_open(self.port) and port_open(self.admin_port) and self.workers_ready():
                    RUNNING.append(self)
                    return
                time.sleep(0.05)
            stop_process(self.proc)
            if "in use" not in tail(self.stderr_log):
                break
        raise RuntimeError(f"vodedge did not start:\n{tail(self.stderr_log)}")

    def lock_files(self) -> list[str]:
        """What fills left in store/locks."""
        locks = self.store / "locks"
        return sorted(p.name for p in locks.iterdir()) if locks.exists() else []

    def stop(self) -> None:
        """SIGTERM the serve process and wait for it."""
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc is not None:
            stop_process(self.proc)

    def restart(self) -> None:
        """Stop and start again with the same cache and config."""
        self.stop()
        self.start()

    @property
    def pid(self) -> int:
        """The serve (master) process."""
        assert self.proc is not None
        return self.proc.pid

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the serve process)."""
        assert self.proc is not None
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return sorted(int(pid) for pid in text.split())

    def workers_ready(self) -> bool:
        """Every worker is up: it holds the cache index open and catches SIGHUP.

        The master listens before any worker runs, so an open port proves nothing. A
        worker opens the index once its config is loaded and sets up its SIGHUP handler
        after it starts serving (workers the master restarts inherit its handler, hence
        the index too).
        """
        pids = self.worker_pids()
        index = str(self.store / "index.sqlite")
        return len(pids) == self.workers and all(
            catches_sighup(pid) and index in open_files(pid) for pid in pids
        )

    def log_text(self) -> str:
        """The tail of the server's stderr, for failure messages."""
        return tail(self.stderr_log)

    # --- requests ---

    def get(
        self,
        host: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        *,
        method: str = "GET",
        timeout: float = 30.0,
    ) -> Reply:
        """One request to the edge with `Host: host`."""
        return http_request(self.port, host, path, method=method, headers=headers, timeout=timeout)

    def prime(self, host: str, path: str) -> None:
        """HEAD `path` until it is a HIT: the first HEAD fills it if it is absent, later
        ones wait for a running fill to be stored (a request joining one is a MISS)."""
        wait_until(
            lambda: self.get(host, path, method="HEAD").header("X-Cache") == "HIT",
            START_TIMEOUT,
            f"{host}{path} to become a cache HIT",
            0.05,
        )

    def wait_expired(self, host: str, path: str, timeout: float = 10.0) -> None:
        """Wait until the stored object for `host` + `path` (query ignored) has expired by
        its own row in the index: a positive signal, where a sleep would guess the TTL."""
        import sqlite3

        key = host + path.split("?", 1)[0]
        uri = f"file:{self.store / 'index.sqlite'}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
            row = db.execute(
                "SELECT max(expires_at) FROM objects WHERE (key = ? OR substr(key, 1, ?) = ?)"
                " AND instr(key, char(31)) = 0",
                (key, len(key) + 1, key + "?"),
            ).fetchone()
        assert row is not None and row[0] is not None, f"{key} is not stored"
        expires = float(row[0])
        assert expires - time.time() < timeout, f"{key} expires in {expires - time.time():.0f} s"
        while time.time() <= expires:
            time.sleep(min(0.05, max(expires - time.time(), 0) + 0.001))

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Raw bytes to the client listener; what came back."""
        return raw_request(self.port, data, timeout)

    def metrics(self) -> str:
        """The admin listener's /metrics text."""
        reply = http_request(self.admin_port, "127.0.0.1", "/metrics")
        assert reply.status == 200, reply
        return reply.body.decode()

    def access_lines(self) -> list[dict[str, Any]]:
        """Every access-log line so far, parsed as JSON (a bad line fails the test)."""
        if not self.access_log.exists():
            return []
        return [json.loads(line) for line in self.access_log.read_text().splitlines()]

    def changed_within(
        self,
        host: str,
        since: float,
        probe: Callable[[], bool],
        is_new: Callable[[dict[str, Any]], bool],
        within: float = 1.0,
        timeout: float = 60.0,
    ) -> None:
        """A change made at `since` (time.time()) reached every worker within `within` s.

        Requests for `host` are sent (`probe()`, True once it sees the change) until
        every worker has answered one the new way (`is_new` of its access-log line).
        Then, by the node's own clock, no request a worker began more than `within` s
        after `since` was answered the old way. The requirement is the node's: how long
        a test runner on a busy machine takes to send its probes is not part of it.
        """
        pids = set(self.worker_pids())

        def lines() -> list[dict[str, Any]]:
            return [
                line
                for line in self.access_lines()
                if line.get("host") == host and request_started(line) >= since
            ]

        def everywhere() -> bool:
            return probe() and pids <= {line["pid"] for line in lines() if is_new(line)}

        wait_until(everywhere, timeout, f"every worker to serve {host} changed", 0.01)
        late = [
            (round(request_started(line) - since, 3), line)
            for line in lines()
            if request_started(line) > since + within and not is_new(line)
        ]
        assert not late, f"answered the old way more than {within} s after the change: {late}"

    def purge(self, *urls: str) -> subprocess.CompletedProcess[str]:
        """`vodedge purge URL...` against this server's config and cache."""
        return subprocess.run(
            [*vodedge_command(), "purge", "--config", str(self.config_file),
             "--cache-dir", str(self.cache_dir), *urls],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def reload(self, config: str) -> None:
        """Rewrite the config file and SIGHUP the serve process."""
        self.config_file.write_text(config)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    # --- the cache on disk ---

    @property
    def store(self) -> Path:
        """The cache's store directory."""
        return self.cache_dir / "store"

    def tmp_files(self) -> list[str]:
        """What fills left in store/tmp."""
        tmp = self.store / "tmp"
        return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []

    def object_files(self) -> list[Path]:
        """Every stored object file."""
        objects = self.store / "objects"
        return sorted(objects.glob("*/*")) if objects.exists() else []


@contextlib.contextmanager
def running(server: Nginx | FaultOrigin | Vodedge) -> Iterator[Any]:
    """Start `server`, yield it, always stop it."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def catches_sighup(pid: int) -> bool:
    """Whether `pid` has a SIGHUP handler installed (SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGHUP - 1)))
    return False


def open_files(pid: int) -> list[str]:
    """The paths `pid` has open."""
    out = []
    with contextlib.suppress(OSError):
        for entry in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                out.append(os.readlink(entry))
    return out


def process_fds(pid: int) -> dict[str, int]:
    """Open descriptors of `pid` by kind: file, socket, pipe, other."""
    kinds = {"file": 0, "socket": 0, "pipe": 0, "other": 0}
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target.startswith("socket:"):
            kinds["socket"] += 1
        elif target.startswith("pipe:"):
            kinds["pipe"] += 1
        elif target.startswith("/"):
            kinds["file"] += 1
        else:
            kinds["other"] += 1
    return kinds


def process_rss(pid: int) -> int:
    """Resident set size of `pid` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")
