"""Staying up when descriptors run short: the descriptor limit, a connection cap per
worker that refuses with 503, and logs that cannot flood."""

from __future__ import annotations

import asyncio
import logging
import resource
import sys
import time
from typing import Any, cast

from aiohttp import web

from vodedge.edge.origin import EXHAUSTED

__all__ = ["EXHAUSTED", "CappedSite", "RateLimitedLog"]
# Descriptors a worker keeps for itself (index, logs, origin sockets, fills) and what
# one client connection may hold (its socket and a cached file).
RESERVED_FDS = 128
FDS_PER_CONNECTION = 2
# A refused client gets this long to send its request before the 503 goes out (sent
# before the request arrives, the client's request would meet a reset, not the 503).
REFUSAL_WAIT = 1.0
# Refusals being answered at once; past this, new connections are dropped outright.
MAX_REFUSING = 256
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"X-Vodedge-Error: overloaded\r\nRetry-After: 1\r\nCache-Control: no-store\r\n"
    b"Connection: close\r\nContent-Length: 39\r\n\r\n"
    b"the node is at its connection limit\r\n\r\n"
)


def raise_descriptor_limit() -> int:
    """Raise this process's soft descriptor limit to the hard one; the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def connection_cap(configured: int) -> int:
    """The client connections one worker keeps: the setting, or what the descriptor
    limit allows with RESERVED_FDS spare; never more than the limit allows."""
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    fits = max((soft - RESERVED_FDS) // FDS_PER_CONNECTION, 8)
    return min(configured, fits) if configured else fits


class RateLimitedLog:
    """One stderr line per cause per second at most; the rest are counted and the count
    goes out with the next line of that cause."""

    def __init__(self, prefix: str, interval: float = 1.0) -> None:
        self.prefix = prefix
        self.interval = interval
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def write(self, cause: str, line: str) -> bool:
        """Log `line` unless `cause` was logged in the last interval; whether it was."""
        now = time.monotonic()
        if now - self._last.get(cause, -self.interval) < self.interval:
            self._dropped[cause] = self._dropped.get(cause, 0) + 1
            return False
        if len(self._last) > 1024:  # causes are few; this bounds a pathological run
            self._last.clear()
        self._last[cause] = now
        dropped = self._dropped.pop(cause, 0)
        more = f" ({dropped} more like it not logged)" if dropped else ""
        text = f"{self.prefix}: {line}{more}".replace("\n", " ")
        try:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
        except OSError:
            pass  # stderr gone or full: nothing better to do
        return True


def install_loop_log(loop: asyncio.AbstractEventLoop, log: RateLimitedLog) -> None:
    """Route the event loop's error reports (accept failures, stray task errors)
    through `log`: one line each, no traceback, at most one per second per cause."""

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "event loop error"))
        exc = context.get("exception")
        cause = message if exc is None else f"{message}|{type(exc).__name__}"
        detail = message if exc is None else f"{message}: {type(exc).__name__}: {exc}"
        log.write(cause, detail)

    loop.set_exception_handler(handler)
    # Libraries' own log records (asyncio's "socket.send() raised exception.", aiohttp's
    # warnings) take the same way: with no handler, Python prints each one to stderr.
    root = logging.getLogger()
    root.handlers[:] = [_LimitedHandler(log)]


class _LimitedHandler(logging.Handler):
    """A logging handler that writes through a RateLimitedLog, one line per record."""

    def __init__(self, log: RateLimitedLog) -> None:
        super().__init__(logging.WARNING)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        cause = f"{record.name}|{record.msg}"
        line = f"{record.name}: {record.getMessage()}"
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            line += f": {type(error).__name__}: {error}"
        self.log.write(cause, line)


class _Refusal(asyncio.Protocol):
    """A connection over the cap: read what the client sends, answer 503, close."""

    refusing = 0

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        if _Refusal.refusing >= MAX_REFUSING:
            self.transport.abort()
            return
        _Refusal.refusing += 1
        self.timer = asyncio.get_running_loop().call_later(REFUSAL_WAIT, self.answer)

    def data_received(self, data: bytes) -> None:
        if b"\r\n\r\n" in data or b"\n\n" in data:
            self.answer()

    def answer(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(REFUSAL)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            _Refusal.refusing -= 1
        self.transport = None


class CappedSite(web.SockSite):
    """A listener that keeps at most `cap` client connections: past it, the longest-idle
    one makes room, or the newcomer is answered 503."""

    def __init__(
        self,
        runner: web.BaseRunner,
        sock: Any,
        cap: int,
        handshake_timeout: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, sock, **kwargs)
        self.cap = cap
        self.refused = 0
        # A TLS connection is no handler (not capped, not swept) until its handshake
        # is done: a client silent before that is dropped after this long.
        self.handshake_timeout = handshake_timeout

    async def start(self) -> None:
        """Listen, with the cap applied to each accepted connection."""
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None

        def factory() -> asyncio.Protocol:
            if len(server.connections) < self.cap or _make_room(server.connections):
                return server()
            self.refused += 1
            return _Refusal()

        loop = asyncio.get_running_loop()
        if self._ssl_context is None:
            self._server = await loop.create_server(factory, sock=self._sock, backlog=self._backlog)
        else:
            self._server = await loop.create_server(
                factory,
                sock=self._sock,
                ssl=self._ssl_context,
                backlog=self._backlog,
                ssl_handshake_timeout=self.handshake_timeout,
            )


def _make_room(connections: list[Any]) -> bool:
    """Close the longest-connected connection with no request in progress, if any."""
    for handler in connections:
        if not getattr(handler, "_request_in_progress", True) and handler.transport is not None:
            handler.force_close()
            return True
    return False
