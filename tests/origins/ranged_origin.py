"""A static-file origin that logs every byte range it serves and misbehaves on demand.

Run as its own process, `python -m origins.ranged_origin --root DIR`: it prints
`PORT <n>` once it listens on 127.0.0.1. Every path serves the file of that name
under the root as a static file server does (RFC 9110 `Range` with 206 and 416,
`If-Range`, `ETag` and `Last-Modified` made from the file's mtime and size as
nginx makes them, 304 on a matching `If-None-Match` / `If-Modified-Since`,
`HEAD`), streamed from disk so that a 1 GB file costs no memory. A request with
several ranges gets a `multipart/byteranges` 206 of the satisfiable ones in the order
asked (nginx's way), or a single-part 206 when only one is satisfiable.

The control API (`RangedOrigin` below drives it from tests):

    POST /_control/faults  {"path": "/a.mp4", "faults": [{"kind": "reset", "after": 1000}]}
    GET  /_control/log?path=/a.mp4&wait=10   every response to that path so far (see
                                      `Served`), once all have ended (or after `wait` s)
    POST /_control/reset              forget every fault, log entry and version

Faults are per path (see `Fault` for the kinds); each counts the requests it
applies to (`requests`: ranged ones by default), lets `skip` of them pass healthy
and then misbehaves on `count` of them (all later ones when `count` is None).
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from aiohttp import web

from origins.faulty import content_type, not_modified, rst
from origins.process import start_origin, stop_origin

CHUNK = 64 << 10
KINDS = ("reset", "short", "content_range", "change", "full", "multi_whole", "unsatisfiable",
         "slow", "delay")  # fmt: skip


@dataclass
class Fault:
    """One way a path misbehaves, and on which of its requests."""

    # reset: TCP RST after `after` body bytes; short: FIN after `after` body bytes;
    # content_range: a 206 for another range than asked (the deltas below), its bytes
    # as announced; change: from this request on, the object is a new version (new
    # ETag and Last-Modified; the bytes of `source` if given); full: 200 and the whole
    # object, ignoring Range; multi_whole: the same for a request of several ranges
    # only (an origin without multipart/byteranges); unsatisfiable: 416 whatever was
    # asked; slow: the body at
    # `rate` bytes/s; delay: `seconds` before the status line.
    kind: str
    requests: str = "ranged"  # which requests count: "ranged" (with Range), "whole", "all"
    skip: int = 0  # counted requests that pass healthy first
    count: int | None = None  # counted requests that misbehave then; None: all later ones
    after: int = 0  # reset, short
    start_delta: int = 0  # content_range: first byte sent and announced = asked + this
    end_delta: int = 0  # content_range: last byte sent and announced = asked + this
    total_delta: int = 0  # content_range: the announced total = the real one + this
    rate: int = 0  # slow
    seconds: float = 0.0  # delay
    source: str | None = None  # change: the new version's file, relative to the root
    seen: int = 0  # counted requests so far (kept by the origin)

    def check(self) -> None:
        """Raise ValueError for a fault that cannot be applied."""
        if self.kind not in KINDS:
            raise ValueError(f"unknown kind {self.kind!r}, not one of {', '.join(KINDS)}")
        if self.requests not in ("ranged", "whole", "all"):
            raise ValueError(f"requests must be ranged, whole or all, not {self.requests!r}")
        if self.kind == "slow" and self.rate <= 0:
            raise ValueError("slow needs a positive rate")


@dataclass
class Served:
    """One response, as the origin sent it (`sent`: body bytes handed to the socket)."""

    method: str
    path: str
    range: str | None  # the Range header asked
    if_range: str | None
    status: int = 0
    start: int = 0  # the body's first byte in the object
    end: int = 0  # one past its last byte (as announced)
    sent: int = 0
    completed: bool = False  # every announced byte was sent
    # [start, end, bytes of it sent] per part of the body: one for a 200 or a single
    # range, several for multipart/byteranges (whose framing `sent` counts too).
    parts: list[list[int]] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)  # kinds applied to this response
    etag: str = ""
    version: int = 0
    peer: int = 0  # the client's port: one per connection
    began: float = 0.0  # time.time() at the request
    ended: float = 0.0  # time.time() when the response ended (sent, reset or aborted)
    error: str | None = None


@dataclass
class State:
    """Faults, versions and the log of this origin process."""

    root: Path
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    versions: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    log: dict[str, list[Served]] = field(default_factory=dict)


STATE: web.AppKey[State] = web.AppKey("ranged_state", State)


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """`[start, end)` of a single `bytes=` range; "unsatisfiable"; None to ignore it.

    RFC 9110 14.1.2: `first-last`, `first-` and `-suffix`; a last byte beyond the
    end is clipped; a first byte at or beyond it (or a zero suffix) is unsatisfiable;
    invalid syntax is ignored (the whole object is sent); `parse_ranges` splits
    several ranges.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:
        if not last.isdigit():
            return None
        suffix = int(last)
        return (size - min(suffix, size), size) if suffix > 0 and size > 0 else "unsatisfiable"
    if not first.isdigit() or (last and not last.isdigit()):
        return None
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        return "unsatisfiable"
    return start, size if not last else min(int(last) + 1, size)


def parse_ranges(header: str, size: int) -> list[tuple[int, int]] | str | None:
    """The satisfiable `[start, end)` ranges of a `bytes=` header, in the order asked;
    "unsatisfiable" when none is; None to ignore the header (invalid syntax)."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    found: list[tuple[int, int]] = []
    for one in spec.split(","):
        got = parse_range(f"bytes={one.strip()}", size)
        if got is None:
            return None
        if isinstance(got, tuple):
            found.append(got)
    return found or "unsatisfiable"


def _applies(fault: Fault, ranged: bool) -> bool:
    """Count this request for `fault` if it is of its kind; whether the fault fires."""
    if fault.requests != "all" and (fault.requests == "ranged") != ranged:
        return False
    fault.seen += 1
    if fault.kind == "change":
        return fault.seen == fault.skip + 1
    return fault.seen > fault.skip and (
        fault.count is None or fault.seen <= fault.skip + fault.count
    )


def _validators(file: Path, version: int) -> tuple[str, str]:
    """ETag and Last-Modified of a file as nginx makes them, a version apart."""
    stat = file.stat()
    mtime = int(stat.st_mtime) + version
    etag = f'"{mtime:x}-{stat.st_size:x}' + (f'-v{version}"' if version else '"')
    return etag, email.utils.formatdate(mtime, usegmt=True)


async def set_faults(request: web.Request) -> web.Response:
    """Replace one path's faults."""
    spec: dict[str, Any] = await request.json()
    known = {f.name for f in fields(Fault)} - {"seen"}
    faults = []
    try:
        for item in spec["faults"]:
            unknown = set(item) - known
            if unknown:
                raise ValueError(f"unknown fields {sorted(unknown)}")
            fault = Fault(**item)
            fault.check()
            faults.append(fault)
    except (KeyError, TypeError, ValueError) as exc:
        return web.Response(status=400, text=f"bad faults: {exc}\n")
    request.app[STATE].faults[spec["path"]] = faults
    return web.Response(text="ok\n")


async def reset(request: web.Request) -> web.Response:
    """Forget every fault, version and log entry."""
    state = request.app[STATE]
    state.faults.clear()
    state.versions.clear()
    state.log.clear()
    return web.Response(text="ok\n")


async def log(request: web.Request) -> web.Response:
    """The log of one path (all paths without `path`), once every response in it has
    ended or `wait` seconds have passed (a client may have the last byte before the
    origin has finished its bookkeeping)."""
    state = request.app[STATE]
    path = request.query.get("path")
    deadline = time.monotonic() + float(request.query.get("wait", "0"))
    while True:
        entries = state.log.get(path, []) if path else [s for v in state.log.values() for s in v]
        if all(s.ended for s in entries) or time.monotonic() >= deadline:
            return web.json_response([asdict(s) for s in entries])
        await asyncio.sleep(0.01)


async def serve(request: web.Request) -> web.StreamResponse:
    """Answer a request for a file, misbehaving as told."""
    state = request.app[STATE]
    path = request.path
    peer = request.transport.get_extra_info("peername") if request.transport else None
    served = Served(
        request.method,
        path,
        request.headers.get("Range"),
        request.headers.get("If-Range"),
        peer=int(peer[1]) if peer else 0,
        began=time.time(),
    )
    state.log.setdefault(path, []).append(served)
    try:
        return await _answer(request, state, served)
    except (ConnectionError, asyncio.CancelledError) as exc:
        served.error = type(exc).__name__
        raise
    finally:
        served.ended = time.time()


def _file(state: State, relative: str) -> Path | None:
    file = (state.root / relative.lstrip("/")).resolve()
    return file if state.root in file.parents and file.is_file() else None


async def _answer(request: web.Request, state: State, served: Served) -> web.StreamResponse:
    path = request.path
    ranged = "Range" in request.headers and request.method in ("GET", "HEAD")
    active = [f for f in state.faults.get(path, []) if _applies(f, ranged)]
    kinds = {f.kind: f for f in active}
    served.faults = [f.kind for f in active]
    if "change" in kinds:
        version = state.versions.get(path, (0, None))[0] + 1
        state.versions[path] = (version, kinds["change"].source)
    version, source = state.versions.get(path, (0, None))
    served.version = version
    if "delay" in kinds:
        await asyncio.sleep(kinds["delay"].seconds)
    file = _file(state, source or path)
    if file is None or request.method not in ("GET", "HEAD"):
        served.status = 404 if file is None else 405
        served.completed = True
        return web.Response(status=served.status, text="not found\n" if file else "no\n")
    size = file.stat().st_size
    etag, modified = _validators(file, version)
    served.etag = etag
    headers = {
        "Content-Type": content_type(path),
        "ETag": etag,
        "Last-Modified": modified,
        "Accept-Ranges": "bytes",
    }
    if not_modified(request, headers):
        served.status = 304
        served.completed = True
        return web.Response(status=304, headers=headers)
    wanted = parse_ranges(request.headers["Range"], size) if ranged else None
    if_range = request.headers.get("If-Range")
    if wanted is not None and if_range is not None and if_range not in (etag, modified):
        wanted = None  # RFC 9110 13.1.5: another version, so the whole of this one
    if "unsatisfiable" in kinds or wanted == "unsatisfiable":
        served.status = 416
        served.completed = True
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers, text="range not satisfiable\n")
    if "full" in kinds or (isinstance(wanted, list) and len(wanted) > 1 and "multi_whole" in kinds):
        wanted = None
    parts = [(0, size)] if not isinstance(wanted, list) else wanted
    if "content_range" in kinds and isinstance(wanted, list):
        lie = kinds["content_range"]
        parts = [
            (low, min(max(high + lie.end_delta, low + 1), size))
            for low, high in ((min(max(a + lie.start_delta, 0), size - 1), b) for a, b in parts)
        ]
    total = size + (kinds["content_range"].total_delta if "content_range" in kinds else 0)
    segments: list[bytes | tuple[int, int]] = []
    if not isinstance(wanted, list):
        status = 200
        segments.append((0, size))
    elif len(parts) == 1:
        status = 206
        headers["Content-Range"] = f"bytes {parts[0][0]}-{parts[0][1] - 1}/{total}"
        segments.append(parts[0])
    else:
        # RFC 9110 14.6: each part with its own Content-Range, in the order asked.
        status = 206
        boundary = f"ranged-origin-{time.monotonic_ns():x}"
        kind = headers["Content-Type"]
        headers["Content-Type"] = f"multipart/byteranges; boundary={boundary}"
        for low, high in parts:
            head = f"\r\n--{boundary}\r\nContent-Type: {kind}\r\n"
            head += f"Content-Range: bytes {low}-{high - 1}/{total}\r\n\r\n"
            segments += [head.encode(), (low, high)]
        segments.append(f"\r\n--{boundary}--\r\n".encode())
    served.status = status
    served.start = min(low for low, _ in parts)
    served.end = max(high for _, high in parts)
    served.parts = [[low, high, 0] for low, high in parts]
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = sum(len(s) if isinstance(s, bytes) else s[1] - s[0] for s in segments)
    await response.prepare(request)
    if request.method == "HEAD":
        served.completed = True
        return response
    await _send(request, response, file, segments, kinds, served)
    return response


async def _send(
    request: web.Request,
    response: web.StreamResponse,
    file: Path,
    segments: list[bytes | tuple[int, int]],
    kinds: dict[str, Fault],
    served: Served,
) -> None:
    """Write the body's segments (literal bytes, or `(start, end)` of the file), cut
    after `after` bytes of the body for reset/short, paced for slow."""
    length = sum(len(s) if isinstance(s, bytes) else s[1] - s[0] for s in segments)
    cut = kinds.get("reset") or kinds.get("short")
    stop = length if cut is None else min(length, cut.after)
    slow = kinds.get("slow")
    chunk = CHUNK if slow is None else max(1, min(CHUNK, slow.rate // 20))
    part = -1
    with file.open("rb") as source:
        for segment in segments:
            if served.sent >= stop:
                break
            if isinstance(segment, bytes):
                data = segment[: stop - served.sent]
                await _write(response, data, slow)
                served.sent += len(data)
                continue
            part += 1
            at, end = segment[0], min(segment[1], segment[0] + stop - served.sent)
            while at < end:
                data = os.pread(source.fileno(), min(chunk, end - at), at)
                if not data:
                    break  # the file shrank under us
                await _write(response, data, slow)
                at += len(data)
                served.sent += len(data)
                served.parts[part][2] += len(data)
    if cut is not None and stop < length:
        await response.drain()
        await asyncio.sleep(0.05)  # let the bytes before the cut reach the peer
        served.error = cut.kind
        if cut.kind == "reset":
            rst(request)
        elif request.transport is not None:
            request.transport.close()
        return
    await response.write_eof()
    served.completed = served.sent == length


async def _write(response: web.StreamResponse, data: bytes, slow: Fault | None) -> None:
    if slow is not None:
        # Before the write: n bytes reach the client no sooner than n / rate s.
        await asyncio.sleep(len(data) / slow.rate)
    await response.write(data)


def make_app(root: Path) -> web.Application:
    """The origin application serving `root`."""
    app = web.Application()
    app[STATE] = State(root.resolve())
    app.router.add_post("/_control/faults", set_faults)
    app.router.add_post("/_control/reset", reset)
    app.router.add_get("/_control/log", log)
    app.router.add_route("*", "/{tail:.*}", serve)
    return app


async def main(root: Path, port: int) -> None:
    """Listen on 127.0.0.1 (`port`, 0 for any free one), say which, serve until SIGTERM."""
    runner = web.AppRunner(make_app(root), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    sys.stdout.write(f"PORT {runner.addresses[0][1]}\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


# --- the client side: start one, set its faults, read its log ------------------------------


class RangedOrigin:
    """`python -m origins.ranged_origin` in its own process, and its control API."""

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
        """Start it on a free loopback port."""
        self.proc, self.port = start_origin(
            "origins.ranged_origin", ["--root", str(self.root)], self.work / "ranged.log"
        )

    def stop(self) -> None:
        """Stop it."""
        if self.proc is not None:
            stop_origin(self.proc)

    def __enter__(self) -> RangedOrigin:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def faults(self, path: str, *faults: dict[str, Any]) -> None:
        """Make `path` misbehave as `faults` say (see `Fault`); none makes it healthy."""
        self._post("/_control/faults", {"path": path, "faults": list(faults)})

    def reset(self) -> None:
        """Forget every fault, version and log entry."""
        self._post("/_control/reset", {})

    def log(self, path: str | None = None, wait: float = 10.0) -> list[Served]:
        """Every response to `path` (or to any path) so far, in the order they began, once
        all have ended (or `wait` seconds have passed: 0 for how things stand now)."""
        query = {"wait": str(wait)} | ({} if path is None else {"path": path})
        target = f"{self.url}/_control/log?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(target, timeout=wait + 10) as reply:
            return [Served(**entry) for entry in json.loads(reply.read())]

    def sent(self, path: str | None = None) -> int:
        """Body bytes sent so far for `path` (or for every path)."""
        return sum(s.sent for s in self.log(path))

    def ranges(self, path: str) -> list[tuple[int, int]]:
        """`[start, end)` of every GET body sent for `path` (206 or 200), in order."""
        return [
            (part[0], part[1])
            for s in self.log(path)
            if s.method == "GET" and s.status in (200, 206)
            for part in s.parts
        ]

    def covered(self, path: str) -> list[tuple[int, int]]:
        """The union of the object's bytes sent so far, as sorted `[start, end)` extents
        (a response cut short counts what it sent)."""
        spans = sorted(
            (part[0], part[0] + part[2])
            for s in self.log(path)
            if s.method == "GET"
            for part in s.parts
            if part[2]
        )
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    def _post(self, target: str, body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url + target, data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, type=Path)
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    options = parser.parse_args()
    asyncio.run(main(options.root, options.port))
