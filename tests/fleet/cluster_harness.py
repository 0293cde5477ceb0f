"""A whole fleet as real processes: redis-server (AOF), an nginx origin, a parent vodedge,
edge vodedges sharing the store, and an nginx balancer hashing URIs onto the edges.

Everything listens on free loopback ports and is stopped by whoever started it; every
wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from api_node import FULL, ApiNode, keys_toml
from edge_harness import (
    Nginx,
    Vodedge,
)
from edge_media import generated
from redis_harness import RedisServer
from test_actions_sdk import NewSdk

FLEET_SECRET = "fleet-secret-0123456789abcdef"
# A small MP4 (moov at the head), a few tens of kB: 100 copies stay cheap to serve.
SMALL_MP4 = (
    "-f", "lavfi", "-i", "testsrc2=size=96x64:rate=10:duration=3",
    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050:duration=3",
    "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-g", "10",
    "-c:a", "aac", "-b:a", "32k", "-movflags", "+faststart", "-f", "mp4",
)  # fmt: skip

BALANCER_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format balanced '$uri\\t$upstream_addr\\t$status';
    access_log {work}/access.log balanced;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
{upstream}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://edges;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_next_upstream error timeout;
            proxy_connect_timeout 2s;
            add_header X-Edge $upstream_addr always;
        }}
    }}
}}
"""


def upstream_block(ports: list[int]) -> str:
    """The balancer's upstream: one object (host and path, no query) to one edge of N."""
    servers = "\n".join(
        f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=30s;" for port in ports
    )
    return f"""    upstream edges {{
        hash $host$uri consistent;
{servers}
        keepalive 32;
    }}"""


class Balancer(Nginx):
    """Debian's nginx as the balancer in front of the edges (README: Running a fleet)."""

    name = "the balancer"

    def __init__(self, work: Path, edge_ports: list[int]) -> None:
        super().__init__(root=work, work=work)
        self.edge_ports = edge_ports

    def config(self) -> str:
        """nginx.conf hashing each object to one of the edges."""
        return BALANCER_CONF.format(
            work=self.work, port=self.port, upstream=upstream_block(self.edge_ports)
        )


@dataclass(frozen=True)
class Answer:
    """What one request got: status, the headers the tests read, the body's length."""

    status: int
    headers: Mapping[str, str]
    length: int

    @property
    def edge(self) -> str:
        """The edge the balancer used last (X-Edge lists every one it tried)."""
        return self.headers.get("X-Edge", "").split(",")[-1].strip()


async def _get(session: aiohttp.ClientSession, url: str, host: str) -> Answer:
    async with session.get(url, headers={"Host": host}) as response:
        length = 0
        async for chunk in response.content.iter_any():
            length += len(chunk)
        return Answer(response.status, dict(response.headers), length)


def fetch_all(
    port: int, host: str, paths: list[str], concurrency: int = 32, timeout: float = 60.0
) -> list[Answer]:
    """GET every path of `host` through 127.0.0.1:`port`, `concurrency` at a time."""

    async def run() -> list[Answer]:
        limit = asyncio.Semaphore(concurrency)
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=timeout),
            auto_decompress=False,
        ) as session:

            async def one(path: str) -> Answer:
                async with limit:
                    return await _get(session, f"http://127.0.0.1:{port}{path}", host)

            return await asyncio.gather(*(one(path) for path in paths))

    return asyncio.run(run())


def first_answers(
    ports: list[int], host: str, path: str, wanted: str, timeout: float, every: float = 0.05
) -> dict[int, float]:
    """For each port, when (time.time()) the first request was sent that came back with
    Content-Type `wanted`: a request is started every `every` s on each port, whether
    the last has come back or not, so a slow answer does not delay the next look."""

    async def run() -> dict[int, float]:
        found: dict[int, float] = {}
        async with aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False
        ) as session:

            async def look(port: int, sent: float) -> None:
                answer = await _get(session, f"http://127.0.0.1:{port}{path}", host)
                if answer.headers.get("Content-Type") == wanted:
                    found[port] = min(found.get(port, sent), sent)

            looks: list[asyncio.Task[None]] = []
            deadline = time.monotonic() + timeout
            while len(found) < len(ports) and time.monotonic() < deadline:
                for port in ports:
                    if port not in found:
                        looks.append(asyncio.create_task(look(port, time.time())))
                await asyncio.sleep(every)
            await asyncio.gather(*looks, return_exceptions=True)
        return found

    return asyncio.run(run())


def small_mp4() -> Path:
    """The small MP4 the cluster serves (made once, kept in the shared test cache)."""
    return generated("fleet-small", SMALL_MP4, "mp4")


def source_lines(node: Vodedge, path: str) -> list[dict[str, object]]:
    """The node's access-log lines for `path` (query ignored)."""
    return [line for line in node.access_lines() if str(line["path"]).split("?")[0] == path]


@dataclass
class Cluster:
    """The running fleet: `edges[0]` is node A."""

    redis: RedisServer
    origin: Nginx
    parent: Vodedge
    edges: list[Vodedge]
    balancer: Balancer
    media: Path
    extra: list[Vodedge] = field(default_factory=list)

    def sdk(self, node: Vodedge) -> NewSdk:
        """The official SDK (alibabacloud-cdn20180510) pointed at `node`'s API."""
        return NewSdk(ApiNode(node), FULL)

    def sources(self) -> str:
        """AddCdnDomain's Sources: the parent first, the real origin as the backup."""
        return json.dumps(
            [
                {"type": "vodedge", "content": "127.0.0.1", "port": self.parent.port},
                {
                    "type": "ipaddr",
                    "content": "127.0.0.1",
                    "port": self.origin.port,
                    "priority": 30,
                },
            ]
        )

    def origin_hits(self, path: str) -> int:
        """How often the origin was asked for `path`, once its log has settled."""
        return len(self.origin.settled_hits(path))

    def publish(self, name: str, source: Path | None = None) -> str:
        """Put a copy of the small MP4 (or `source`) on the origin; its URL path."""
        target = self.media / name
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.tmp")
        staging.write_bytes((source or small_mp4()).read_bytes())
        staging.replace(target)
        return "/" + name


def fleet_node(
    work: Path, redis: RedisServer, *, role: str = "edge", secret: str = FLEET_SECRET
) -> Vodedge:
    """A node with no domain of its own: all come from the shared store."""
    return Vodedge(
        work,
        keys_toml(),
        workers=1,
        env={"VODEDGE_FLEET_SECRET": secret},
        limits={"--store": redis.url, "--role": role},
    )


@contextlib.contextmanager
def running_cluster(work: Path, edges: int = 3) -> Iterator[Cluster]:
    """Start everything, yield the cluster, stop everything (in reverse)."""
    media = work / "media"
    media.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        redis = RedisServer(work / "redis")
        redis.start()
        stack.callback(redis.stop)
        origin = Nginx(media, work / "origin")
        origin.start()
        stack.callback(origin.stop)
        parent = fleet_node(work / "parent", redis, role="parent")
        parent.start()
        stack.callback(parent.stop)
        nodes = []
        for name in "abcdefgh"[:edges]:
            node = fleet_node(work / name, redis)
            node.start()
            stack.callback(node.stop)
            nodes.append(node)
        balancer = Balancer(work / "balancer", [node.port for node in nodes])
        balancer.start()
        stack.callback(balancer.stop)
        yield Cluster(redis, origin, parent, nodes, balancer, media)
