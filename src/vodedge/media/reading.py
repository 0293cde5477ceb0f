"""The sans-IO read protocol: parsers yield `ReadRequest`s and receive bytes.

A parser is a generator; the caller (a file, a cache, an HTTP origin) answers
each request with the bytes found there, fewer only at the end of the source.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import NamedTuple, TypeVar

T = TypeVar("T")


class ReadRequest(NamedTuple):
    """Ask the caller for `length` bytes of the source at `offset`."""

    offset: int
    length: int


Reading = Generator[ReadRequest, bytes, T]


def run(parser: Reading[T], read_at: Callable[[int, int], bytes]) -> T:
    """Drive `parser` to completion with a synchronous `read_at(offset, length)`."""
    try:
        request = next(parser)
        while True:
            request = parser.send(read_at(request.offset, request.length))
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def run_bytes(parser: Reading[T], source: bytes) -> T:
    """Drive `parser` over a source held in memory."""
    view = memoryview(source)

    def read_at(offset: int, length: int) -> bytes:
        if offset < 0 or length < 0:
            raise ValueError(f"a parser asked for {length} bytes at offset {offset}")
        return bytes(view[offset : offset + length])

    return run(parser, read_at)
