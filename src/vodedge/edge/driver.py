"""Driving the media layer's sans-IO parsers with asynchronous reads."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from vodedge.media.reading import Reading

T = TypeVar("T")


async def run_async(parser: Reading[T], read_at: Callable[[int, int], Awaitable[bytes]]) -> T:
    """Drive `parser` to completion, answering each read request with `await read_at`."""
    try:
        request = next(parser)
        while True:
            request = parser.send(await read_at(request.offset, request.length))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
