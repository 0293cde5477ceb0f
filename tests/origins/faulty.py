"""A fault-injecting HTTP origin, run as its own process: `python -m origins.faulty --root DIR`.

It prints `PORT <n>` once it listens on 127.0.0.1. Every path serves the file
of that name under the root, healthily (ETag, Last-Modified, Range, 304), until
a test asks that path to misbehave:

    POST /_control/behave   {"path": "/a.mp4", "reset_at": 100000}  (see `Behaviour`)
    GET  /_control/requests?path=/a.mp4    every request that path got, as JSON
    POST /_control/reset                   forget behaviours and requests

Behaviours are per path and per origin process, so tests give each scenario a
path of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import signal
import socket
import struct
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aiohttp import web

FIXED_DATE = "Mon, 02 Jan 2023 03:04:05 GMT"


def payload(name: str, size: int) -> bytes:
    """`size` bytes that depend only on `name` (tests rebuild them to compare)."""
    return random.Random(name).randbytes(size)


@dataclass
class Behaviour:
    """How one path answers; the defaults are a healthy static-file origin."""

    status: int = 200
    location: str | None = None  # for 3xx
    source: str | None = None  # serve this file (relative to the root) instead
    size: int | None = None  # serve `payload(path, size)` instead of a file
    by_host: bool = False  # with `size`: `payload(host + path, size)`, a body per Host
    etag: str = "content"  # "content": a hash of the body; "flip": new per request; "none"
    last_modified: str | None = FIXED_DATE
    cache_control: str | None = None
    age: int | None = None
    ranges: bool = True  # honour Range (and say Accept-Ranges: bytes)
    conditional: bool = True  # 304 on a matching If-None-Match / If-Modified-Since
    chunked: bool = False  # no Content-Length
    headers_delay: float = 0.0  # sleep before the status line
    chunk: int = 64 << 10
    drip_after: int | None = None  # from this body offset on, sleep `interval` per chunk
    interval: float = 0.0
    stall_at: int | None = None  # sleep `stall` once the body reaches this offset
    stall: float = 0.0
    reset_at: int | None = None  # TCP RST once the body reaches this offset
    short_by: int = 0  # close (FIN) this many bytes before the announced length
    extra: int = 0  # write this many bytes past the announced length
    range_extra: int = 0  # a 206 carries this many bytes more than asked
    range_delay: float = 0.0  # sleep before answering a ranged request
    headers: dict[str, str] = field(default_factory=dict)  # more response headers


@dataclass
class Record:
    """One request as the origin saw it."""

    method: str
    path: str
    query: str
    host: str
    range: str | None
    if_none_match: str | None
    if_modified_since: str | None
    status: int = 0
    sent: int = 0
    completed: bool = False
    error: str | None = None


@dataclass
class State:
    """Behaviours and request records of this origin process."""

    root: Path
    behaviours: dict[str, Behaviour] = field(default_factory=dict)
    requests: dict[str, list[Record]] = field(default_factory=dict)
    flips: dict[str, int] = field(default_factory=dict)


STATE: web.AppKey[State] = web.AppKey("state", State)


def _body(state: State, path: str, how: Behaviour, host: str) -> bytes | None:
    if how.size is not None:
        return payload(host + path if how.by_host else path, how.size)
    relative = (how.source or path).lstrip("/")
    file = (state.root / relative).resolve()
    if state.root not in file.parents or not file.is_file():
        return None
    return file.read_bytes()


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """`[start, end)` of a single `bytes=` range, None for none or a malformed one."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].partition("-")
    try:
        if first == "":
            return max(size - int(last), 0), size
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
    except ValueError:
        return None
    return (start, end) if start < end else None


async def behave(request: web.Request) -> web.Response:
    """Set one path's behaviour."""
    spec: dict[str, Any] = await request.json()
    path = spec.pop("path")
    known = {f.name for f in fields(Behaviour)}
    if set(spec) - known:
        return web.Response(status=400, text=f"unknown fields {sorted(set(spec) - known)}\n")
    request.app[STATE].behaviours[path] = Behaviour(**spec)
    return web.Response(text="ok\n")


async def reset(request: web.Request) -> web.Response:
    """Forget every behaviour and record."""
    state = request.app[STATE]
    state.behaviours.clear()
    state.requests.clear()
    state.flips.clear()
    return web.Response(text="ok\n")


async def requests(request: web.Request) -> web.Response:
    """The records of one path."""
    records = request.app[STATE].requests.get(request.query["path"], [])
    return web.json_response([r.__dict__ for r in records])


def rst(request: web.Request) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), not a FIN."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def serve(request: web.Request) -> web.StreamResponse:
    """Answer a request for an object, misbehaving as told."""
    state = request.app[STATE]
    path = request.path
    how = state.behaviours.get(path, Behaviour())
    record = Record(
        request.method,
        path,
        request.query_string,
        request.headers.get("Host", ""),
        request.headers.get("Range"),
        request.headers.get("If-None-Match"),
        request.headers.get("If-Modified-Since"),
    )
    state.requests.setdefault(path, []).append(record)
    try:
        return await _answer(request, state, how, record)
    except (ConnectionError, asyncio.CancelledError) as exc:
        record.error = type(exc).__name__
        raise


async def _answer(
    request: web.Request, state: State, how: Behaviour, record: Record
) -> web.StreamResponse:
    path = request.path
    if how.headers_delay:
        await asyncio.sleep(how.headers_delay)
    if how.status != 200:
        record.status = how.status
        headers = {"Location": how.location} if how.location else {}
        record.completed = True
        return web.Response(status=how.status, text=f"status {how.status}\n", headers=headers)
    body = _body(state, path, how, request.headers.get("Host", ""))
    if body is None:
        record.status = 404
        record.completed = True
        return web.Response(status=404, text="not found\n")
    headers: dict[str, str] = {"Content-Type": content_type(path)}
    if how.etag == "content":
        headers["ETag"] = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
    elif how.etag == "flip":
        state.flips[path] = state.flips.get(path, 0) + 1
        headers["ETag"] = f'"flip-{state.flips[path]}"'
    elif how.etag != "none":
        headers["ETag"] = how.etag
    if how.last_modified:
        headers["Last-Modified"] = how.last_modified
    if how.cache_control:
        headers["Cache-Control"] = how.cache_control
    if how.age is not None:
        headers["Age"] = str(how.age)
    if how.ranges:
        headers["Accept-Ranges"] = "bytes"
    headers.update(how.headers)
    if how.conditional and not_modified(request, headers):
        record.status = 304
        record.completed = True
        return web.Response(status=304, headers=headers)
    status, start, end = 200, 0, len(body)
    wanted = _byte_range(request.headers.get("Range"), len(body)) if how.ranges else None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range not in (headers.get("ETag"), headers.get("Last-Modified")):
        wanted = None  # RFC 9110 If-Range: another version, so the whole of this one
    if wanted is not None:
        if how.range_delay:
            await asyncio.sleep(how.range_delay)
        status, (start, end) = 206, wanted
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(body)}"
        if how.range_extra:
            # More than the Content-Range says: the bytes after it, then filler past the end.
            body = body + b"\0" * how.range_extra
            end += how.range_extra
    record.status = status
    response = web.StreamResponse(status=status, headers=headers)
    if how.chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = end - start
    await response.prepare(request)
    if request.method == "HEAD":
        record.completed = True
        return response
    await _write_body(request, response, body[start:end], how, record, ranged=status == 206)
    return response


async def _write_body(
    request: web.Request,
    response: web.StreamResponse,
    body: bytes,
    how: Behaviour,
    record: Record,
    *,
    ranged: bool,
) -> None:
    # Faults apply to whole-object bodies; ranged reads stay healthy (but for range_extra).
    faults = not ranged
    limit = len(body) - (how.short_by if faults else 0)
    stalled = False
    position = 0
    while position < limit:
        if faults and how.reset_at is not None and position >= how.reset_at:
            await response.drain()
            await asyncio.sleep(0.05)  # let the bytes before the reset reach the peer
            record.error = "reset"
            rst(request)
            return
        if faults and how.stall_at is not None and position >= how.stall_at and not stalled:
            stalled = True
            await asyncio.sleep(how.stall)
        if faults and how.drip_after is not None and position >= how.drip_after:
            await asyncio.sleep(how.interval)
        stop = min(limit, position + how.chunk)
        for mark in (how.reset_at, how.stall_at, how.drip_after):
            if faults and mark is not None and position < mark < stop:
                stop = mark
        await response.write(body[position:stop])
        position = stop
        record.sent = position
    if faults and how.short_by:
        await response.drain()
        record.error = "short"
        if request.transport is not None:
            request.transport.close()
        return
    if faults and how.extra and request.transport is not None:
        await response.drain()
        request.transport.write(b"X" * how.extra)  # past Content-Length, behind aiohttp's back
    await response.write_eof()
    record.completed = True


def content_type(path: str) -> str:
    """The Content-Type a static server would give `path`."""
    if path.endswith(".flv"):
        return "video/x-flv"
    if path.endswith((".mp4", ".m4a", ".mov", ".3gp")):
        return "video/mp4"
    return "application/octet-stream"


def not_modified(request: web.Request, headers: dict[str, str]) -> bool:
    """Whether the request's If-None-Match / If-Modified-Since match these validators."""
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match is not None:
        tags = [tag.strip() for tag in if_none_match.split(",")]
        return "ETag" in headers and headers["ETag"] in tags
    since = request.headers.get("If-Modified-Since")
    return since is not None and since == headers.get("Last-Modified")


def make_app(root: Path) -> web.Application:
    """The origin application serving `root`."""
    app = web.Application()
    app[STATE] = State(root.resolve())
    app.router.add_post("/_control/behave", behave)
    app.router.add_post("/_control/reset", reset)
    app.router.add_get("/_control/requests", requests)
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


async def main(root: Path) -> None:
    """Listen on a free loopback port, say which, and serve until SIGTERM."""
    runner = web.AppRunner(make_app(root), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    asyncio.run(main(parser.parse_args().root))
