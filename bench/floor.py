"""The floors a 1 kB HIT is measured against (issue 15): servers that only answer 1 kB.

    python bench/floor.py aiohttp --port N [--loop uvloop]   # a bare aiohttp handler
    python bench/floor.py lowlevel --port N [--loop uvloop]  # aiohttp's web.Server, no app
    python bench/floor.py lean --port N [--loop uvloop]      # an asyncio Protocol + httptools
    granian --interface rsgi --workers 1 --port N floor:rsgi_app   # granian (Rust HTTP)

Each answers every request with the same 1,000 bytes and the headers a HIT carries
about as many of (Date, Content-Length, Content-Type): what is left of a vodedge
HIT's cost above these is vodedge's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
from email.utils import formatdate
from typing import Any

BODY = os.urandom(1000)


def run_aiohttp(sock: socket.socket) -> None:
    """A bare aiohttp application with one handler returning BODY."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=BODY, content_type="application/octet-stream")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


def run_lowlevel(sock: socket.socket) -> None:
    """aiohttp's low-level server (`web.Server`): one handler, no Application, router,
    middleware or signals."""
    from aiohttp import web

    async def handle(request: web.BaseRequest) -> web.Response:
        return web.Response(body=BODY, content_type="application/octet-stream")

    async def main() -> None:
        runner = web.ServerRunner(web.Server(handle, access_log=None), handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        await asyncio.Event().wait()

    asyncio.run(main())


class Lean(asyncio.Protocol):
    """HTTP/1.1 keep-alive with httptools' parser: one write per response."""

    def __init__(self) -> None:
        import httptools  # checked by run_lean before it listens

        self.parser = httptools.HttpRequestParser(self)
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are asyncio.Transport alike, not subclasses.
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except Exception:
            self.transport.close()

    def on_message_complete(self) -> None:
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {len(BODY)}\r\nDate: {formatdate(usegmt=True)}\r\n\r\n"
        )
        self.transport.write(head.encode() + BODY)


def run_lean(sock: socket.socket) -> None:
    """Serve `Lean` on `sock` until killed."""
    # Missing, it would fail each connection (wrk counts read errors, not a missing
    # module): exit before serving, so the benchmark reports why.
    import httptools  # noqa: F401

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Lean, sock=sock)
        await server.serve_forever()

    asyncio.run(main())


async def rsgi_app(scope: Any, proto: Any) -> None:
    """granian's RSGI interface: the same 1 kB answer."""
    proto.response_bytes(200, [("content-type", "application/octet-stream")], BODY)


RUNS = {"aiohttp": run_aiohttp, "lowlevel": run_lowlevel, "lean": run_lean}


def main() -> int:
    """Run one floor server."""
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=sorted(RUNS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)
    RUNS[args.kind](sock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
