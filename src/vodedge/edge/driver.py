"""Driving the media layer's sans-IO parsers with asynchronous reads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from vodedge.media.reading import Reading, ReadRequest

T = TypeVar("T")


async def run_async(
    parser: Reading[T],
    read_at: Callable[[int, int], Awaitable[bytes]],
    *,
    offload: int | None = None,
) -> T:
    """Drive `parser` to completion, answering each read request with `await read_at`.

    Answers of `offload` bytes or more are handed to the parser in a worker
    thread: the parsing they set off (a whole moov) then runs off the event loop.
    """
    try:
        request = next(parser)
        while True:
            data = await read_at(request.offset, request.length)
            if offload is None or len(data) < offload:
                request = parser.send(data)
                continue
            done, value = await asyncio.to_thread(_send, parser, data)
            if done:
                return value  # type: ignore[return-value]
            assert isinstance(value, ReadRequest)
            request = value
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _send(parser: Reading[T], data: bytes) -> tuple[bool, T | ReadRequest]:
    """One step of `parser`: (True, result) when it finished; StopIteration cannot
    cross a thread's future."""
    try:
        return False, parser.send(data)
    except StopIteration as stop:
        return True, stop.value
