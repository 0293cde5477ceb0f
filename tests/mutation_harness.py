"""What the mutation tests of every container share: the Hypothesis profile, the byte-level
mutations, a bound on the CPU time of one parse and on its peak allocation, and the check
that a refusal is a typed, one-line error.

The bound is CPU time (ITIMER_PROF), not wall time: a parse that loops or is quadratic
burns CPU and trips it whatever the machine does, while a linear parse on a machine
shared with other jobs waits for a core without being charged for it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tracemalloc
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from vodedge.media.errors import MediaError

# A parse of a few hundred kB takes milliseconds of CPU; this only trips on loops that do
# not end and on work that grows faster than the input.
TIME_LIMIT = 2.0
# Derandomized and without the example database, so CI runs the same examples every time;
# VODEDGE_MUTATION_SCALE multiplies the example counts for longer runs by hand.
SCALE = float(os.environ.get("VODEDGE_MUTATION_SCALE", "1"))
PROFILE = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)
# The mutations every format gets: a bit flipped, the tail cut off, bytes put in or taken out.
BYTE_MUTATIONS = ("flip", "cut", "insert", "delete")

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


def examples(n: int) -> settings:
    """The mutation profile with `n` examples (scaled)."""
    return settings(PROFILE, max_examples=max(1, int(n * SCALE)))


def mutate_bytes(draw: st.DrawFn, data: bytearray, kind: str, most: int = 16) -> None:
    """Apply one of BYTE_MUTATIONS to non-empty `data` (inserts and deletes of up to
    `most` bytes)."""
    if kind == "flip":
        at = draw(st.integers(0, len(data) - 1))
        data[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "cut":
        del data[draw(st.integers(0, len(data))) :]
    elif kind == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=most))
    elif kind == "delete":
        at = draw(st.integers(0, len(data) - 1))
        del data[at : at + draw(st.integers(1, most))]
    else:
        raise ValueError(f"not a byte mutation: {kind}")


def peak_allocation(call: Callable[[], object]) -> int:
    """The peak Python allocation of `call` (a typed error is an outcome like any other)."""
    tracemalloc.start()
    try:
        call()
    except MediaError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak
