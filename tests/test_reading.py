"""Tests of the sans-IO read protocol: `reading.run` and `reading.run_bytes`."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.media.errors import MalformedMedia, MediaError
from vodedge.media.reading import Reading, ReadRequest, run, run_bytes

# Derandomized and without the example database, so CI runs the same examples every time.
settings.register_profile(
    "vodedge-reading", max_examples=300, deadline=None, derandomize=True, database=None
)
READING_SETTINGS = settings.get_profile("vodedge-reading")


def echo(requests: list[ReadRequest]) -> Reading[list[bytes]]:
    """A parser that asks for `requests` in turn and returns what it was given."""
    got: list[bytes] = []
    for request in requests:
        got.append((yield request))
    return got


requests_strategy = st.lists(
    st.builds(ReadRequest, st.integers(0, 600), st.integers(0, 300)), max_size=20
)


@READING_SETTINGS
@given(st.binary(max_size=500), requests_strategy)
def test_run_bytes_answers_each_request(source: bytes, requests: list[ReadRequest]) -> None:
    """Each request gets the bytes at its offset: fewer at the end, none past it."""
    got = run_bytes(echo(requests), source)
    assert got == [source[r.offset : r.offset + r.length] for r in requests]
    for request, data in zip(requests, got, strict=True):
        assert type(data) is bytes
        # Short only where the source ends: the whole tail is given.
        if len(data) < request.length:
            assert request.offset + len(data) == max(len(source), request.offset)


@READING_SETTINGS
@given(requests_strategy, st.data())
def test_run_passes_reads_through_untouched(
    requests: list[ReadRequest], data: st.DataObject
) -> None:
    """`run` hands the parser exactly what `read_at` returned, short reads included."""
    answers = [data.draw(st.binary(max_size=r.length)) for r in requests]
    asked: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        asked.append((offset, length))
        return answers[len(asked) - 1]

    assert run(echo(requests), read_at) == answers
    assert asked == [(r.offset, r.length) for r in requests]


def test_parser_without_requests_never_reads() -> None:
    """A parser that needs nothing returns at once and the reader is not called."""

    def nothing() -> Reading[str]:
        return "done"
        yield ReadRequest(0, 0)  # unreachable; makes this a generator

    def read_at(offset: int, length: int) -> bytes:
        raise AssertionError("read_at must not be called")

    assert run(nothing(), read_at) == "done"
    assert run_bytes(nothing(), b"") == "done"


def test_return_value_after_reads() -> None:
    """The parser's return value is `run`'s result, whatever its type."""

    def total() -> Reading[int]:
        head = yield ReadRequest(0, 4)
        tail = yield ReadRequest(int.from_bytes(head, "big"), 2)
        return int.from_bytes(tail, "big")

    assert run_bytes(total(), b"\x00\x00\x00\x06zz\x01\x02") == 0x0102


def test_short_read_at_end_reaches_parser() -> None:
    """A request running past the end gets the tail; one past the end gets b''."""

    def parser() -> Reading[tuple[bytes, bytes, bytes]]:
        a = yield ReadRequest(6, 100)
        b = yield ReadRequest(8, 1)
        c = yield ReadRequest(10**12, 8)
        return a, b, c

    assert run_bytes(parser(), b"01234567") == (b"67", b"", b"")


def test_parser_errors_propagate_unchanged() -> None:
    """A typed error raised mid-parse reaches the caller with its type and message."""

    def parser() -> Reading[None]:
        data = yield ReadRequest(0, 8)
        raise MalformedMedia(f"bad header {data[:2]!r}")

    with pytest.raises(MalformedMedia, match="bad header") as info:
        run_bytes(parser(), b"xy")
    assert isinstance(info.value, MediaError)
    assert info.value.code == "malformed_media"


def test_reader_errors_propagate() -> None:
    """An I/O failure in `read_at` is not turned into a media error."""

    def read_at(offset: int, length: int) -> bytes:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        run(echo([ReadRequest(0, 1)]), read_at)


def test_read_request_is_frozen() -> None:
    """Requests are values: equal by content and immutable."""
    request = ReadRequest(3, 4)
    assert request == ReadRequest(3, 4)
    with pytest.raises(AttributeError):
        request.offset = 5  # type: ignore[misc]


@pytest.mark.parametrize("request_", [ReadRequest(-4, 100), ReadRequest(-1, 1), ReadRequest(2, -1)])
def test_run_bytes_refuses_negative_requests(request_: ReadRequest) -> None:
    """A negative offset or length (a parser bug) is a ValueError, not bytes from the tail.

    Slicing would read `-4` from the end of the source; os.pread refuses it, and so must
    the in-memory reader.
    """
    with pytest.raises(ValueError):
        run_bytes(echo([request_]), b"0123456789")
