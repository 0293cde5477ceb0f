"""Writing a plan's output from one file to another (the CLI's outputs, the edge's renditions)."""

from __future__ import annotations

import os
from collections.abc import Callable

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
# the syscall's fixed cost dominates, and batching preads into one writev wins (an
# audio track is thousands of chunks of a few kB).
COPY_RANGE_MIN = 1 << 20
BATCH_BYTES = 16 << 20
IOV_MAX = 1024


def _write_all(dst: int, buffers: list[bytes]) -> None:
    pending = [memoryview(b) for b in buffers if b]
    while pending:
        written = os.writev(dst, pending)
        while pending and written >= len(pending[0]):
            written -= len(pending[0])
            pending.pop(0)
        if pending and written:
            pending[0] = pending[0][written:]


def write_plan_file(
    plan: Plan, src: int, dst: int, advance: Callable[[int], None] = lambda _n: None
) -> None:
    """Write the plan's output from file `src` to file `dst`: large spans copied inside
    the kernel, small ones read in batches and written with one writev each."""
    batch: list[bytes] = []
    batched = 0

    def flush() -> None:
        nonlocal batch, batched
        _write_all(dst, batch)
        advance(batched)
        batch, batched = [], 0

    for piece in plan.pieces:
        if isinstance(piece, Span) and piece.length >= COPY_RANGE_MIN:
            flush()
            _copy_span(src, dst, piece, advance)
            continue
        if isinstance(piece, Span):
            data = os.pread(src, piece.length, piece.offset)
            if len(data) != piece.length:
                raise OSError(f"the input ended at {piece.offset + len(data)} while copying")
        else:
            data = piece
        batch.append(data)
        batched += len(data)
        if len(batch) >= IOV_MAX or batched >= BATCH_BYTES:
            flush()
    flush()
