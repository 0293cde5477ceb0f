"""Writing a plan's output from one file to another (the CLI's outputs, the edge's renditions)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

from vodedge.media.plan import Piece, Plan, Span


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
# FLV's audio tags between small video tags, a 30-minute MP4's audio chunks), one read
# of the window costs less than a read per span: a call costs about as much as copying
# 7 kB more (1.2 us), so a window is read whole when it holds a span per DENSE_BYTES.
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


def _read(src: int, length: int, offset: int) -> bytes:
    data = os.pread(src, length, offset)
    if len(data) != length:
        raise OSError(f"the input ended at {offset + len(data)} while copying")
    return data


def _window(pieces: Sequence[Piece], first: int) -> int:
    """The end of the run of small spans from `first` that fits in WINDOW bytes."""
    limit = pieces[first].offset + WINDOW  # type: ignore[union-attr]
    end = first + 1
    while end < len(pieces):
        piece = pieces[end]
        if (
            type(piece) is not Span
            or piece.length >= COPY_RANGE_MIN
            or piece.offset + piece.length > limit
        ):
            break
        end += 1
    return end


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

    at = 0
    while at < len(pieces):
        piece = pieces[at]
        if not isinstance(piece, Span):
            batch.append(piece)
            batched += len(piece)
            at += 1
        elif piece.length >= COPY_RANGE_MIN:
            flush()
            _copy_span(src, dst, piece, advance)
            at += 1
            continue
        else:
            end = _window(pieces, at)
            spans: Sequence[Span] = pieces[at:end]  # type: ignore[assignment]
            start, stop = piece.offset, spans[-1].offset + spans[-1].length
            batched += sum([n for _, n in spans])
            at = end
            if stop - start >= len(spans) * DENSE_BYTES:
                batch.extend([_read(src, n, o) for o, n in spans])
            else:
                # Written before the buffer is read into again.
                window = window or memoryview(bytearray(WINDOW))
                got = os.preadv(src, [window[: stop - start]], start)
                if got != stop - start:
                    raise OSError(f"the input ended at {start + got} while copying")
                batch.extend([window[o - start : o - start + n] for o, n in spans])
                flush()
        if batched >= BATCH_BYTES:
            flush()
    flush()
