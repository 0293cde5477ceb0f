"""Local files for the CLI: a pread-backed source and writing a plan to disk."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

from vodedge.media.plan import Plan, Span
from vodedge.media.reading import Reading, run

T = TypeVar("T")

# Above this, a terminal gets a progress bar.
PROGRESS_THRESHOLD = 64 << 20


class LocalSource:
    """An open file answering the media layer's read requests with `pread`."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        try:
            self.size = os.fstat(self.fd).st_size
        except OSError:
            os.close(self.fd)
            raise

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer only at the end of the file)."""
        return os.pread(self.fd, length, offset)

    def parse(self, parser: Reading[T]) -> T:
        """Drive a sans-IO parser over this file."""
        return run(parser, self.read_at)

    def head(self, length: int = 16) -> bytes:
        """The first bytes of the file, to tell formats apart."""
        return self.read_at(0, length)

    def close(self) -> None:
        """Release the file descriptor."""
        os.close(self.fd)

    def __enter__(self) -> LocalSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _copy_span(src: int, dst: int, span: Span, advance: Callable[[int], None]) -> None:
    offset, remaining = span.offset, span.length
    while remaining:
        try:
            copied = os.copy_file_range(src, dst, min(remaining, 1 << 30), offset)
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


def write_plan(plan: Plan, source: LocalSource, dst: int, progress: bool = False) -> None:
    """Write the plan's output to `dst`: large spans copied inside the kernel, small
    ones read in batches and written with one writev each."""
    batch: list[bytes] = []
    batched = 0
    with _progress(plan.size if progress else 0) as advance:

        def flush() -> None:
            nonlocal batch, batched
            _write_all(dst, batch)
            advance(batched)
            batch, batched = [], 0

        for piece in plan.pieces:
            if isinstance(piece, Span) and piece.length >= COPY_RANGE_MIN:
                flush()
                _copy_span(source.fd, dst, piece, advance)
                continue
            if isinstance(piece, Span):
                data = os.pread(source.fd, piece.length, piece.offset)
                if len(data) != piece.length:
                    raise OSError(f"the input ended at {piece.offset + len(data)} while copying")
            else:
                data = piece
            batch.append(data)
            batched += len(data)
            if len(batch) >= IOV_MAX or batched >= BATCH_BYTES:
                flush()
        flush()


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    if total < PROGRESS_THRESHOLD or not sys.stderr.isatty():
        yield lambda _n: None
        return
    done = 0
    last = -1

    def advance(n: int) -> None:
        nonlocal done, last
        done += n
        percent = done * 100 // total
        if percent != last:
            last = percent
            bar = "#" * (percent // 4)
            sys.stderr.write(f"\r[{bar:<25}] {percent:3d}% {done >> 20}/{total >> 20} MiB")
            sys.stderr.flush()

    try:
        yield advance
    finally:
        sys.stderr.write("\n")


@contextlib.contextmanager
def atomic_output(path: str) -> Iterator[int]:
    """A file descriptor whose content replaces `path` only if the block succeeds."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        yield fd
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
