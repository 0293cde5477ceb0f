"""The lane (edge/lane.py): answers the stages give, made where a request's bytes arrive.

The lane is a second way to make answers the four stages already make, so most tests
here are equivalence tests: one Edge (one cache, one configuration) in this process,
served twice, by `make_server(edge, lane=True)` and by `make_server(edge, lane=False)`
(aiohttp alone), the same raw request bytes sent to both over real sockets, the answers
compared: status, headers as a multiset (names lower-cased, `Date` left out), body
bytes. `edge.lane_answers` says whether the lane answered. The origin is the session's
nginx; the media is real (the test media cache).

The others attack the lane's own code: how requests arrive (split, pipelined, with
bodies, after garbage), clients that read slowly, vanish, or never read, and TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import os
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from edge_config import SEEK, SPLIT, Origins, domain, function
from edge_harness import wait_until
from edge_media import BIG_TAIL_MOOV, SAMPLES, generated
from prometheus_client import REGISTRY

from media_matrix import media
from oracle import run_cli
from url_signing import ref_sign
from vodedge.config.limits import NodeLimits
from vodedge.config.loader import load_toml
from vodedge.edge import accesslog
from vodedge.edge.app import Edge, make_server
from vodedge.edge.cache import DiskCache
from vodedge.edge.resources import CappedSite, connection_cap
from vodedge.edge.source import OriginPool
from vodedge.edge.tls import SniContexts
from vodedge.media.mp4.index import Mp4Index, read_index
from vodedge.media.plan_columns import piece_count
from vodedge.media.reading import run_bytes
from vodedge.media.seeking import parse_seconds

pytestmark = pytest.mark.xdist_group("lane")

# Short, so that a client that never reads is dropped within the test's time; every
# other client here reads at once.
SEND_TIMEOUT = 2.0
AUTH_KEY = "lanetestsecret01"
HEAD_MOOV = (*BIG_TAIL_MOOV[:-2], "-movflags", "+faststart", "-f", "mp4")
# A clip of a complete cached object takes the lane when its plan has fewer pieces.
LANE_PIECES = 64
# VODEDGE_TEST_LOOP=uvloop runs every server on uvloop (as edge_harness's Vodedge).
LOOP = os.environ.get("VODEDGE_TEST_LOOP", "asyncio")


# --- one Edge, served with and without the lane, in this process ----------------------


class Node:
    """One Edge on an event loop of its own (a thread of this process), behind two
    listeners: `lane_port` (the lane in front of aiohttp) and `plain_port` (aiohttp
    alone); `tls_port` is the lane's server over TLS, when a context is given."""

    def __init__(self, work: Path, config: str, limits: NodeLimits, *, tls: bool = False) -> None:
        self.work = work
        self.config_text = config
        self.limits = limits
        self.tls = tls
        self.access_log = work / "access.log"
        self.cache_dir = work / "cache"
        self.config_file = work / "vodedge.toml"
        self.lane_port = self.plain_port = self.tls_port = 0
        self.loop = _new_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lane-node", daemon=True)
        self.runners: list[web.ServerRunner] = []
        self.edge: Edge | None = None
        self._log_fd = -1
        self._previous_log: int | None = None
        self._stopped = False
        self._log_read = self._log_count = 0

    def start(self) -> None:
        """Start the loop's thread and the listeners."""
        self.work.mkdir(parents=True, exist_ok=True)
        self.thread.start()
        self.call(self._setup())

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
        """Run `coro` on the node's loop; its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _setup(self) -> None:
        config_file = self.config_file
        config_file.write_text(self.config_text)
        self._log_fd = os.open(self.access_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        # The log is the process's: another node's is given back when this one stops.
        self._previous_log = accesslog._FD
        accesslog.configure(self._log_fd)
        limits = self.limits
        cache = DiskCache(self.cache_dir / "store", 1 << 30, limits.min_free_space)
        self.edge = Edge(load_toml(config_file), cache, origins=OriginPool(limits), limits=limits)
        cap = connection_cap(limits.max_connections)
        listeners: list[tuple[bool, ssl.SSLContext | None]] = [(True, None), (False, None)]
        if self.tls:
            edge = self.edge
            contexts = SniContexts(lambda: edge.config, lambda line: None)  # as serve's
            contexts.refresh()
            listeners.append((True, contexts.context))
        ports = []
        servers: dict[bool, web.ServerRunner] = {}
        for lane, context in listeners:
            runner = servers.get(lane)
            if runner is None:
                server = make_server(self.edge, lane=lane, keepalive_timeout=limits.idle_timeout)
                runner = servers[lane] = web.ServerRunner(
                    server, handle_signals=False, shutdown_timeout=limits.shutdown_timeout
                )
                await runner.setup()
                self.runners.append(runner)
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            ports.append(sock.getsockname()[1])
            site = CappedSite(runner, sock, cap, handshake_timeout=5.0, ssl_context=context)
            await site.start()
        self.lane_port, self.plain_port = ports[0], ports[1]
        if self.tls:
            self.tls_port = ports[2]

    async def _teardown(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        if self.edge is not None:
            await self.edge.close()

    def stop(self) -> None:
        """Close the listeners and the Edge, stop the loop and its thread (once)."""
        if self._stopped:
            return
        self._stopped = True
        try:
            if self.thread.is_alive():
                self.call(self._teardown())
        finally:
            accesslog.configure(self._previous_log)
            if self._log_fd >= 0:
                os.close(self._log_fd)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)
            self.loop.close()

    def purge(self, *urls: str) -> None:
        """`vodedge purge URL...` against this node's configuration and cache, as an
        operator runs it (another process)."""
        proc = run_cli("purge", "--config", self.config_file, "--cache-dir", self.cache_dir, *urls)
        assert proc.returncode == 0, proc.stderr

    @property
    def lane_answers(self) -> int:
        """Requests the lane answered so far."""
        assert self.edge is not None
        return self.edge.lane_answers

    def logged(self) -> int:
        """How many access-log lines were written so far (read as the log grows)."""
        with open(self.access_log, "rb") as log:
            log.seek(self._log_read)
            more = log.read()
        self._log_read += len(more)
        self._log_count += more.count(b"\n")
        return self._log_count

    def wait_logged(self, count: int, timeout: float = 1.0) -> bool:
        """Whether `count` lines are in the access log within `timeout` s: each request's
        line is written once it is over (after the lane counted it); a request aiohttp
        cannot parse has none."""
        deadline = time.monotonic() + timeout
        while self.logged() < count:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        return True

    def access_lines(self) -> list[dict[str, Any]]:
        """Every access-log line so far."""
        if not self.access_log.exists():
            return []
        text = self.access_log.read_text()
        whole = text[: text.rfind("\n") + 1]  # a line still being written is not one yet
        return [json.loads(line) for line in whole.splitlines()]

    def prime(self, host: str, path: str, *extra: str) -> None:
        """HEAD `path` (aiohttp's way: a HEAD fills a cold object whole) until a HIT."""
        request = head_request(host, path, *extra)

        def hit() -> bool:
            return ask(self.plain_port, request, head=True).header("x-cache") == "HIT"

        wait_until(hit, 60, f"{host}{path} to become a cache HIT", 0.05)

    def warm(self, host: str, target: str, *, head: bool = False) -> None:
        """Ask `target` of the lane's listener until the lane answers it (the first ask of
        a clip builds the object's index, the stages' way)."""
        request = (head_request if head else get_request)(host, target)

        def answered() -> bool:
            before, lines = settle(self), self.logged()
            reply = ask(self.lane_port, request, head=head)
            assert reply.status == 200, reply
            assert self.wait_logged(lines + 1), "no access-log line"
            return self.lane_answers == before + 1

        wait_until(answered, 30, f"the lane to answer {host}{target}", 0.05)


def _new_loop() -> asyncio.AbstractEventLoop:
    if LOOP == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def wait_for_count(node: Node, count: int, timeout: float) -> bool:
    """Whether `node.lane_answers` reaches `count` within `timeout` s (a continued answer
    is counted when its last byte has gone, which may be after the client read it)."""
    deadline = time.monotonic() + timeout
    while node.lane_answers < count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return node.lane_answers == count


def settle(node: Node, quiet: float = 0.03) -> int:
    """`node.lane_answers` once it has not changed for `quiet` s (the lane counts an
    answer just after writing it: a client may read it first)."""
    count, since = node.lane_answers, time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.005)
        if node.lane_answers != count:
            count, since = node.lane_answers, time.monotonic()
    return count


# --- raw HTTP over sockets -------------------------------------------------------------


@dataclass
class Answer:
    """One response as it came over the wire."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]  # names lower-cased, in order
    body: bytes
    interim: list[int] = field(default_factory=list)  # 1xx statuses before it

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def compared(self) -> tuple[str, int, Counter[tuple[str, str]], bytes]:
        """What two equivalent answers share: version, status, headers but Date, body."""
        headers = Counter(h for h in self.headers if h[0] != "date")
        return (self.version, self.status, headers, self.body)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {len(self.body)} bytes {self.headers}>"


class Client:
    """A raw client connection: sends bytes, reads responses one by one."""

    def __init__(
        self,
        port: int,
        *,
        timeout: float = 10.0,
        rcvbuf: int | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname="lane.test")
        self.sock = sock
        self.buffer = b""

    def send(self, data: bytes) -> None:
        """Send `data` in one write."""
        self.sock.sendall(data)

    def _more(self, size: int = 65536) -> bool:
        chunk = self.sock.recv(size)
        self.buffer += chunk
        return bool(chunk)

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            if not self._more():
                raise ConnectionError(f"closed {count - len(self.buffer)} bytes short")
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if not self._more():
                raise ConnectionError(f"closed within a line: {self.buffer[:200]!r}")
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_head(self) -> Answer:
        """The next response's status line and headers (its body still to read)."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._more():
                raise ConnectionError(f"closed before a response's head: {self.buffer[:200]!r}")
        raw, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = raw.decode("latin-1").split("\r\n")
        version, status, reason = [*lines[0].split(" ", 2), ""][:3]
        assert version in ("HTTP/1.1", "HTTP/1.0"), lines[0]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        return Answer(version, int(status), reason, headers, b"")

    def read(self, *, head: bool = False) -> Answer:
        """The next whole response (`head`: the request was a HEAD)."""
        answer = self.read_head()
        interim = []
        while answer.status < 200:  # 100 Continue: the answer follows
            interim.append(answer.status)
            answer = self.read_head()
        answer.interim = interim
        if head or answer.status in (204, 304):
            return answer
        if (answer.header("transfer-encoding") or "").lower() == "chunked":
            parts = []
            while size := int(self._line().split(b";")[0], 16):
                parts.append(self._take(size))
                self._take(2)
            while self._line():  # trailers, then the empty line
                pass
            answer.body = b"".join(parts)
        elif (length := answer.header("content-length")) is not None:
            answer.body = self._take(int(length))
        else:
            answer.body = self.rest()
        return answer

    def rest(self) -> bytes:
        """Everything until the server closes."""
        while self._more():
            pass
        data, self.buffer = self.buffer, b""
        return data

    def closed_by_server(self, timeout: float = 5.0) -> bool:
        """Whether the server closes the connection (nothing more comes) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            extra = self.rest()
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        assert not extra, f"bytes after the last response: {extra[:200]!r}"
        return True

    def drained(self, timeout: float) -> tuple[int, bool]:
        """Read until the server closes: (bytes read, whether it closed within `timeout`)."""
        self.sock.settimeout(timeout)
        received = len(self.buffer)
        self.buffer = b""
        try:
            while chunk := self.sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
        except TimeoutError:
            return received, False
        return received, True

    def close(self) -> None:
        """Hang up."""
        self.sock.close()


@contextlib.contextmanager
def connected(port: int, **options: Any) -> Iterator[Client]:
    """A Client, closed after use."""
    client = Client(port, **options)
    try:
        yield client
    finally:
        client.close()


def get_request(host: str, target: str, *extra: str, method: str = "GET") -> bytes:
    """An HTTP/1.1 request's bytes, with `extra` header lines."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", *extra, "", ""]
    return "\r\n".join(lines).encode()


def head_request(host: str, target: str, *extra: str) -> bytes:
    """A HEAD request's bytes."""
    return get_request(host, target, *extra, method="HEAD")


def ask(port: int, data: bytes, *, head: bool = False) -> Answer:
    """`data` on a new connection; the one answer."""
    with connected(port) as client:
        client.send(data)
        return client.read(head=head)


def differences(a: Answer, b: Answer) -> list[str]:
    """How two answers differ (empty: equivalent)."""
    out = []
    if (a.version, a.interim, a.status) != (b.version, b.interim, b.status):
        out.append(
            f"status {a.version} {a.interim} {a.status} != {b.version} {b.interim} {b.status}"
        )
    theirs, ours = a.compared()[2], b.compared()[2]
    for item in sorted((theirs - ours) + (ours - theirs)):
        side = "lane" if theirs[item] > ours[item] else "aiohttp"
        out.append(f"header {item} only in the {side} answer")
    if a.body != b.body:
        out.append(f"bodies differ: {len(a.body)} and {len(b.body)} bytes")
    for answer in (a, b):
        dates = [value for name, value in answer.headers if name == "date"]
        if len(dates) != 1 or not dates[0].endswith(" GMT"):
            out.append(f"Date headers: {dates}")
    return out


# Headers whose value follows the clock by the second (the object's Age, a max-age
# counted down): two answers a second apart may differ there, and are asked again.
TIMED = ("age", "cache-control")


def equivalent(node: Node, data: bytes, *, lane: bool | None, head: bool = False) -> Answer:
    """`data` asked of the lane's listener and of aiohttp's, each on a new connection:
    the same answer (asked again if only the clock's headers differ), and the lane
    answered it when `lane` is True, did not when False (None: either)."""
    return compared(node, data, lane=lane, head=head)[0]


def compared(
    node: Node, data: bytes, *, lane: bool | None, head: bool = False
) -> tuple[Answer, bool]:
    """`equivalent`'s answer, and whether the lane answered it (known for sure once the
    request's access-log line is written: the lane counts an answer before that)."""
    problems: list[str] = []
    for _attempt in range(3):
        before = settle(node)
        lines = node.logged()
        ours = ask(node.lane_port, data, head=head)
        if not node.wait_logged(lines + 1, 0.15):
            settle(node)  # not logged: refused by aiohttp's parser
        after = node.lane_answers
        took = after - before
        assert took in (0, 1), took
        if lane is not None:
            assert took == lane, f"the lane answered {data!r}: {took}, not {lane}"
        lines = node.logged()
        theirs = ask(node.plain_port, data, head=head)
        node.wait_logged(lines + 1, 0.1)
        assert node.lane_answers == after, "the plain listener's request took the lane"
        problems = differences(ours, theirs)
        if not problems:
            return ours, bool(took)
        if not all(any(f"('{name}'," in p for name in TIMED) for p in problems):
            break
    raise AssertionError(f"{data!r}: {problems}")


# --- what the tests serve --------------------------------------------------------------


def _cors(value: str, **extra: str) -> str:
    return function("set_resp_header", key="Access-Control-Allow-Origin", value=value, **extra)


def config(origins: Origins, certificate: tuple[Path, Path]) -> str:
    """The domains: clips and audio extraction (lane.test, with HTTPS too); headers and
    CORS; policies the lane must leave to aiohttp."""
    nginx = origins.nginx.url
    cert, key = certificate
    lane = domain("lane.test", nginx, SPLIT, SEEK)
    head, _, functions = lane.partition("[[domain.function]]")
    tls = f'tls = {{ cert = "{cert}", key = "{key}", enabled = true }}\n'
    lane = f"{head}{tls}[[domain.function]]{functions}"
    auth = function("aliauth", auth_type="type_a", auth_key1=AUTH_KEY, ali_auth_delta="3600")
    ttl = function(
        "path_based_ttl_set", ttl="3600", path="/lane", swift_follow_cachetime="on"
    )  # fmt: skip
    return "".join(
        [
            lane,
            domain(
                "headers.test", nginx, SPLIT, SEEK,
                _cors("*"),
                function("set_resp_header", key="X-Served-By", value="edge-7"),
                function("set_resp_header", key="Via", value="x", header_operation_type="delete"),
            ),
            domain(
                "checked.test", nginx, SPLIT, SEEK,
                _cors("https://player.example,https://other.example", access_origin_control="on"),
            ),
            domain("follow.test", nginx, SPLIT, SEEK, ttl),
            domain(
                "referer.test", nginx, SPLIT, SEEK,
                function("referer_white_list_set", refer_domain_allow_list="good.example"),
            ),
            domain("slow.test", nginx, SPLIT, SEEK, function("limit_rate", ali_limit_rate="64m")),
            domain("auth.test", nginx, SPLIT, SEEK, auth),
            domain("fault.test", origins.fault.url, SPLIT, SEEK),
            domain("xff.test", nginx, function("ip_black_list_set", ip_list="203.0.113.7")),
            domain("blocked.test", nginx, function("ip_black_list_set", ip_list="127.0.0.1")),
            domain("allowed.test", nginx, function("ip_allow_list_set", ip_list="127.0.0.0/8")),
            domain(
                "preview.test", nginx, SPLIT, SEEK,
                function("ali_video_preview", enable="on", ali_video_preview_argument="trial",
                         vodedge_preview_max="3"),
            ),
            domain(
                "rate-arg.test", nginx, SPLIT, SEEK,
                function("limit_rate", ali_limit_rate="0k", traffic_limit_arg="rate",
                         traffic_limit_unit="k"),
            ),
            domain("short.test", nginx, SPLIT, SEEK,
                   function("path_based_ttl_set", ttl="1", path="/lane")),
            domain("flvtime.test", nginx, SPLIT,
                   function("video_seek", enable="on", flv_seek_by_time="on")),
        ]
    )  # fmt: skip


@dataclass
class Media:
    """What the tests ask for, published on the origins and cached, indexes warm."""

    small: str
    small_bytes: bytes
    long: str  # the 30-minute MP4
    long_seconds: float
    langs: str  # two audio tracks, 2 s
    big: str  # a few MB in 4 s: a clip larger than the socket buffers
    talk: str  # a plain object larger than what is kept in memory
    files: dict[str, Path]  # URL path: the file behind it
    track_ids: tuple[int, int] = (2, 3)
    _indexes: dict[str, Mp4Index] = field(default_factory=dict)

    def lane_clip(self, path: str, query: str) -> bool:
        """Whether the lane answers this clip of a warm object: its plan (the media
        layer's) has fewer than LANE_PIECES pieces."""
        index = self._indexes.get(path)
        if index is None:
            data = self.files[path].read_bytes()
            index = self._indexes[path] = run_bytes(read_index(len(data)), data)
        args = dict(pair.split("=", 1) for pair in query.split("&"))
        track = args.get("vodedge_audio_track")
        plan = index.clip(
            parse_seconds(args["start"], "start") if "start" in args else None,
            parse_seconds(args["end"], "end") if "end" in args else None,
            audio_only=args.get("ali_audio_only") == "1",
            track_id=None if track is None else int(track),
        )
        return piece_count(plan) < LANE_PIECES


@pytest.fixture(scope="module")
def node(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One Edge in this process, with and without the lane, every domain above."""
    limits = NodeLimits(send_timeout=SEND_TIMEOUT, idle_timeout=30.0, shutdown_timeout=1.0)
    work = tmp_path_factory.mktemp("lane")
    served = Node(work, config(origins, certificate(work / "certs")), limits, tls=True)
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture(scope="module")
def published(node: Node, origins: Origins) -> Media:
    """The media, cached on every domain that serves it, each clip kind's index warm."""
    rng = random.Random(1515)
    small_bytes = bytes(rng.getrandbits(8) for _ in range(3000))
    small = origins.media.write("lane/small.bin", small_bytes)
    files = {
        "/lane/long.mp4": media("mp4_long_30min"),
        "/lane/langs.mp4": media("mp4_two_languages"),
        "/lane/big.mp4": generated("big-head-moov", HEAD_MOOV, "mp4"),
        "/lane/talk.mp4": SAMPLES / "talk.mp4",
    }
    long, langs, big, talk = (origins.media.add(file, path[1:]) for path, file in files.items())
    hosts = (
        "lane.test", "headers.test", "checked.test", "follow.test", "referer.test", "slow.test"
    )  # fmt: skip
    for host in hosts:
        # The large ones are asked of lane.test only.
        for path in (small, long, langs, big, talk) if host == "lane.test" else (small, langs):
            node.prime(host, path, "Referer: https://good.example/")
    node.warm("lane.test", f"{long}?start=100&end=110")
    for host in ("lane.test", "headers.test", "checked.test"):
        node.warm(host, f"{langs}?start=0.5&end=1.5")
    node.warm("lane.test", f"{big}?start=0&end=4")
    return Media(small, small_bytes, long, 1800.0, langs, big, talk, files)


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for lane.test and its key, written as PEM files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lane.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("lane.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_file, key_file = directory / "lane.pem", directory / "lane.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


# --- 1. equivalence -------------------------------------------------------------------


def test_small_hits_are_the_stages_answers(node: Node, published: Media) -> None:
    """A small fresh HIT, GET and HEAD, with and without extra headers the lane ignores."""
    small = published.small
    answer = equivalent(node, get_request("lane.test", small), lane=True)
    assert answer.status == 200 and answer.body == published.small_bytes
    assert answer.header("x-cache") == "HIT"
    head = equivalent(node, head_request("lane.test", small), lane=True, head=True)
    assert head.status == 200 and head.header("content-length") == "3000"
    for extra in (
        ("User-Agent: lane-test/1.0", "Accept: */*", "Connection: keep-alive"),
        ("Accept-Encoding: gzip, br",),
        ("X-Forwarded-For: 203.0.113.9",),
    ):
        equivalent(node, get_request("lane.test", small, *extra), lane=True)
    # The same object spelled otherwise: one cache key, the lane all the same.
    equivalent(node, get_request("LANE.test.", "/lane/%73mall.bin"), lane=True)


def test_whole_stored_files_and_misses(node: Node, published: Media) -> None:
    """A plain object too large to be kept in memory asked whole (the lane sends the
    file), in part (aiohttp's), and an unknown path or Host (aiohttp's): the same
    answers with the lane in front."""
    whole = equivalent(node, get_request("lane.test", published.talk), lane=True)
    assert whole.status == 200 and whole.body == (SAMPLES / "talk.mp4").read_bytes()
    equivalent(node, head_request("lane.test", published.talk), lane=True, head=True)
    big = equivalent(node, get_request("lane.test", published.big), lane=True)
    assert big.body == published.files[published.big].read_bytes()
    ranged = get_request("lane.test", published.talk, "Range: bytes=1000-")
    assert equivalent(node, ranged, lane=True).status == 206
    equivalent(node, get_request("lane.test", "/lane/nothing-here.bin"), lane=False)
    equivalent(node, get_request("unknown.test", published.small), lane=False)


def test_an_object_cached_by_ranges(node: Node, origins: Origins) -> None:
    """An object stored sparsely (clients asked ranges of it) is aiohttp's until every
    byte is there; once it is, the lane sends it whole, and its bytes are right."""
    data = random.Random(3).randbytes(10 << 20)
    path = origins.media.write("lane/ranged.bin", data)
    for offset in (0, 9 << 20):
        reply = ask(node.plain_port, get_request("lane.test", path, f"Range: bytes={offset}-"
                                                 f"{offset + 99}"))  # fmt: skip
        assert reply.status == 206 and reply.body == data[offset : offset + 100]
    before = settle(node)
    sparse = ask(node.lane_port, get_request("lane.test", path))  # fills what is missing
    assert sparse.status == 200 and sparse.body == data and settle(node) == before
    whole = equivalent(node, get_request("lane.test", path), lane=True)
    assert whole.body == data and whole.header("x-cache") == "HIT"
    other = origins.media.write("lane/ranged-2.bin", data)
    for offset in (0, 8 << 20):  # every byte, by ranges alone
        reply = ask(node.plain_port, get_request("lane.test", other, f"Range: bytes={offset}-"))
        assert reply.status == 206 and reply.body == data[offset:]
    whole = equivalent(node, get_request("lane.test", other), lane=True)
    assert whole.body == data and whole.header("x-cache") == "HIT"


def test_random_clips_are_the_stages_answers(node: Node, published: Media) -> None:
    """Clips at random starts, 10-s video ones and 1-to-10-s audio-only ones, on fresh
    connections and on one connection kept alive for many: the lane's bytes are
    aiohttp's, and the lane answered exactly those whose plan is short."""
    rng = random.Random(20261201)
    long = published.long
    queries = []
    for _ in range(16):
        start = rng.uniform(0, published.long_seconds - 12)
        queries.append(f"start={start:.3f}&end={start + 10:.3f}")
    for _ in range(12):
        start, length = rng.uniform(0, published.long_seconds - 12), rng.choice((1, 2, 10))
        queries.append(f"ali_audio_only=1&start={start:.2f}&end={start + length:.2f}")
    lanes = [published.lane_clip(long, query) for query in queries]
    assert sum(lanes) >= 20 and not all(lanes), lanes  # both kinds are asked
    for query, lane in list(zip(queries, lanes, strict=True))[::2]:
        answer = equivalent(node, get_request("lane.test", f"{long}?{query}"), lane=lane)
        assert answer.status == 200 and len(answer.body) > 1000, answer
    # The others on one kept-alive connection each way, every answer compared.
    before = settle(node)
    with connected(node.lane_port) as lane_client, connected(node.plain_port) as plain:
        for query in queries[1::2]:
            data = get_request("lane.test", f"{long}?{query}")
            lane_client.send(data)
            plain.send(data)
            ours, theirs = lane_client.read(), plain.read()
            same_answers(ours, theirs)
    assert wait_for_count(node, before + sum(lanes[1::2]), 5), node.lane_answers - before


def test_ranges_of_random_clips_are_the_stages_answers(node: Node, published: Media) -> None:
    """Clips at random starts asked with random ranges (from an offset, a suffix, a
    span, some past the end), GET and HEAD: the stages' answers, the lane's for each
    200 or 206."""
    rng = random.Random(1212)
    long = published.long
    for n in range(24):
        start = rng.uniform(0, published.long_seconds - 12)
        audio = "ali_audio_only=1&" if n % 3 == 0 else ""
        length = 1 if audio else 10
        target = f"{long}?{audio}start={start:.3f}&end={start + length:.3f}"
        first = rng.randrange(0, 80000)
        spelling = rng.choice(
            (
                f"bytes={first}-",
                f"bytes=-{first + 1}",
                f"bytes={first}-{first + rng.randrange(9999)}",
            )
        )
        method = "HEAD" if n % 4 == 3 else "GET"
        data = get_request("lane.test", target, f"Range: {spelling}", method=method)
        answer, took = compared(node, data, lane=None, head=method == "HEAD")
        assert took == (answer.status in (200, 206)), (data, answer.status)
        assert answer.status in (206, 416), answer


def test_random_queries_are_the_stages_answers(node: Node, published: Media) -> None:
    """Queries built at random from the clip parameters (good, odd and bad values, in any
    order, some repeated) on MP4s, GET and HEAD: the stages' answers; the lane's only
    for a 200 or 206."""
    rng = random.Random(4242)
    values = {
        "start": (
            "0",
            "1",
            "0.5",
            "1.25",
            "59.9",
            "1799",
            "1800",
            "5000",
            "-1",
            "1e2",
            "x",
            "",
            "0x10",
            "1.",
            ".5",
            "٣",
            "00001.5000",
        ),
        "end": ("1", "2", "1.5", "61", "1800", "9999", "0", "-2", "", "abc", "3.75"),
        "ali_audio_only": ("1", "0", "true", "", "11"),
        "vodedge_audio_track": ("1", "2", "3", "9", "x", "", "02"),
    }  # fmt: skip  (any other parameter is another object: a MISS first)
    took_lane = 0
    for n in range(28):
        names = rng.sample(sorted(values), rng.randrange(1, 4))
        if rng.random() < 0.2:
            names.append(rng.choice(names))  # a name twice
        query = "&".join(f"{name}={rng.choice(values[name])}" for name in names)
        path = rng.choice((published.long, published.langs))
        method = "HEAD" if n % 5 == 4 else "GET"
        target = quote(f"{path}?{query}", safe="/?&=%")
        data = get_request("lane.test", target, method=method)
        answer, took = compared(node, data, lane=None, head=method == "HEAD")
        assert not took or answer.status in (200, 206), (data, answer.status)
        took_lane += took
    assert took_lane >= 5, took_lane  # the lane took part


def test_clip_kinds_are_the_stages_answers(node: Node, published: Media) -> None:
    """HEAD of a clip, one audio track (with and without the video), a clip of a file
    larger than the socket buffers; an open-ended audio start is aiohttp's."""
    long, langs = published.long, published.langs
    head = equivalent(node, head_request("lane.test", f"{long}?start=60&end=70"), lane=True,
                      head=True)  # fmt: skip
    assert head.status == 200 and int(head.header("content-length") or 0) > 0
    equivalent(
        node, head_request("lane.test", f"{long}?ali_audio_only=1&start=60&end=61.5"),
        lane=True, head=True,
    )  # fmt: skip
    for track in published.track_ids:
        for query in (
            f"vodedge_audio_track={track}&start=0.5&end=1.5",
            f"ali_audio_only=1&vodedge_audio_track={track}&start=0.5&end=1.5",
            "ali_audio_only=1&start=0.25&end=1.25",
        ):
            lane = published.lane_clip(langs, query)
            answer = equivalent(node, get_request("lane.test", f"{langs}?{query}"), lane=lane)
            assert answer.status == 200, answer
    big = equivalent(node, get_request("lane.test", f"{published.big}?start=0&end=4"), lane=True)
    assert big.status == 200 and len(big.body) > 1 << 20
    open_ended = f"{long}?ali_audio_only=1&start=30"
    equivalent(node, get_request("lane.test", open_ended), lane=False)


RANGES = (
    "bytes=0-", "bytes=0-0", "bytes=10-99", "bytes=-1", "bytes=-5", "bytes=-0", "bytes=5-4",
    "bytes=0-1,5-6", "bytes=1-1,1-1", "BYTES=2-3", "bytes = 2-3", "bytes=2-3 ", "bytes=2 -3",
    "bytes=0-99999999999", "bytes=00000000000000000007-8", "bytes=-99999999999",
    "items=0-1", "bytes=", "bytes=-", "bytes=a-b", "bytes=1-2-3", "bytes=999999999-",
    "bytes=-3,", "bytes=0--1", "bytes=+1-2", "bytes=1-+2", "bytes=\uff10-1",
)  # fmt: skip


def test_ranges_are_the_stages_answers(node: Node, published: Media) -> None:
    """Every Range spelling (valid, malformed, several, past the end) and If-Range
    (matching, stale, weak, a date) on a small object, a whole file and clips, GET and
    HEAD: the stages' answers; the lane's exactly when they are a 200 or a 206."""
    long = published.long
    targets = [
        published.small,
        published.talk,
        f"{long}?start=222&end=232",
        f"{long}?ali_audio_only=1&start=222&end=223",
    ]
    cases: list[tuple[str, str, tuple[str, ...]]] = []
    for n, target in enumerate(targets):
        # Every spelling on two of the targets, some on the others; HEAD now and then.
        spellings = RANGES if n in (0, 2) else RANGES[::5]
        for k, spelling in enumerate(spellings):
            cases.append(("HEAD" if k % 4 == 3 else "GET", target, (f"Range: {spelling}",)))
        plain = ask(node.plain_port, get_request("lane.test", target))
        etag, modified = plain.header("etag") or "", plain.header("last-modified") or ""
        for if_range in (etag, f"W/{etag}", '"other"', modified, "Tue, 01 Dec 2099 00:00:00 GMT"):
            cases.append(("GET", target, ("Range: bytes=1-2", f"If-Range: {if_range}")))
        cases.append(("GET", target, (f"If-Range: {etag}",)))
        cases.append(("GET", target, ("Range: bytes=1-2", "Range: bytes=3-4")))
    for method, target, extra in cases:
        data = get_request("lane.test", target, *extra, method=method)
        answer, took = compared(node, data, lane=None, head=method == "HEAD")
        assert took == (answer.status in (200, 206)), (data, answer.status, took)


def test_odd_targets_and_hosts_are_the_stages(node: Node, published: Media) -> None:
    """Targets and Host spellings the stages read one way or refuse (dot segments, NUL,
    another scheme, ports, case, userinfo, IP literals): the same answers; the lane's
    only where the stages answer from the cache."""
    small = published.small
    cases = [
        get_request("lane.test", f"https://lane.test{small}"),
        get_request("lane.test", f"http://user@lane.test{small}"),
        get_request("lane.test", f"//lane.test{small}"),
        get_request("lane.test", "/lane/../lane/small.bin"),
        get_request("lane.test", "/lane/%2e%2e/lane/small.bin"),
        get_request("lane.test", "/lane/small.bin%00"),
        get_request("lane.test", "/lane\\small.bin"),
        get_request("lane.test", "/lane/small.bin?"),
        get_request("lane.test", "/lane/small.bin#frag"),
        get_request("lane.test", "*"),
        get_request("lane.test:80", small),
        get_request("lane.test:99999", small),
        get_request("LANE.TEST", small),
        get_request("user@lane.test", small),
        get_request("[::1]", small),
        get_request("127.0.0.1", small),
        get_request("", small),
        get_request("lane.test", small, "Host: lane.test"),
        get_request("\uff4cane.test", small),
        f"GET {small} HTTP/1.1\nHost: lane.test\n\n".encode(),
        f"GET {small} HTTP/1.1\nHost: lane.test\n\n\r\n\r\n".encode(),
        f"\r\nGET {small} HTTP/1.1\r\nHost: lane.test\r\n\r\n".encode(),
        f"GET {small} HTTP/1.1\r\nHost: lane.test\r\nX-Folded: a\r\n b\r\n\r\n".encode(),
        f"GET {small} HTTP/1.1\r\nHost : lane.test\r\n\r\n".encode(),
        f"GET  {small} HTTP/1.1\r\nHost: lane.test\r\n\r\n".encode(),
        f"GET {small} HTTP/1.1 \r\nHost: lane.test\r\n\r\n".encode(),
        f"GET {small} HTTP/1.1\r\nHost: lane.test\r\nX: \x7f\xff\r\n\r\n".encode("latin-1"),
    ]
    for data in cases:
        answer, took = compared(node, data, lane=None)
        assert not took or answer.status == 200, (data, answer)


def test_refusals_are_aiohttps(node: Node, published: Media) -> None:
    """What the stages refuse, the lane leaves to them: a bad Referer, a seek past the
    end or malformed, an unknown track, a bad signature."""
    long, small = published.long, published.small
    cases = [
        get_request("referer.test", small, "Referer: http://evil.example/"),
        get_request("referer.test", f"{long}?start=5&end=15", "Referer: http://evil.example/"),
        get_request("lane.test", f"{long}?start=5000&end=5010"),
        get_request("lane.test", f"{long}?start=abc&end=10"),
        get_request("lane.test", f"{long}?start=10&end=0"),
        get_request("lane.test", f"{published.langs}?vodedge_audio_track=9&start=0&end=1"),
        get_request("auth.test", small),
        get_request("auth.test", f"{small}?auth_key=1-0-0-0123456789abcdef0123456789abcdef"),
    ]
    for data in cases:
        answer = equivalent(node, data, lane=False)
        assert answer.status in (400, 403), answer
    good = get_request("referer.test", small, "Referer: https://good.example/page")
    assert equivalent(node, good, lane=True).body == published.small_bytes


def test_signed_urls_are_the_stages_answers(node: Node, published: Media) -> None:
    """A good signature: the same answer either way (verified on every request)."""
    node.prime("auth.test", _signed(published.small))
    node.prime("auth.test", _signed(published.long))
    for target in (_signed(published.small), _signed(published.long, "start=7&end=17")):
        answer = equivalent(node, get_request("auth.test", target), lane=None)
        assert answer.status == 200, answer


def _signed(path: str, query: str = "") -> str:
    signed_path, signed_query = ref_sign("a", AUTH_KEY, path, int(time.time()), query=query)
    return f"{signed_path}?{signed_query}"


def test_response_headers_and_cors_are_the_stages(node: Node, published: Media) -> None:
    """set_resp_header rules (added, deleted), CORS with any origin and with a checked
    list (Vary, an origin allowed and one not), on small HITs and clips alike."""
    clip = f"{published.langs}?start=0.25&end=1.75"
    for target in (published.small, clip):
        for host, extra in (
            ("headers.test", ()),
            ("headers.test", ("Origin: https://any.example",)),
            ("checked.test", ("Origin: https://player.example",)),
            ("checked.test", ("Origin: https://evil.example",)),
            ("checked.test", ()),
        ):
            answer = equivalent(node, get_request(host, target, *extra), lane=True)
            assert answer.status == 200
            if host == "headers.test":
                assert answer.header("x-served-by") == "edge-7" and answer.header("via") is None
                assert answer.header("access-control-allow-origin") == "*"
            else:
                assert ("vary", "Origin") in answer.headers


def test_a_new_configuration_reaches_the_lane_at_once(node: Node, published: Media) -> None:
    """The worker's configuration replaced (what a reload or the control plane does): the
    lane's next answer follows it, a header changed, a domain gone."""
    assert node.edge is not None
    before = node.edge.config
    changed = node.config_text.replace('value = "edge-7"', 'value = "edge-8"').replace(
        '[[domain]]\nname = "referer.test"', '[[domain]]\nname = "gone.test"'
    )
    assert changed != node.config_text
    new_file = node.work / "changed.toml"
    new_file.write_text(changed)
    data = get_request("headers.test", published.small)
    assert equivalent(node, data, lane=True).header("x-served-by") == "edge-7"
    good = get_request("referer.test", published.small, "Referer: https://good.example/")
    equivalent(node, good, lane=True)
    node.edge.config = load_toml(new_file)
    try:
        assert equivalent(node, data, lane=True).header("x-served-by") == "edge-8"
        assert equivalent(node, good, lane=False).status == 403  # unknown_host
    finally:
        node.edge.config = before
    assert equivalent(node, data, lane=True).header("x-served-by") == "edge-7"


def test_followed_cache_times_are_the_stages(node: Node, published: Media) -> None:
    """swift_follow_cachetime (a max-age counted down): the same answers."""
    for target in (published.small, f"{published.langs}?start=1&end=2"):
        answer = equivalent(node, get_request("follow.test", target), lane=None)
        assert (answer.header("cache-control") or "").startswith("max-age="), answer


def test_requests_the_lane_leaves_alone(node: Node, published: Media) -> None:
    """A range past the end, Expect, a body, HTTP/1.0, Connection: close, limit_rate:
    aiohttp's answers, the same with the lane in front (single ranges, If-Range too, and
    conditionals, 304s included, are the lane's)."""
    small, clip = published.small, f"{published.long}?start=3&end=13"
    etag = ask(node.plain_port, get_request("lane.test", small)).header("etag")
    clip_etag = ask(node.plain_port, get_request("lane.test", clip)).header("etag")
    for target, tag in ((small, etag), (clip, clip_etag)):
        # A single Range (If-Range too) of a fresh whole file is the lane's since
        # the lane answers ranges; a range past the end (416) is aiohttp's.
        for extra in (
            ("Range: bytes=10-99",),
            ("Range: bytes=-5",),
            ("Range: bytes=0-9", 'If-Range: "other"'),
            ("Range: bytes=0-9", f"If-Range: {tag}"),
            ("Range: bytes=0-9,20-29",),
            ("Range: bytes=5-",),
        ):
            equivalent(node, get_request("lane.test", target, *extra), lane=True)
        equivalent(node, get_request("lane.test", target, "Range: bytes=99999999-"), lane=False)
        # Conditionals are the lane's too: a current copy is a 304 (before any Range), an
        # old one the whole answer (or its range); GET and HEAD alike.
        for extra, status in (
            ((f"If-None-Match: {tag}",), 304),
            ((f'If-None-Match: "other", W/{tag}',), 304),
            (("If-None-Match: *",), 304),
            (('If-None-Match: "other"',), 200),
            ((f"If-None-Match: {tag}", "Range: bytes=0-9"), 304),
            (('If-None-Match: "other"', "Range: bytes=0-9"), 206),
            (("If-Modified-Since: Tue, 01 Dec 2099 00:00:00 GMT",), 304),
            (("If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT",), 200),
            (("If-Modified-Since: not a date",), 200),
            ((f"If-None-Match: {tag}", "If-Modified-Since: Thu, 01 Jan 1970 00:00:01 GMT"), 304),
        ):
            answer = equivalent(node, get_request("lane.test", target, *extra), lane=True)
            assert answer.status == status, (extra, answer)
            head = head_request("lane.test", target, *extra)
            equivalent(node, head, lane=True, head=True)
        equivalent(node, get_request("lane.test", target, "Expect: 100-continue"), lane=False)
        slow = small if target == small else f"{published.langs}?start=1&end=2"
        equivalent(node, get_request("slow.test", slow), lane=False)
    for data in (
        get_request("lane.test", small, "Connection: close"),
        f"GET {small} HTTP/1.0\r\nHost: lane.test\r\n\r\n".encode(),
        get_request("lane.test", small, "Content-Length: 0"),
    ):
        equivalent(node, data, lane=False)


def test_flv_options_and_upgrades_are_aiohttps(
    node: Node, published: Media, origins: Origins
) -> None:
    """FLV audio extraction, an OPTIONS preflight, an upgrade, POST: the stages' answers,
    the lane not asked."""
    flv = origins.media.add(SAMPLES / "talk.flv", "lane/talk.flv")
    node.prime("lane.test", flv)
    for data in (
        get_request("lane.test", f"{flv}?ali_audio_only=1"),
        get_request("lane.test", f"{flv}?ali_audio_only=1&start=13"),
        get_request(
            "headers.test",
            published.small,
            "Origin: https://a.example",
            "Access-Control-Request-Method: GET",
            method="OPTIONS",
        ),
        get_request("lane.test", published.small, "Connection: Upgrade", "Upgrade: websocket"),
        get_request("lane.test", published.small, "Content-Length: 0", method="POST"),
        b"get /lane/small.bin HTTP/1.1\r\nHost: lane.test\r\n\r\n",
        get_request("lane.test", f"/_vodedge/listen?src={published.long}"),
        get_request("lane.test", "/_vodedge/../lane/small.bin"),
        b"GET /lane/small.bin HTTP/1.1\r\n\r\n",
    ):
        equivalent(node, data, lane=False)
    whole = equivalent(node, get_request("lane.test", flv), lane=True)
    assert whole.body == (SAMPLES / "talk.flv").read_bytes()


def test_flv_seeks_are_the_stages_answers(node: Node, origins: Origins) -> None:
    """FLV seeks by byte offset (lane.test) and by time (flvtime.test), with an end or
    open, GET and HEAD, some with a Range, on a file with a keyframes index and one
    without: once the object's tag index is remembered (the stages build it on the first
    seek), the lane answers them with the stages' bytes; audio-only ones stay aiohttp's
    (over the stored audio tags)."""
    rng = random.Random(20261202)
    files = [
        (origins.media.add(SAMPLES / "talk.flv", "lane/seek-talk.flv"), SAMPLES / "talk.flv"),
        (
            origins.media.add(media("flv_h264_aac_10s_kfindex"), "lane/seek-kf.flv"),
            media("flv_h264_aac_10s_kfindex"),
        ),
    ]
    answered = 0
    for path, source in files:
        size = source.stat().st_size
        for host in ("lane.test", "flvtime.test"):
            node.prime(host, path)
        node.warm("lane.test", f"{path}?start=13")
        node.warm("flvtime.test", f"{path}?start=1.5")
        requests = []
        for _ in range(6):
            offset = rng.randrange(13, size - 1000)
            requests.append(get_request("lane.test", f"{path}?start={offset}"))
            end = offset + rng.randrange(1000, 100_000)
            requests.append(get_request("lane.test", f"{path}?start={offset}&end={end}"))
            start = rng.uniform(0, 7.5)
            requests.append(get_request("flvtime.test", f"{path}?start={start:.3f}"))
            end_time = start + rng.choice((0.5, 2.0, 5.0))
            query = f"start={start:.3f}&end={end_time:.3f}"
            requests.append(get_request("flvtime.test", f"{path}?{query}"))
            ranged = f"Range: bytes={rng.randrange(0, 3000)}-{rng.randrange(3000, 60_000)}"
            requests.append(get_request("flvtime.test", f"{path}?{query}", ranged))
        for data in requests:
            answer, took = compared(node, data, lane=None)
            assert answer.status in (200, 206) and answer.body, (data, answer)
            answered += took
        head = head_request("flvtime.test", f"{path}?start=2.000")
        equivalent(node, head, lane=True, head=True)
        for host, query in (("lane.test", "ali_audio_only=1&start=13"),
                            ("flvtime.test", "ali_audio_only=1&start=2.5")):  # fmt: skip
            equivalent(node, get_request(host, f"{path}?{query}"), lane=False)
    # Every seek but those whose plan is long (a rendition's business) took the lane.
    assert answered >= 50, answered


def test_absolute_targets_and_spellings(node: Node, published: Media) -> None:
    """An absolute-form target, percent-encoded and reordered queries: the same answers,
    by the lane."""
    long = published.long
    for data in (
        get_request("other.example", f"http://lane.test{published.small}"),
        get_request("lane.test", f"{long}?end=130&start=120"),
        get_request("lane.test", f"{long}?%73tart=120&end=130"),
        get_request("lane.test", "/lane/%6Cong.mp4?start=120&end=130"),
    ):
        equivalent(node, data, lane=True)


def test_a_purge_reaches_the_lane_at_once(node: Node, origins: Origins) -> None:
    """An object replaced at the origin and purged by another process: the lane's next
    answer, whole or clipped, is never the old version's."""
    small = origins.media.write("lane/purged.bin", b"old " * 200)
    clip_file = origins.media.add(media("mp4_two_languages"), "lane/purged.mp4")
    clip = f"{clip_file}?start=0.5&end=1.5"
    node.prime("lane.test", small)
    node.prime("lane.test", clip_file)
    node.warm("lane.test", clip)
    node.warm("lane.test", small)
    new_small, new_clip = b"new!" * 150, (SAMPLES / "talk.mp4").read_bytes()
    origins.media.write("lane/purged.bin", new_small)
    origins.media.write("lane/purged.mp4", new_clip)
    node.purge(f"http://lane.test{small}", f"http://lane.test{clip_file}")
    first = ask(node.lane_port, get_request("lane.test", small))
    assert first.body == new_small and first.header("x-cache") == "MISS", first
    node.prime("lane.test", clip_file)  # whole (a cold clip would fill it sparsely)
    clipped = ask(node.lane_port, get_request("lane.test", clip))
    want = run_bytes(read_index(len(new_clip)), new_clip).clip(0.5, 1.5).render(new_clip)
    assert clipped.status == 200 and clipped.body == want, clipped
    node.prime("lane.test", small)
    node.warm("lane.test", clip)
    assert equivalent(node, get_request("lane.test", small), lane=True).body == new_small
    assert equivalent(node, get_request("lane.test", clip), lane=True).body == want


def test_a_stale_object_is_revalidated_by_aiohttp(node: Node, published: Media) -> None:
    """Past its TTL (1 s on short.test) a HIT is the stages' to revalidate: the lane
    does not answer it, whole or clipped."""
    clip = f"{published.long}?start=300&end=310"
    node.prime("short.test", published.long)
    node.warm("short.test", clip)
    node.prime("short.test", published.small)
    node.warm("short.test", published.small)
    node.warm("short.test", clip)  # each warm answer was fresh: 1 s to go at most
    time.sleep(1.6)
    for target in (published.small, clip):
        before, lines = settle(node), node.logged()
        reply = ask(node.lane_port, get_request("short.test", target))
        assert reply.status == 200 and reply.header("x-cache") != "HIT", reply
        assert node.wait_logged(lines + 1) and node.lane_answers == before


def test_many_clients_at_once(node: Node, published: Media) -> None:
    """Six kept-alive connections asking small HITs, clips and a whole file at once:
    every answer's bytes right."""
    long = published.long
    rng = random.Random(7)
    targets = [published.small, published.talk]
    for _ in range(10):
        start = rng.uniform(0, 1780)
        targets.append(f"{long}?start={start:.2f}&end={start + 10:.2f}")
    wants = {t: ask(node.plain_port, get_request("lane.test", t)).body for t in targets}
    errors: list[BaseException] = []
    before = settle(node)

    def client(seed: int) -> None:
        order = random.Random(seed).choices(targets, k=12)
        try:
            with connected(node.lane_port) as conn:
                for target in order:
                    conn.send(get_request("lane.test", target))
                    reply = conn.read()
                    assert reply.status == 200 and reply.body == wants[target], target
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert wait_for_count(node, before + 72, 5), node.lane_answers - before


def test_more_policies_are_the_stages(node: Node, published: Media) -> None:
    """An IP list read through X-Forwarded-For, repeated headers, previews (capped by
    vodedge_preview_max), a limit_rate asked for in the query: the same answers."""
    small, long = published.small, published.long
    for host in ("xff.test", "preview.test", "rate-arg.test", "allowed.test"):
        node.prime(host, small)
        node.prime(host, long)
    node.prime("rate-arg.test", f"{long}?rate=100000")
    for data, lane in (
        (get_request("xff.test", small, "X-Forwarded-For: 203.0.113.7"), False),
        (get_request("xff.test", small, "X-Forwarded-For: 198.51.100.1"), True),
        (get_request("xff.test", small), True),
        (get_request("blocked.test", small), False),
        (get_request("allowed.test", small), True),
        (get_request("referer.test", small, "Referer: https://good.example/",
                     "Referer: https://good.example/"), False),
        (get_request("lane.test", small, "Host: lane.test"), False),
        (get_request("rate-arg.test", small), True),
        (get_request("rate-arg.test", f"{long}?start=5&end=15"), None),
        (get_request("rate-arg.test", f"{long}?start=5&end=15&rate=100000"), False),
    ):  # fmt: skip
        equivalent(node, data, lane=lane)
    for query in ("trial=2", "trial=10", "trial=2&ali_audio_only=1", "trial=2&start=1", "trial=x"):
        equivalent(node, get_request("preview.test", f"{long}?{query}"), lane=None)


def test_origin_headers_are_the_stages(node: Node, origins: Origins) -> None:
    """Objects whose origin sent headers of its own (Content-Encoding, Content-Language,
    Cache-Control, a quoted filename): small, whole and clipped, the same answers."""
    extra = {
        "Content-Encoding": "gzip",
        "Content-Language": "fr",
        "Content-Disposition": 'attachment; filename="a b.bin"',
        "Cache-Control": "max-age=600, public",
    }
    small = origins.media.write("lane/origin-small.bin", b"z" * 999)
    large = origins.media.write("lane/origin-large.bin", bytes(range(256)) * 800)
    clip_file = origins.media.add(media("mp4_two_languages"), "lane/origin-clip.mp4")
    plain = origins.media.add(media("mp4_two_languages"), "lane/origin-plain.mp4")
    for path in (small, large):
        origins.fault.behave(path, headers=extra)
    origins.fault.behave(clip_file, headers={"Content-Language": "fr", "X-Origin": "a;b"})
    origins.fault.behave(plain, cache_control="max-age=600", headers={"Expires": "0"})
    for path in (small, large, clip_file, plain):
        node.prime("fault.test", path)
    node.warm("fault.test", f"{clip_file}?start=0.5&end=1.5")
    for target in (small, large, plain, f"{clip_file}?start=0.5&end=1.5", f"{plain}?start=1"):
        equivalent(node, get_request("fault.test", target), lane=None)
        equivalent(node, head_request("fault.test", target), lane=None, head=True)


def test_many_requests_on_one_connection(node: Node, published: Media) -> None:
    """Two hundred lane answers on one kept-alive connection, every one right."""
    data = get_request("lane.test", published.small)
    want = expected_answer(node, data)
    before = settle(node)
    with connected(node.lane_port) as client:
        for _ in range(200):
            client.send(data)
            reply = client.read()
            assert reply.status == 200 and reply.body == want.body
    assert wait_for_count(node, before + 200, 5)


def test_a_client_that_stops_sending(node: Node, published: Media) -> None:
    """A lane request and then the client's half-close (no more requests): the whole
    answer, small or a large clip, then the close. (aiohttp's way closes at once on a
    half-close, the request unanswered: asyncio's default for eof_received.)"""
    for target in (published.small, f"{published.big}?start=0&end=4"):
        data = get_request("lane.test", target)
        want = expected_answer(node, data)
        before = settle(node)
        with connected(node.lane_port) as client:
            client.send(data)
            client.sock.shutdown(socket.SHUT_WR)
            same_answers(client.read(), want)
            assert client.closed_by_server()
        assert wait_for_count(node, before + 1, 5)


# --- 2. access log and metrics ---------------------------------------------------------


COUNTERS = ("vodedge_requests", "vodedge_cache_lookups", "vodedge_sent_bytes",
            "vodedge_audio_saved_bytes")  # fmt: skip


def counters(domain_name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """This process's request, lookup and byte counters of a domain, by labels."""
    out = {}
    for metric in REGISTRY.collect():
        if metric.name not in COUNTERS:
            continue
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("domain") == domain_name:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def counted(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    """What changed between two `counters`."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_the_lane_is_logged_and_counted_as_the_stages(node: Node, published: Media) -> None:
    """A lane answer's access-log line has the fields of aiohttp's for the same request
    (all but the time it took); request, lookup, byte and saving counters count it the
    same. A MISS (aiohttp's either way) for contrast."""
    long = published.long
    for method, target, lane in (
        ("GET", published.small, True),
        ("GET", published.talk, True),
        ("HEAD", published.talk, True),
        ("GET", f"{long}?start=555.5&end=565.5", True),
        ("HEAD", f"{long}?start=555.5&end=565.5", True),
        ("GET", f"{long}?ali_audio_only=1&start=555.5&end=556.5", True),
        ("GET", f"{long}?ali_audio_only=1&start=555.5&end=556.5&x=1", False),  # a MISS
    ):
        changes: list[dict[Any, float]] = []
        lines: list[dict[str, Any]] = []
        head = method == "HEAD"
        for port in (node.lane_port, node.plain_port):
            before = settle(node)
            logged = len(node.access_lines())
            values = counters("lane.test")
            answer = ask(port, get_request("lane.test", target, method=method), head=head)
            assert answer.status == 200
            if port == node.lane_port:
                assert wait_for_count(node, before + int(lane), 5)
            wait_until(lambda n=logged: len(node.access_lines()) > n, 5, "the log line")
            (line,) = node.access_lines()[logged:]
            lines.append(line)
            changes.append(counted(values, counters("lane.test")))
        ours, theirs = lines
        assert set(ours) == set(theirs), (ours, theirs)
        if not lane:
            assert (ours["cache"], theirs["cache"]) == ("MISS", "HIT")
            continue
        for key in ours:
            if key not in ("ms", "time"):
                assert ours[key] == theirs[key], (key, ours, theirs)
        assert ours["cache"] == "HIT" and ours["status"] == 200 and ours["method"] == method
        assert changes[0] == changes[1], changes
        function_name = ours["function"]
        requests = (
            "vodedge_requests_total",
            (("domain", "lane.test"), ("function", function_name), ("status", "200")),
        )
        sent = ("vodedge_sent_bytes_total", (("domain", "lane.test"), ("function", function_name)))
        hits = ("vodedge_cache_lookups_total", (("domain", "lane.test"), ("result", "HIT")))
        assert changes[0][requests] == 1 and changes[0][hits] == 1, changes
        assert changes[0].get(sent, 0) == ours["bytes"] == len(answer.body), changes
        assert (ours["bytes"] == 0) == head


# --- 3. how requests arrive ------------------------------------------------------------


def expected_answer(node: Node, data: bytes, head: bool = False) -> Answer:
    return ask(node.plain_port, data, head=head)


def same_answers(ours: Answer, theirs: Answer) -> None:
    problems = differences(ours, theirs)
    assert not problems or all(any(f"('{n}'," in p for n in TIMED) for p in problems), problems


def test_a_request_in_one_byte_writes(node: Node, published: Media) -> None:
    """Every byte its own write: the answer is the same, and the connection goes on."""
    for target in (published.small, f"{published.long}?start=71&end=81"):
        data = get_request("lane.test", target)
        want = expected_answer(node, data)
        with connected(node.lane_port) as client:
            for byte in data:
                client.send(bytes([byte]))
                time.sleep(0.001)
            same_answers(client.read(), want)
            before = settle(node)
            client.send(data)
            same_answers(client.read(), want)
            assert wait_for_count(node, before + 1, 5), "a whole request after a split one"


def test_pipelined_requests_are_answered_in_order(node: Node, published: Media) -> None:
    """Two and three requests in one write, lane kinds and others mixed: every one
    answered, in order, with the bytes each gets alone."""
    small = get_request("lane.test", published.small)
    clip = get_request("lane.test", f"{published.long}?start=91&end=101")
    head = head_request("lane.test", f"{published.long}?start=91&end=101")
    ranged = get_request("lane.test", published.small, "Range: bytes=5-9")
    for batch in ([small, clip], [clip, small, ranged], [head, clip], [ranged, small, head]):
        wants = [expected_answer(node, data, data.startswith(b"HEAD")) for data in batch]
        with connected(node.lane_port) as client:
            client.send(b"".join(batch))
            for data, want in zip(batch, wants, strict=True):
                same_answers(client.read(head=data.startswith(b"HEAD")), want)
            # And the connection still answers, by the lane.
            before = settle(node)
            client.send(small)
            same_answers(
                client.read(), wants[0] if batch[0] is small else expected_answer(node, small)
            )
            assert wait_for_count(node, before + 1, 5)


def test_many_requests_sent_before_any_answer_is_read(node: Node, published: Media) -> None:
    """Eighty requests in writes of their own, none of the answers read until all are
    sent (the answers pile up unread: the lane must wait, not buffer or reorder): every
    answer right, in order."""
    small = get_request("lane.test", published.small)
    clip = get_request("lane.test", f"{published.long}?start=61&end=71")
    head = head_request("lane.test", f"{published.long}?start=61&end=71")
    ranged = get_request("lane.test", published.small, "Range: bytes=5-9")
    whole = get_request("lane.test", published.talk)
    kinds = [small, clip, head, ranged, whole]
    wants = {data: expected_answer(node, data, data is head) for data in kinds}
    order = random.Random(11).choices(kinds, k=80)
    before = settle(node)
    with connected(node.lane_port, rcvbuf=16384, timeout=20) as client:
        for data in order:
            client.send(data)
            time.sleep(0.002)  # each its own read, mostly
        for data in order:
            same_answers(client.read(head=data is head), wants[data])
        client.send(small)
        same_answers(client.read(), wants[small])
    assert settle(node) > before  # the lane took part


def test_lane_and_aiohttp_take_turns_on_one_connection(node: Node, published: Media) -> None:
    """Lane, a conditional (lane), an Expect (aiohttp), a Range (lane), a 404 (aiohttp),
    lane HEAD, a Range of a clip, a conditional clip: in order, each answered by whom it
    should be."""
    small = published.small
    clip = f"{published.long}?start=1201&end=1211"
    steps: list[tuple[bytes, bool, bool]] = [
        (get_request("lane.test", small), True, False),
        (get_request("lane.test", small, 'If-None-Match: "x"'), True, False),
        (get_request("lane.test", small, "Expect: 100-continue"), False, False),
        (get_request("lane.test", small, "Range: bytes=0-99"), True, False),
        (get_request("lane.test", clip), True, False),
        (get_request("lane.test", "/lane/absent.bin"), False, False),
        (head_request("lane.test", clip), True, True),
        (get_request("lane.test", clip, "Range: bytes=100-"), True, False),
        (get_request("lane.test", clip, 'If-None-Match: "x"'), True, False),
        (
            get_request("lane.test", clip, "If-Modified-Since: Tue, 01 Dec 2099 00:00:00 GMT"),
            True,
            False,
        ),
        (get_request("lane.test", small), True, False),
    ]
    wants = [expected_answer(node, data, head) for data, _lane, head in steps]
    with connected(node.lane_port) as client:
        for (data, lane, head), want in zip(steps, wants, strict=True):
            before, lines = settle(node), node.logged()
            client.send(data)
            same_answers(client.read(head=head), want)
            assert node.wait_logged(lines + 1)  # the lane counted it before its line
            assert node.lane_answers == before + lane, data


def test_a_request_with_a_body_then_more(node: Node, published: Media) -> None:
    """A GET with `Content-Length: 5` (its body with it, or in a write of its own): the
    stages' answer, and the next request on the connection is answered right."""
    small = get_request("lane.test", published.small)
    with_body = get_request("lane.test", published.small, "Content-Length: 5")
    want_body = expected_answer(node, with_body + b"hello")
    want = expected_answer(node, small)
    for split in (False, True):
        with connected(node.lane_port) as client:
            before, lines = settle(node), node.logged()
            if split:
                client.send(with_body)
                time.sleep(0.05)
                client.send(b"hello")
            else:
                client.send(with_body + b"hello")
            same_answers(client.read(), want_body)
            assert node.wait_logged(lines + 1) and node.lane_answers == before
            client.send(small)
            same_answers(client.read(), want)
            client.send(small)
            same_answers(client.read(), want)


def test_bodies_in_one_write_then_more(node: Node, published: Media) -> None:
    """A GET with a 3 MB body sent with its headers, chunked bodies (empty, or ending in
    what looks like the end of a head), then a request on the same connection: the
    stages' answers, nothing stalls."""
    small = get_request("lane.test", published.small)
    chunked = get_request("lane.test", published.small, "Transfer-Encoding: chunked")
    body = b"b" * (3 << 20)
    for first_write in (
        get_request("lane.test", published.small, f"Content-Length: {len(body)}") + body,
        chunked + b"0\r\n\r\n",
        chunked + b"4\r\n\r\n\r\n\r\n0\r\n\r\n",
    ):
        answers = []
        for port in (node.lane_port, node.plain_port):
            with connected(port) as client:
                client.send(first_write)
                first = client.read()
                client.send(small)
                answers.append([first, client.read()])
        for ours, theirs in zip(*answers, strict=True):
            same_answers(ours, theirs)


def test_requests_that_end_the_connection(node: Node, published: Media) -> None:
    """HTTP/1.0 and `Connection: close`: the stages' answer, then the server closes."""
    for data in (
        f"GET {published.small} HTTP/1.0\r\nHost: lane.test\r\n\r\n".encode(),
        get_request("lane.test", published.small, "Connection: close"),
        get_request("lane.test", f"{published.long}?start=5&end=15", "Connection: close"),
    ):
        want = expected_answer(node, data)
        before, lines = settle(node), node.logged()
        with connected(node.lane_port) as client:
            client.send(data)
            ours = client.read_head()
            length = ours.header("content-length")
            ours.body = client._take(int(length)) if length is not None else client.rest()
            same_answers(ours, want)
            assert client.closed_by_server(), data
        assert node.wait_logged(lines + 1) and node.lane_answers == before


def test_a_huge_header_is_refused_as_before(node: Node, published: Media) -> None:
    """A header field over 8190 bytes: aiohttp's refusal, with the lane or without."""
    data = get_request("lane.test", published.small, "X-Big: " + "a" * 9000)
    ours, theirs = ask(node.lane_port, data), ask(node.plain_port, data)
    assert ours.status in (400, 431) and ours.status == theirs.status
    same_answers(ours, theirs)


def answers_until_closed(client: Client) -> list[Answer]:
    """Every response until the server closes the connection."""
    out = []
    while True:
        try:
            out.append(client.read())
        except ConnectionError:
            assert not client.buffer, client.buffer[:200]
            return out


def test_garbage_after_a_good_request(node: Node, published: Media) -> None:
    """A good request and garbage, in one write (aiohttp refuses the read whole) or two
    (the answer, then aiohttp's 400): with the lane as without it."""
    data = get_request("lane.test", published.small)
    garbage = b"\x00\x01NOT HTTP AT ALL\r\n\r\n"
    for writes in ([data + garbage], [data, garbage]):
        answers = []
        for port in (node.lane_port, node.plain_port):
            with connected(port) as client:
                for chunk in writes:
                    client.send(chunk)
                    time.sleep(0.05)
                answers.append(answers_until_closed(client))
        ours, theirs = answers
        assert len(ours) == len(theirs) == len(writes), answers
        for one, other in zip(ours, theirs, strict=True):
            same_answers(one, other)
        assert ours[-1].status == 400


def test_split_reads_cannot_smuggle_a_request(node: Node, published: Media) -> None:
    """A request whose header block arrives in two reads, the second looking like a
    whole request by itself: it is part of the first (aiohttp's view), never a request
    of its own that the lane answers."""
    first = b"GET /lane/nothing.bin HTTP/1.1\r\nX-Pad: "
    second = get_request("lane.test", published.small)
    answers = []
    for port in (node.lane_port, node.plain_port):
        with connected(port) as client:
            client.send(first)
            time.sleep(0.05)
            client.send(second)
            answers.append(client.read())
    ours, theirs = answers
    assert theirs.status == 404  # /lane/nothing.bin, with the header X-Pad
    same_answers(ours, theirs)


def test_a_body_cannot_desync_the_lane(node: Node, published: Media) -> None:
    """A request with a body sent in a read of its own, then a request whose first bytes
    are as long as that body: the lane must not take them for the body again."""
    pad = b"GET /lane/nothing.bin HTTP/1.1\r\nX-Pad: "
    with_body = get_request("lane.test", published.small, f"Content-Length: {len(pad)}")
    writes = [with_body, b"x" * len(pad), pad + get_request("lane.test", published.small)]
    answers = []
    for port in (node.lane_port, node.plain_port):
        with connected(port) as client:
            replies = []
            for chunk in writes:
                client.send(chunk)
                time.sleep(0.05)
                if chunk is not with_body:
                    replies.append(client.read())
            answers.append(replies)
    ours, theirs = answers
    assert [a.status for a in theirs] == [200, 404]
    for one, other in zip(ours, theirs, strict=True):
        same_answers(one, other)


# --- 4. slow and vanishing clients -----------------------------------------------------


def test_a_slow_reader_gets_every_byte(node: Node, published: Media) -> None:
    """A small receive buffer read a little at a time: the lane's sendfile stops short
    and the rest follows from its task; every byte right, then the next request. A
    clip, a whole file, and ranges of them (206s of megabytes)."""
    clip = f"{published.big}?start=0&end=4"
    for target, extra in (
        (clip, ()),
        (published.big, ("Range: bytes=1000000-",)),
        (clip, ("Range: bytes=123457-6000000",)),
    ):
        data = get_request("lane.test", target, *extra)
        want = expected_answer(node, data)
        small_want = expected_answer(node, get_request("lane.test", published.small))
        before = settle(node)
        with connected(node.lane_port, rcvbuf=8192) as client:
            client.send(data)
            head = client.read_head()
            length = int(head.header("content-length") or 0)
            assert length > 2 << 20
            received = bytearray(client.buffer)
            client.buffer = b""
            started = time.monotonic()
            while len(received) < length:
                chunk = client.sock.recv(min(65536, length - len(received)))
                assert chunk, "closed early"
                received += chunk
                if time.monotonic() - started < 0.5:
                    time.sleep(0.002)  # slow at first: the socket fills, sendfile stops short
            head.body = bytes(received)
            same_answers(head, want)
            assert wait_for_count(node, before + 1, 5)
            client.send(get_request("lane.test", published.small))
            same_answers(client.read(), small_want)
            assert wait_for_count(node, before + 2, 5)


def test_requests_sent_while_the_lane_is_still_sending(node: Node, published: Media) -> None:
    """A slow reader asks for more (a lane request, a Range, a lane HEAD) in writes of
    their own while a large clip is still being sent: each is answered after it, in
    order (what arrived meanwhile is read at once afterwards: aiohttp's, pipelined)."""
    clip = f"{published.big}?start=0&end=4"
    steps = [
        get_request("lane.test", clip),
        get_request("lane.test", published.small),
        get_request("lane.test", published.small, "Range: bytes=0-9"),
        head_request("lane.test", clip),
        get_request("lane.test", f"{published.long}?start=1&end=11"),
    ]
    wants = [expected_answer(node, data, data.startswith(b"HEAD")) for data in steps]
    before = settle(node)
    with connected(node.lane_port, rcvbuf=8192) as client:
        for data in steps:
            client.send(data)
            time.sleep(0.05)
        for data, want in zip(steps, wants, strict=True):
            same_answers(client.read(head=data.startswith(b"HEAD")), want)
    assert settle(node) > before


def test_a_client_leaving_mid_body(node: Node, published: Media) -> None:
    """A client takes the head and a little of a large clip, then hangs up: the log
    says the answer was cut short; other clients are answered meanwhile and after."""
    start = f"{random.Random().uniform(0.001, 0.5):.3f}"
    target = f"{published.big}?start={start}&end=4"
    small = get_request("lane.test", published.small)
    want = expected_answer(node, small)
    before, values = settle(node), counters("lane.test")
    with connected(node.lane_port, rcvbuf=8192) as leaver:
        leaver.send(get_request("lane.test", target))
        leaver.read_head()
        leaver._more()
        same_answers(ask(node.lane_port, small), want)  # while the answer is still going
        leaver.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    line = line_for(node, target)
    assert line.get("aborted") == "client_gone" and line["status"] == 499, line
    assert 0 < line["bytes"] < 4 << 20, line
    assert node.lane_answers == before + 2  # the clip and the small one
    labels = (("domain", "lane.test"), ("function", line["function"]))
    cut = ("vodedge_requests_total", (*labels, ("status", "499")))
    sent = ("vodedge_sent_bytes_total", labels)
    changes = counted(values, counters("lane.test"))
    assert changes[cut] == 1 and changes[sent] == line["bytes"], changes
    same_answers(ask(node.lane_port, small), want)


def test_a_client_that_never_reads_is_dropped(node: Node, published: Media) -> None:
    """No byte taken for longer than the send timeout: the lane drops the connection and
    logs why; other clients are answered meanwhile."""
    start = f"{random.Random().uniform(0.001, 0.5):.3f}"
    target = f"{published.big}?start={start}&end=4"
    small = get_request("lane.test", published.small)
    want = expected_answer(node, small)
    length = int(
        expected_answer(node, head_request("lane.test", target), True).header("content-length") or 0
    )
    with connected(node.lane_port, rcvbuf=4096, timeout=20) as stalled:
        stalled.send(get_request("lane.test", target))
        same_answers(ask(node.lane_port, small), want)
        line = line_for(node, target, timeout=SEND_TIMEOUT + 15)
        assert line.get("aborted") == "send_timeout" and line["status"] == 200, line
        # What was buffered comes out, then the connection is closed: short.
        received, closed = stalled.drained(10)
        assert closed and received < length, (received, length)
        assert 0 < line["bytes"] < length, line


def line_for(node: Node, target: str, timeout: float = 10.0, known: int = 0) -> dict[str, Any]:
    """The access-log line of the GET of `target` after the `known` first ones."""

    def lines() -> list[dict[str, Any]]:
        return [
            line
            for line in node.access_lines()
            if line["path"] == target and line["method"] == "GET"
        ]

    wait_until(lambda: len(lines()) > known, timeout, f"the access-log line of {target}")
    (line,) = lines()[known:]
    return line


# --- 5. TLS -----------------------------------------------------------------------------


def test_the_lane_stays_off_over_tls(node: Node, published: Media) -> None:
    """Over TLS (sendfile would bypass it) every request is aiohttp's, bytes right."""
    context = _client_tls()
    for target in (published.small, f"{published.long}?start=44&end=54"):
        data = get_request("lane.test", target)
        want = expected_answer(node, data)
        before, lines = settle(node), node.logged()
        with connected(node.tls_port, tls=context) as client:
            for _ in range(2):
                client.send(data)
                same_answers(client.read(), want)
        assert node.wait_logged(lines + 2) and node.lane_answers == before
