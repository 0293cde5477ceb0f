"""Local files for the CLI: a pread-backed source and writing a plan to disk."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import TypeVar

from vodedge.media.plan import Plan
from vodedge.media.reading import Reading, run
from vodedge.planfile import write_plan_file

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


def write_plan(plan: Plan, source: LocalSource, dst: int, progress: bool = False) -> None:
    """Write the plan's output to `dst`, with a progress bar on a terminal when large."""
    with _progress(plan.size if progress else 0) as advance:
        write_plan_file(plan, source.fd, dst, advance)


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
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    except OSError as exc:
        # The temporary name is ours; the user gave `path`.
        raise OSError(exc.errno, exc.strerror, path) from None
    try:
        yield fd
        os.close(fd)
        fd = -1
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise OSError(exc.errno, exc.strerror, path) from None
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
