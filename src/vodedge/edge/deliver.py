"""Stage four, deliver: HTTP semantics of a representation, and the one body writer.

Every response body, whatever produced it (a plan over a cached file, a file
still filling, an FLV filter, an origin's range), goes through `_write`: one
place applies the send timeout, `limit_rate` pacing, counting and the abort
that tells a client its body is incomplete.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from dataclasses import dataclass, field
from typing import IO

from aiohttp import web
from multidict import CIMultiDict

from vodedge.edge.cache import Body
from vodedge.edge.http_semantics import Unsatisfiable, Validators, requested_range
from vodedge.edge.observe import Exchange, exchange_of, finish
from vodedge.edge.origin import OriginError, OriginResponse
from vodedge.media.errors import MediaError
from vodedge.media.plan import Plan, Span

# While a fill runs, send in steps of this size so clients get bytes as they arrive.
FOLLOW_STEP = 1 << 20
# Spans smaller than this are read and written in batches of BATCH_BYTES.
SENDFILE_MIN = 64 << 10
BATCH_BYTES = 256 << 10
# A client must take SEND_STEP bytes within SEND_TIMEOUT seconds (about 17 kB/s),
# or it is dropped: a stalled reader must not hold a connection forever.
SEND_STEP = 1 << 20
# Pieces copied through user space (TLS, uvloop) are this big: what a slow client has
# not taken yet stays in memory.
COPY_STEP = 64 << 10
# A write this much smaller than asyncio's and aiohttp's 64 kB high-water marks, into
# an empty transport buffer, cannot wait for the client.
QUICK_WRITE = 32 << 10
# A complete representation this small is handed to aiohttp whole (a `web.Response`: one
# send with its headers) when the connection holds nothing unsent (see QUICK_WRITE).
SMALL_BODY = 16 << 10


class _Response(web.StreamResponse):
    """Its headers go out with the first body bytes: a small response is one send (one
    wake-up of the client), not two."""

    _send_headers_immediately = False


def send_timeout(request: web.BaseRequest) -> float:
    """How long a client may take to accept one step of its response."""
    return exchange_of(request).send_timeout


@dataclass(frozen=True, slots=True)
class FileSpan:
    """Bytes of an open file, sent with sendfile when the length is announced."""

    fd: int
    offset: int
    length: int


Piece = bytes | FileSpan


@dataclass
class Pieces:
    """A body's pieces in order, and what to release once it is sent or abandoned.
    Pieces that never wait (a complete file's) come from a plain generator: no
    asynchronous generator to make, register with the loop and close per response."""

    pieces: AsyncGenerator[Piece, None] | Generator[Piece, None, None]
    release: Callable[[], Awaitable[None]] | None = None

    async def aclose(self) -> None:
        """Stop producing; release what was held (even if never iterated)."""
        pieces = self.pieces
        if isinstance(pieces, Generator):
            pieces.close()
        else:
            await pieces.aclose()
        if self.release is not None:
            await self.release()


# The pieces of bytes `[start, end)` of a representation (end None: all of it).
Opener = Callable[[int, int | None], Awaitable[Pieces]]


@dataclass
class Output:
    """A representation ready to send: headers, validators, length (None while
    unknown) and how to produce any range of its bytes."""

    headers: CIMultiDict[str]
    validators: Validators
    size: int | None
    open: Opener
    # False: Range is ignored (the bytes come as they are, from the start).
    ranges: bool = True
    # Files to close once the response is over (a rendition read instead of the object).
    holds: list[Body] = field(default_factory=list)
    # What else to release then (an origin response that may never have been read).
    releases: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Audio extraction: source bytes not sent per byte sent (counted on what is sent).
    saving: Callable[[], float] | None = None
    # All its bytes at once, for a complete representation of at most SMALL_BODY bytes.
    whole: Callable[[], bytes] | None = None

    async def aclose(self) -> None:
        """Release what this output holds."""
        for body in self.holds:
            body.close()
        for release in self.releases:
            await release()


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


async def deliver(
    request: web.BaseRequest, output: Output, rate: tuple[int, int] | None
) -> web.StreamResponse:
    """Answer with `output`: conditional requests, Range, HEAD, then its body."""
    headers = output.headers
    validators = output.validators
    if validators.etag:
        headers["ETag"] = validators.etag
    if not output.ranges:
        headers.pop("Accept-Ranges", None)
    if validators.not_modified(request):
        return web.Response(status=304, headers=headers)
    if output.size is None:
        headers.pop("Accept-Ranges", None)
        response = _Response(status=200, headers=headers)
        await _write(request, response, await output.open(0, None), rate)
        return response
    size = output.size
    try:
        wanted = requested_range(request, validators, size) if output.ranges else None
    except Unsatisfiable:
        headers["Content-Range"] = f"bytes */{size}"
        return web.Response(status=416, headers=headers)
    status = 200
    start, end = 0, size
    if wanted is not None:
        status = 206
        start, end = wanted
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if output.whole is not None and rate is None and idle(request):
        data = output.whole()
        if end - start != len(data):
            data = data[start:end]
        # aiohttp sends it with the headers in one write (no body for HEAD); the access
        # log counts it as it counts any web.Response's body.
        return web.Response(status=status, headers=headers, body=data)
    pieces = await output.open(start, end)
    response = _Response(status=status, headers=headers)
    response.content_length = end - start
    await _write(request, response, pieces, rate)
    return response


def idle(request: web.BaseRequest) -> bool:
    """Whether the connection is open and holds nothing unsent: a small body written now
    cannot wait for the client (no send timeout to arm)."""
    transport = request.transport
    return (
        transport is not None
        and not transport.is_closing()
        and not transport.get_write_buffer_size()
    )


async def _write(
    request: web.BaseRequest,
    response: web.StreamResponse,
    pieces: Pieces,
    rate: tuple[int, int] | None,
) -> None:
    """The one body writer: send every piece, or abort the connection. An origin that
    fails before the first piece (a fill broken before its first byte) is raised, not
    aborted: nothing was sent, so the client can still be told (a 502 and its code)."""
    exchange = exchange_of(request)
    pacer = None if rate is None else Pacer(*rate)
    files: dict[int, IO[bytes]] = {}
    first: Piece | None = None
    unsent = True
    source = pieces.pieces
    try:
        if request.method != "HEAD":
            if isinstance(source, Generator):
                first = next(source, None)
            else:
                first = await anext(source, None)
        unsent = False
        finish(request, response)
        await response.prepare(request)
        exchange.prepared = response
        if first is not None:
            # Announced lengths allow sendfile; chunked bodies need aiohttp's framing.
            direct = response.content_length is not None and not response.chunked
            if isinstance(source, Generator) and pacer is None and direct:
                await _file_pieces(request, response, exchange, first, source, files)
            else:
                await _piece(request, response, first, files, pacer, direct)
            if isinstance(source, Generator):
                for piece in source:
                    await _piece(request, response, piece, files, pacer, direct)
            else:
                async for piece in source:
                    await _piece(request, response, piece, files, pacer, direct)
        await response.write_eof()
    except ConnectionError:
        _abort(request, exchange, "client_gone")
    except TimeoutError:
        _abort(request, exchange, "send_timeout")  # a reader that stopped taking bytes
    except (OriginError, MediaError) as exc:
        if unsent and isinstance(exc, OriginError):
            raise
        _abort(request, exchange, exc.code)
    except OSError as exc:
        _abort(request, exchange, f"io_error: {exc.strerror or exc}")
    finally:
        for file in files.values():
            file.close()
        if isinstance(source, Generator) and pieces.release is None:
            source.close()  # what pieces.aclose does, without a coroutine per response
        else:
            await pieces.aclose()


async def _file_pieces(
    request: web.BaseRequest,
    response: web.StreamResponse,
    exchange: Exchange,
    first: Piece,
    rest: Generator[Piece, None, None],
    files: dict[int, IO[bytes]],
) -> None:
    """`_piece` for each piece of a complete file (unpaced, its length announced), `rest`
    left empty: a span the socket takes whole goes out by one sendfile from here (the
    usual case), the socket's descriptor asked once; anything else as `_piece` sends it."""
    transport = request.transport
    out = -1
    if transport is not None and transport.get_extra_info("sslcontext") is None:
        sock = transport.get_extra_info("socket")
        out = -1 if sock is None else sock.fileno()
    piece: Piece | None = first
    while piece is not None:
        if isinstance(piece, bytes):
            await _send(request, response, piece, None)
        else:
            sent = 0
            if (
                out >= 0
                and exchange.sent  # else headers are still held (see _sendfile)
                and piece.length <= SEND_STEP
                and transport is not None
                and not transport.is_closing()
                and not transport.get_write_buffer_size()
            ):
                sent = sendfile_to(out, piece.fd, piece.offset, piece.length)
                exchange.sent += sent
            if sent < piece.length:
                if sent:
                    await asyncio.sleep(0)  # as _sendfile does after a partial send
                    piece = FileSpan(piece.fd, piece.offset + sent, piece.length - sent)
                await _sendfile(request, response, files, piece, None)
        piece = next(rest, None)


async def _piece(
    request: web.BaseRequest,
    response: web.StreamResponse,
    piece: Piece,
    files: dict[int, IO[bytes]],
    pacer: Pacer | None,
    direct: bool,
) -> None:
    """Send one piece: a file span with sendfile when `direct`, else its bytes."""
    if isinstance(piece, FileSpan) and direct:
        await _sendfile(request, response, files, piece, pacer)
    else:
        data = piece if isinstance(piece, bytes) else _read(piece)
        await _send(request, response, data, pacer)


def _abort(request: web.BaseRequest, exchange: Exchange, why: str) -> None:
    """Drop the connection mid-body, so the client sees an incomplete body, never a
    short one that looks whole; bytes still queued in it were never sent."""
    exchange.aborted = why
    transport = request.transport
    if transport is not None:
        exchange.sent = max(exchange.sent - transport.get_write_buffer_size(), 0)
        transport.abort()


def _read(span: FileSpan) -> bytes:
    return _pread(span.fd, span.offset, span.length)


def _pread(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError("the cached object is shorter than its plan")
    return data


async def _send(
    request: web.BaseRequest, response: web.StreamResponse, data: bytes, pacer: Pacer | None
) -> None:
    step = len(data) if pacer is None else pacer.step
    for at in range(0, len(data), max(step, 1)):
        part = data[at : at + step]
        transport = request.transport
        if (
            len(part) < QUICK_WRITE
            and transport is not None
            and not transport.get_write_buffer_size()
        ):
            # Into an empty buffer, this little cannot reach the high-water mark that
            # makes a write wait: no timeout to arm (most small responses).
            await response.write(part)
        else:
            # asyncio.timeout, not wait_for: no task per write (wait_for makes one on 3.11).
            async with asyncio.timeout(send_timeout(request)):
                await response.write(part)
        exchange_of(request).sent += len(part)
        if pacer is not None:
            await pacer.pace(len(part))


async def _sendfile(
    request: web.BaseRequest,
    response: web.StreamResponse,
    files: dict[int, IO[bytes]],
    span: FileSpan,
    pacer: Pacer | None,
) -> None:
    """Send a file span: straight from the descriptor while the socket takes it, else
    through asyncio's sendfile (a file object made once per descriptor) or a copy."""
    exchange = exchange_of(request)
    offset, end = span.offset, span.offset + span.length
    while offset < end:
        step = min(end - offset, SEND_STEP)
        if pacer is not None:
            step = min(step, pacer.step)
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        timeout = exchange.send_timeout
        if not exchange.sent:
            # Headers still held for the first body bytes go out before the file's
            # (once body bytes were handed over, they went with them).
            await response.write(b"")
        tls = transport.get_extra_info("sslcontext") is not None
        sent = 0 if tls else _sendfile_now(transport, span.fd, offset, step)
        if sent:
            offset += sent
            exchange.sent += sent
            if pacer is not None:
                await pacer.pace(sent)
            elif offset < end:
                await asyncio.sleep(0)  # a reader as fast as the disk must not hold the loop
            continue
        async with asyncio.timeout(timeout):
            await response.drain()
        # Asked here, not per span: the running loop's lookup checks the process id
        # (a getpid system call) and the usual span never gets this far.
        loop = asyncio.get_running_loop()
        # Over TLS the kernel cannot send the file, and asyncio's fallback would
        # seek and read the descriptor that readers of a growing fill share (a
        # dup): their bodies would mix. uvloop has no sendfile at all. Both copy
        # through user space with pread, in bounded pieces.
        copied = tls
        if copied:
            # asyncio buffers 512 kB of a TLS connection's output before it pushes
            # back: a stalled reader would hold that much of ours.
            transport.set_write_buffer_limits(COPY_STEP)
        else:
            file = files.get(span.fd)
            if file is None:
                # The descriptor belongs to its Body; this wrapper must not close it.
                file = files[span.fd] = open(span.fd, "rb", buffering=0, closefd=False)  # noqa: SIM115
            try:
                async with asyncio.timeout(timeout):
                    await loop.sendfile(transport, file, offset, step)
            except NotImplementedError:
                copied = True
        if copied:
            # What is copied stays in memory until the client takes it: small pieces,
            # and the whole step still within the one timeout.
            deadline = loop.time() + timeout
            for at in range(offset, offset + step, COPY_STEP):
                data = _read(FileSpan(span.fd, at, min(COPY_STEP, offset + step - at)))
                async with asyncio.timeout_at(deadline):
                    await response.write(data)
        offset += step
        exchange.sent += step
        if pacer is not None:
            await pacer.pace(step)


def _sendfile_now(transport: asyncio.Transport, fd: int, offset: int, count: int) -> int:
    """Bytes of the file the socket takes at once, sent while the transport holds nothing
    unsent (0 when it would block): what asyncio's sendfile does after it pauses the
    transport, without the two epoll changes and the future it costs each call (nor a
    file object: its fstat and close, once per response)."""
    if transport.get_write_buffer_size():
        return 0
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    return sendfile_to(sock.fileno(), fd, offset, count)


def sendfile_to(out: int, fd: int, offset: int, count: int) -> int:
    """Bytes of the file the socket `out` takes at once (0 when it would block)."""
    try:
        return os.sendfile(out, fd, offset, count)
    except (BlockingIOError, InterruptedError):
        return 0
    except ConnectionError:
        raise
    except OSError:
        return 0  # a socket or file sendfile refuses: the usual path decides


# --- the bodies ------------------------------------------------------------------------


def plan_pieces(plan: Plan, body: Body) -> Pieces:
    """The pieces of `plan` over `body`, waiting for a fill (or a sparse object's fetches,
    started ahead of the reader in order) to reach each span."""
    if body.sparse is None and body.complete:
        return Pieces(complete_pieces(plan, body))
    body.prefetch((span.offset, span.end) for span in plan.spans())
    return Pieces(_plan_pieces(plan, body))


def complete_pieces(plan: Plan, body: Body) -> Generator[Piece, None, None]:
    """`_plan_pieces` over a complete file: nothing to wait for. A small span that
    nothing joins after the first piece (a clip's last chunk after its sendfile) is
    sent from the file too: no read and no copy of it."""
    batch: list[bytes] = []
    batched = 0
    held: Span | None = None  # such a span, not read yet (the batch is empty meanwhile)
    started = False
    for piece in plan.pieces:
        if isinstance(piece, Span):
            if piece.length >= SENDFILE_MIN:
                if held is not None:
                    yield FileSpan(body.fd, held.offset, held.length)
                    held = None
                if batch:
                    yield b"".join(batch)
                    batch, batched = [], 0
                started = True
                yield FileSpan(body.fd, piece.offset, piece.length)
                continue
            if started and not batch and held is None:
                held = piece
                continue
            data = _pread(body.fd, piece.offset, piece.length)  # see _plan_pieces
        else:
            data = piece
        if held is not None:
            batch.append(_pread(body.fd, held.offset, held.length))
            batched += held.length
            held = None
        batch.append(data)
        batched += len(data)
        if batched >= BATCH_BYTES:
            yield b"".join(batch)
            batch, batched = [], 0
            started = True
    if held is not None:
        yield FileSpan(body.fd, held.offset, held.length)
    if batch:
        yield b"".join(batch)


async def _plan_pieces(plan: Plan, body: Body) -> AsyncGenerator[Piece, None]:
    batch: list[bytes] = []
    batched = 0
    for piece in plan.pieces:
        if isinstance(piece, Span) and piece.length >= SENDFILE_MIN:
            if batch:
                yield b"".join(batch)
                batch, batched = [], 0
            offset, end = piece.offset, piece.end
            while offset < end:
                stop = end if body.complete else await body.readable(offset, end)
                yield FileSpan(body.fd, offset, stop - offset)
                offset = stop
            continue
        if isinstance(piece, Span):
            # Small spans (an audio track's chunks) are gathered and written
            # together: one sendfile each would cost far more than the copy.
            if not body.complete and _absent(body, piece):
                if batch:
                    yield b"".join(batch)  # what we have goes out before we wait for the fill
                    batch, batched = [], 0
                await body.ready_range(piece.offset, piece.end)
            data = _read(FileSpan(body.fd, piece.offset, piece.length))
        else:
            data = piece
        batch.append(data)
        batched += len(data)
        if batched >= BATCH_BYTES:
            yield b"".join(batch)
            batch, batched = [], 0
    if batch:
        yield b"".join(batch)


def _absent(body: Body, span: Span) -> bool:
    """Whether some of the span's bytes are not readable yet."""
    if body.sparse is not None:
        body.ahead(span.offset)
        return body.sparse.present_end(span.offset) < span.end
    return body.available < span.end


def bytes_pieces(data: bytes) -> Pieces:
    """A body already in memory, as one piece."""
    return Pieces(_one_piece(data))


async def _one_piece(data: bytes) -> AsyncGenerator[Piece, None]:
    yield data


def growing_pieces(body: Body) -> Pieces:
    """An object of unknown length, as the fill writes it."""
    return Pieces(_growing_pieces(body))


async def _growing_pieces(body: Body) -> AsyncGenerator[Piece, None]:
    offset = 0
    while True:
        available = body.available
        if available > offset:
            chunk = os.pread(body.fd, min(available - offset, FOLLOW_STEP), offset)
            if not chunk:
                raise OSError("the cached object is shorter than written")
            offset += len(chunk)
            yield chunk
            continue
        if body.complete:
            return
        await body.wait_beyond(offset)


def upstream_pieces(upstream: OriginResponse, length: int | None) -> Pieces:
    """Exactly `length` bytes of an origin's response (short is an error), or all of
    it when the length is unknown."""
    return Pieces(_upstream_pieces(upstream, length), upstream.aclose)


async def _upstream_pieces(
    upstream: OriginResponse, length: int | None
) -> AsyncGenerator[Piece, None]:
    sent = 0
    async for chunk in upstream.body:
        if length is not None:
            chunk = chunk[: length - sent]
        if chunk:
            sent += len(chunk)
            yield chunk
    if length is not None and sent != length:
        raise OriginError(502, "origin_short", "the origin's body ended early")
