"""Sending a plan over HTTP: literals written, spans sent from the file with sendfile."""

from __future__ import annotations

import asyncio
import os
import time
from typing import IO

from aiohttp import web

from vodedge.edge.cache import Body
from vodedge.edge.origin import OriginError
from vodedge.media.plan import Plan, Span

# While a fill runs, send in steps of this size so clients get bytes as they arrive.
FOLLOW_STEP = 1 << 20
# Spans smaller than this are read and written in batches of BATCH_BYTES.
SENDFILE_MIN = 64 << 10
BATCH_BYTES = 256 << 10
# A client must take SEND_STEP bytes within SEND_TIMEOUT seconds (about 17 kB/s),
# or it is dropped: a stalled reader must not hold a connection forever.
SEND_STEP = 1 << 20
# The send_timeout setting of the application serving a request.
SEND_TIMEOUT: web.AppKey[float] = web.AppKey("send_timeout", float)


def send_timeout(request: web.BaseRequest) -> float:
    """How long a client may take to accept one step of its response."""
    return request.app.get(SEND_TIMEOUT, 60.0) if isinstance(request, web.Request) else 60.0


class Pacer:
    """Holds a response to `rate` bytes per second after its first `free` bytes (the
    `limit_rate` function)."""

    def __init__(self, rate: int, free: int = 0) -> None:
        self.rate = rate
        self.free = free
        self.started = time.monotonic()
        self.sent = 0

    @property
    def step(self) -> int:
        """How much to send between pauses: a quarter second's worth."""
        return max(self.rate // 4, 16 << 10)

    async def pace(self, sent: int) -> None:
        """Account for `sent` bytes and sleep until the rate allows more."""
        self.sent += sent
        if self.sent <= self.free:
            self.started = time.monotonic()  # the clock starts after the free prefix
            return
        ahead = (self.sent - self.free) / self.rate - (time.monotonic() - self.started)
        if ahead > 0:
            await asyncio.sleep(ahead)


def abort(request: web.BaseRequest) -> None:
    """Drop the connection so the client sees an incomplete body, never a short one."""
    if request.transport is not None:
        request.transport.abort()


async def _send_span(
    request: web.BaseRequest,
    response: web.StreamResponse,
    file: IO[bytes],
    body: Body,
    span: Span,
    pacer: Pacer | None,
) -> int:
    loop = asyncio.get_running_loop()
    offset, end = span.offset, span.end
    sent = 0
    while offset < end:
        if not body.complete and body.available <= offset:
            await body.wait_beyond(offset)
            continue
        step = min((end if body.complete else min(end, body.available)) - offset, SEND_STEP)
        if pacer is not None:
            step = min(step, pacer.step)
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        await asyncio.wait_for(response.drain(), send_timeout(request))
        # Over TLS the kernel cannot send the file, and asyncio's fallback would
        # seek and read the descriptor that readers of a growing fill share (a
        # dup): their bodies would mix. uvloop has no sendfile at all. Both copy
        # through user space with pread, in bounded pieces.
        copied = transport.get_extra_info("sslcontext") is not None
        if not copied:
            try:
                await asyncio.wait_for(
                    loop.sendfile(transport, file, offset, step), send_timeout(request)
                )
            except NotImplementedError:
                copied = True
        if copied:
            data = os.pread(body.fd, step, offset)
            if len(data) != step:
                raise OSError("the cached object is shorter than its plan") from None
            await asyncio.wait_for(response.write(data), send_timeout(request))
        offset += step
        sent += step
        if pacer is not None:
            await pacer.pace(step)
    return sent


async def send_plan(
    request: web.BaseRequest,
    response: web.StreamResponse,
    plan: Plan,
    body: Body,
    pacer: Pacer | None = None,
) -> int:
    """Prepare `response` (its headers set) and send the plan; bytes of body sent.

    A fill that fails mid-body, or a client that goes away, aborts the
    connection: with Content-Length announced, the client can tell the body is
    incomplete.
    """
    response.content_length = plan.size
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return 0
    sent = 0
    batch: list[bytes] = []
    batched = 0

    async def flush() -> None:
        nonlocal batch, batched, sent
        if batch:
            await asyncio.wait_for(response.write(b"".join(batch)), send_timeout(request))
            sent += batched
            if pacer is not None:
                await pacer.pace(batched)
            batch, batched = [], 0

    file = open(body.fd, "rb", buffering=0, closefd=False)  # noqa: SIM115 - fd owned by body
    try:
        for piece in plan.pieces:
            if isinstance(piece, Span) and piece.length >= SENDFILE_MIN:
                await flush()
                sent += await _send_span(request, response, file, body, piece, pacer)
                continue
            if isinstance(piece, Span):
                # Small spans (an audio track's chunks) are gathered and written
                # together: one sendfile each would cost far more than the copy.
                if body.available < piece.end:
                    await flush()  # what we have goes out before we wait for the fill
                    await body.ready(piece.end)
                data = os.pread(body.fd, piece.length, piece.offset)
                if len(data) != piece.length:
                    raise OSError("the cached object is shorter than its plan")
            else:
                data = piece
            batch.append(data)
            batched += len(data)
            if batched >= BATCH_BYTES:
                await flush()
        await flush()
        await response.write_eof()
    except (OriginError, OSError, TimeoutError):
        abort(request)
    finally:
        file.close()
    return sent


async def stream_growing(request: web.BaseRequest, response: web.StreamResponse, body: Body) -> int:
    """Send an object of unknown length as it arrives (chunked)."""
    await response.prepare(request)
    if request.method == "HEAD":
        await response.write_eof()
        return 0
    offset = 0
    try:
        while True:
            available = body.available
            if available > offset:
                chunk = os.pread(body.fd, min(available - offset, FOLLOW_STEP), offset)
                await response.write(chunk)
                offset += len(chunk)
                continue
            if body.complete:
                break
            await body.wait_beyond(offset)
        await response.write_eof()
    except (OriginError, OSError):
        abort(request)
    return offset
