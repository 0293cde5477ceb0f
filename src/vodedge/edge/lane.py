"""The lane: a request the stages would answer from memory, answered as it is parsed.

aiohttp's connection object queues each parsed request for a task that makes a request
object, runs the handler, and writes a response object through its writer: about a
third of a random clip's user-space CPU. `LaneHandler` is that connection object with
one shortcut. Bytes that are exactly one complete GET or HEAD, which `now` answers
without waiting (the edge's `answer_now`: a small HIT from memory, an MP4 clip or an
FLV seek from a remembered index), are answered where they arrive: status line and
headers in one write, a complete file's spans by `sendfile` on the socket, a client
too slow to take them continued in a task (the send timeout applies). Anything else
reaches aiohttp as before, on the same connection and in order; TLS connections never
take the lane.

It leans on aiohttp's connection internals (its parser class, keep-alive and shutdown
bookkeeping); `SUPPORTED` says whether the installed aiohttp has them, and without
them every request takes aiohttp's way.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.helpers import rfc822_formatted_time
from aiohttp.http import HttpRequestParser, HttpVersion11, RawRequestMessage
from aiohttp.streams import EMPTY_PAYLOAD
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest
from multidict import CIMultiDict

from vodedge.edge.deliver import COPY_STEP, SEND_STEP, FileSpan, Piece, sendfile_to

# The internals the lane shares with aiohttp's connection object (see the docstring).
_INTERNALS = (
    "_keepalive_timeout",
    "_next_keepalive_close_time",
    "_keepalive_handle",
    "_process_keepalive",
    "_request_in_progress",
    "_handler_waiter",
    "_messages",
    "_payload_parser",
    "_upgraded",
    "_force_close",
    "_close",
    "_read_bufsize",
    "_drain_helper",
)
SUPPORTED = all(hasattr(RequestHandler, name) for name in _INTERNALS)
_HEAD_END = b"\r\n\r\n"


@dataclass(slots=True)
class Ready:
    """An answer made without waiting: status, headers (final but Date), the body's bytes
    in memory and then a complete file's pieces, and what to do once it is over."""

    status: int
    headers: CIMultiDict[str]
    body: bytes
    pieces: Iterator[Piece] | None
    send_timeout: float
    # Called once: body bytes handed to the connection, and why the body was cut short
    # (None: whole); it records the request and releases what the answer holds.
    done: Callable[[int, str | None], None]


# The edge's question: the answer to a parsed request, or None (aiohttp's way).
Now = Callable[[BaseRequest], Ready | None]


class LaneServer(web.Server):
    """aiohttp's low-level server whose connections take the lane for what `now` answers."""

    def __init__(self, handler: Any, *, now: Now, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.now = now

    def __call__(self) -> RequestHandler:
        return LaneHandler(self, loop=self._loop, **self._kwargs)


class LaneHandler(RequestHandler):
    """aiohttp's connection object, with the lane in front of its queue of requests."""

    __slots__ = (
        "_boundary",
        "_held",
        "_lane_parser",
        "_lane_task",
        "_last",
        "_now",
        "_out",
        "active_at",
    )

    def __init__(self, manager: LaneServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._now: Now | None = manager.now if SUPPORTED else None
        self._lane_parser: HttpRequestParser | None = None
        # Whether the bytes read so far end between two requests, and their last four
        # (see _parse).
        self._boundary = True
        self._last = b""
        self._lane_task: asyncio.Task[None] | None = None
        self._held: list[bytes] = []
        # The socket's descriptor, for sendfile (-1: none); asked once per connection.
        self._out = -1
        # When the lane last answered (the idle sweep counts it as activity).
        self.active_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if transport.get_extra_info("sslcontext") is not None:
            self._now = None  # sendfile would bypass TLS
        else:
            self._out = _socket_fd(transport)

    def data_received(self, data: bytes) -> None:
        if self._lane_task is not None:
            self._held.append(data)  # reading is paused: only what was already read
            return
        now = self._now
        if now is None:
            super().data_received(data)
            return
        request = self._parse(data)
        ready = None
        if request is not None and self._idle():
            try:
                ready = now(request)
            except Exception:
                ready = None  # aiohttp's way answers it (and logs what went wrong there)
        if ready is None:
            super().data_received(data)  # parsed by aiohttp's own parser too
            return
        self._answer(ready)

    def _idle(self) -> bool:
        """Whether aiohttp holds no request of this connection (queued, running, or
        reading a body or an upgraded stream): an answer now cannot overtake one."""
        return not (
            self._messages
            or self._request_in_progress
            or self._payload_parser is not None
            or self._upgraded
            or self._force_close
            or self._close
            or self.transport is None
        )

    def _parse(self, data: bytes) -> BaseRequest | None:
        """The request `data` holds when it is exactly one complete request without a
        body, begun at a message boundary (None: aiohttp's way).

        The lane's parser sees every byte aiohttp's parser sees, and the bytes the lane
        answers, which aiohttp's never sees: both stay at the same place in the stream,
        so the lane never reads a request where aiohttp would read another (a header
        block split across reads, a body). Anything it cannot follow (a body, an
        upgrade, bytes it refuses) turns the lane off for the connection."""
        parser = self._lane_parser
        if parser is None:
            parser = self._lane_parser = HttpRequestParser(
                self,
                self._loop,
                self._read_bufsize,
                max_line_size=self.max_line_size,
                max_field_size=self.max_field_size,
                max_headers=self.max_headers,
                payload_exception=RequestPayloadError,
            )
        at_boundary = self._boundary
        try:
            messages, upgraded, _tail = parser.feed_data(data)
        except Exception:
            messages, upgraded = [], True
        if upgraded or any(payload is not EMPTY_PAYLOAD for _, payload in messages):
            self._now = self._lane_parser = None  # a stream the lane does not follow
            return None
        # A request without a body ends with its empty line: bytes that end with one
        # leave the parser between messages (blank lines between requests are skipped).
        self._last = last = (self._last + data[-4:])[-4:]
        self._boundary = last == _HEAD_END
        if not (at_boundary and self._boundary and len(messages) == 1):
            return None
        message = messages[0][0]
        if (
            not isinstance(message, RawRequestMessage)
            or message.method not in ("GET", "HEAD")
            or message.version != HttpVersion11
            or message.should_close
            or message.upgrade
            or message.chunked
        ):
            return None
        factory = self._request_factory
        if factory is None:
            return None
        return factory(message, EMPTY_PAYLOAD, self, _NO_WRITER, _NO_TASK)

    def _answer(self, ready: Ready) -> None:
        """Send `ready`: what the socket takes now, the rest from a task."""
        transport = self.transport
        assert transport is not None
        head = _head(ready)
        if head is None:
            ready.done(0, "unsafe_header")
            transport.abort()
            return
        sent = len(ready.body)
        pieces = ready.pieces
        if pieces is None:
            transport.write(head + ready.body)
        else:
            out = self._out
            try:
                # The head goes with the body's first bytes (a clip's moov): one send.
                head += ready.body
                first = next(pieces, None)
                if isinstance(first, bytes):
                    head += first
                    sent += len(first)
                    first = next(pieces, None)
                transport.write(head)
                piece = first
                while piece is not None:
                    if isinstance(piece, bytes):
                        transport.write(piece)
                        sent += len(piece)
                    else:
                        taken = 0
                        if out >= 0 and not transport.get_write_buffer_size():
                            taken = sendfile_to(out, piece.fd, piece.offset, piece.length)
                        sent += taken
                        if taken < piece.length:
                            left = piece.length - taken
                            rest = FileSpan(piece.fd, piece.offset + taken, left)
                            self._continue(ready, rest, pieces, sent, out)
                            return
                    piece = next(pieces, None)
            except OSError as exc:  # a cached file shorter than its plan, a reset
                sent = max(sent - transport.get_write_buffer_size(), 0)
                transport.abort()
                ready.done(sent, _why(exc))
                return
        self._answered()
        ready.done(sent, None)

    def _answered(self) -> None:
        """Keep-alive and idle bookkeeping as aiohttp's request loop does it."""
        loop = self._loop
        self.active_at = now = loop.time()
        if self._keepalive_timeout > 0:
            self._next_keepalive_close_time = now + self._keepalive_timeout
            if self._keepalive_handle is None:
                self._keepalive_handle = loop.call_at(
                    self._next_keepalive_close_time, self._process_keepalive
                )

    def _process_keepalive(self) -> None:
        # aiohttp closes a connection whose request loop waits for a message when the
        # keep-alive time is up; an answer the lane is still sending never queued one.
        if self._lane_task is not None:
            self._keepalive_handle = None  # armed again once the answer is over
            return
        super()._process_keepalive()

    def _continue(
        self, ready: Ready, span: FileSpan, pieces: Iterator[Piece], sent: int, out: int
    ) -> None:
        """Send the rest of the answer from a task; the connection reads nothing meanwhile
        (a pipelined request waits its turn), and counts as busy for shutdown."""
        transport = self.transport
        assert transport is not None
        transport.pause_reading()
        self._request_in_progress = True
        self._lane_task = self._loop.create_task(self._rest(ready, span, pieces, sent, out))

    async def _rest(
        self, ready: Ready, span: FileSpan, pieces: Iterator[Piece], sent: int, out: int
    ) -> None:
        aborted: str | None = None
        counted = [sent]
        try:
            await self._send_span(ready, span, out, counted)
            for piece in pieces:
                if isinstance(piece, bytes):
                    await self._write(ready, piece, counted)
                else:
                    await self._send_span(ready, piece, out, counted)
        except asyncio.CancelledError:
            aborted = "client_gone"
        except TimeoutError:
            aborted = "send_timeout"  # a reader that stopped taking bytes
        except OSError as exc:
            aborted = _why(exc)
        transport = self.transport
        if aborted is not None and transport is not None:
            counted[0] = max(counted[0] - transport.get_write_buffer_size(), 0)
            transport.abort()
        self._lane_task = None
        self._request_in_progress = False
        waiter = self._handler_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # a shutdown waiting for this answer
        ready.done(counted[0], aborted)
        if aborted is None and transport is not None and not transport.is_closing():
            self._answered()
            held, self._held = self._held, []
            transport.resume_reading()
            for data in held:
                self.data_received(data)

    async def _write(self, ready: Ready, data: bytes, counted: list[int]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("the client went away")
        transport.write(data)
        counted[0] += len(data)
        async with asyncio.timeout(ready.send_timeout):
            await self._drain_helper()

    async def _send_span(self, ready: Ready, span: FileSpan, out: int, counted: list[int]) -> None:
        """A file span: by sendfile while the socket takes it; when it would block, a
        piece copied through the transport, whose flow control then waits for the client
        (at most SEND_STEP within the send timeout)."""
        offset, end = span.offset, span.offset + span.length
        loop = self._loop
        deadline = loop.time() + ready.send_timeout
        step_end = offset + SEND_STEP
        while offset < end:
            transport = self.transport
            if transport is None or transport.is_closing():
                raise ConnectionResetError("the client went away")
            if offset >= step_end:
                deadline, step_end = loop.time() + ready.send_timeout, offset + SEND_STEP
            taken = 0
            if out >= 0 and not transport.get_write_buffer_size():
                taken = sendfile_to(out, span.fd, offset, end - offset)
            if taken:
                offset += taken
                counted[0] += taken
                await asyncio.sleep(0)  # a reader as fast as the disk must not hold the loop
                continue
            data = os.pread(span.fd, min(COPY_STEP, end - offset), offset)
            if not data:
                raise OSError("the cached object is shorter than its plan")
            transport.write(data)
            offset += len(data)
            counted[0] += len(data)
            async with asyncio.timeout_at(deadline):
                await self._drain_helper()

    def connection_lost(self, exc: BaseException | None) -> None:
        task = self._lane_task
        super().connection_lost(exc)
        if task is not None:
            task.cancel()


class _NoTask:
    """The request's task: the lane answers from the connection's callback, in no task."""


_NO_TASK: Any = _NoTask()
_NO_WRITER: Any = None


def _status_line(status: int) -> str:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"
    return line


_STATUS_LINES: dict[int, str] = {}


def _head(ready: Ready) -> bytes | None:
    """The status line and headers (None: a header that would split the response)."""
    headers = ready.headers
    lines = [_status_line(ready.status), *[f"{name}: {value}" for name, value in headers.items()]]
    if "Date" not in headers:
        lines.append(f"Date: {rfc822_formatted_time()}")
    block = "\r\n".join(lines)
    # Line breaks only between the lines: none inside a name or value.
    if block.count("\n") != len(lines) - 1 or block.count("\r") != len(lines) - 1:
        return None
    return (block + "\r\n\r\n").encode()


def _why(exc: OSError) -> str:
    """The access log's word for a body cut short by `exc` (as deliver's)."""
    if isinstance(exc, ConnectionError):
        return "client_gone"
    return f"io_error: {exc.strerror or exc}"


def _socket_fd(transport: asyncio.BaseTransport) -> int:
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())
