"""Writing a plan's output from one file to another (the CLI's outputs, the edge's renditions)."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections.abc import Callable, Sequence

from vodedge.media.plan import Plan, Span


def _copy_span(src: int, dst: int, span: Span, advance: Callable[[int], None]) -> None:
    offset, remaining = span.offset, span.length
    while remaining:
        try:
            # 16 MiB a call: a progress bar moves, and the syscalls stay few.
            copied = os.copy_file_range(src, dst, min(remaining, 16 << 20), offset)
        except OSError:
            copied = 0  # e.g. across file systems that refuse it: fall back below
        if copied <= 0:
            chunk = os.pread(src, min(remaining, 1 << 20), offset)
            if not chunk:
                raise OSError(f"the input ended at {offset} while copying")
            os.write(dst, chunk)
            copied = len(chunk)
        offset += copied
        remaining -= copied
        advance(copied)


# Spans above this go through copy_file_range (no copy through user space); below it
# the syscall's fixed cost dominates, and batching reads into one writev wins (an
# audio track is thousands of chunks of a few kB).
COPY_RANGE_MIN = 1 << 20
BATCH_BYTES = 16 << 20
IOV_MAX = 1024
# Small spans are taken a window of the source at a time. Where they lie densely (an
# FLV's audio tags between small video tags: the 30-minute bench file's 45,000 spans),
# one read of the window costs less than a read per span: a call costs about as much
# as copying 7 kB more (1.2 us), so a window is read whole when it holds a span per
# DENSE_BYTES. A 5-minute 720p file's audio (a chunk per 16 kB) is read span by span.
WINDOW = 1 << 20
DENSE_BYTES = 6 << 10


def _write_all(dst: int, buffers: list[bytes | memoryview]) -> None:
    """Write every buffer, IOV_MAX at a time, resuming after short writes."""
    done = 0
    while done < len(buffers):
        chunk = buffers[done : done + IOV_MAX]
        written = os.writev(dst, chunk)
        for buffer in chunk:
            if written < len(buffer):
                buffers[done] = memoryview(buffer)[written:]
                break
            written -= len(buffer)
            done += 1


def _short(spans: Sequence[Span], data: Sequence[bytes]) -> OSError:
    """The error for the first span of which `data` holds less than its length."""
    for (offset, length), chunk in zip(spans, data, strict=True):
        if len(chunk) != length:
            return OSError(f"the input ended at {offset + len(chunk)} while copying")
    raise AssertionError("no short read among the spans")


def write_plan_file(
    plan: Plan, src: int, dst: int, advance: Callable[[int], None] = lambda _n: None
) -> None:
    """Write the plan's output from file `src` to file `dst`: large spans copied inside
    the kernel, small ones read (alone or a dense window at a time) in batches written
    with writev."""
    pieces = plan.pieces
    batch: list[bytes | memoryview] = []
    batched = 0
    window: memoryview | None = None  # one buffer for dense windows, reused

    def flush() -> None:
        nonlocal batch, batched
        _write_all(dst, batch)
        advance(batched)
        batch, batched = [], 0

    # Runs of small spans end at a literal or a large span (a few per plan); the
    # spans of a run are then taken a window at a time, found by bisection.
    small = [type(piece) is Span and piece.length < COPY_RANGE_MIN for piece in pieces]
    small.append(False)
    at = 0
    while at < len(pieces):
        piece = pieces[at]
        if not small[at]:
            at += 1
            if isinstance(piece, Span):
                flush()
                _copy_span(src, dst, piece, advance)
            else:
                batch.append(piece)
                batched += len(piece)
            continue
        end = small.index(False, at)
        run: Sequence[Span] = pieces[at:end]  # type: ignore[assignment]
        at = end
        ends = [offset + length for offset, length in run]
        first = 0
        while first < len(run):
            start = run[first].offset
            last = bisect_right(ends, start + WINDOW, first + 1)
            spans, stop = run[first:last], ends[last - 1]
            first = last
            total = sum([length for _, length in spans])
            batched += total
            if len(spans) > 1 and stop - start < len(spans) * DENSE_BYTES:
                window = window or memoryview(bytearray(WINDOW))
                got = os.preadv(src, [window[: stop - start]], start)
                if got != stop - start:
                    raise OSError(f"the input ended at {start + got} while copying")
                batch += [window[o - start : o - start + n] for o, n in spans]
                flush()  # before the window is read into again
                continue
            data = [os.pread(src, n, o) for o, n in spans]
            if sum(map(len, data)) != total:
                raise _short(spans, data)
            batch += data
            if batched >= BATCH_BYTES:
                flush()
    flush()
