"""What the mutation tests of every container share: a bound on the CPU time of one parse,
and the check that a refusal is a typed, one-line error.

The bound is CPU time (ITIMER_PROF), not wall time: a parse that loops or is quadratic
burns CPU and trips it whatever the machine does, while a linear parse on a machine
shared with other jobs waits for a core without being charged for it.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

import pytest

from vodedge.media.errors import MediaError

# A parse of a few hundred kB takes milliseconds of CPU; this only trips on loops that do
# not end and on work that grows faster than the input.
TIME_LIMIT = 2.0

T = TypeVar("T")


class ExtractionTimeout(BaseException):
    """Raised by the timer; a BaseException so that `except Exception` cannot swallow it."""


@contextlib.contextmanager
def time_limit(seconds: float = TIME_LIMIT) -> Iterator[None]:
    """Interrupt the block with `ExtractionTimeout` once it used `seconds` of CPU time."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise ExtractionTimeout(f"still running after {seconds} s of CPU time")

    previous = signal.signal(signal.SIGPROF, expire)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


def bounded(call: Callable[[], T], seconds: float = TIME_LIMIT) -> T | MediaError:
    """The result of `call`, or the typed error it raised; a test failure if it ran out
    of CPU time or its error message is empty or not one line."""
    try:
        with time_limit(seconds):
            return call()
    except MediaError as error:
        assert error.code and str(error).strip() and "\n" not in str(error), repr(error)
        return error
    except ExtractionTimeout as timeout:
        pytest.fail(f"hang: {timeout}")
