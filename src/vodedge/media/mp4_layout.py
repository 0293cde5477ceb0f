"""Laying out a new MP4: source data intervals in the new mdat, and a moov that fits."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from itertools import accumulate

from vodedge.media.errors import MalformedMedia


@dataclass(frozen=True, slots=True)
class DataLayout:
    """Source byte intervals (merged, ascending) and where each lands in the new mdat."""

    starts: list[int]
    lengths: list[int]
    out_starts: list[int]

    @classmethod
    def of(cls, chunks: list[tuple[int, int]]) -> DataLayout:
        """Merge possibly overlapping (offset, size) chunks into ascending intervals."""
        starts: list[int] = []
        ends: list[int] = []
        for offset, size in sorted(chunks):
            if size == 0:
                continue
            if ends and offset <= ends[-1]:
                ends[-1] = max(ends[-1], offset + size)
            else:
                starts.append(offset)
                ends.append(offset + size)
        lengths = [end - start for start, end in zip(starts, ends, strict=True)]
        return cls(starts, lengths, [0, *accumulate(lengths)])

    @property
    def total(self) -> int:
        """Bytes of data the new mdat holds."""
        return self.out_starts[-1]

    def positions(self, offsets: list[int], sizes: list[int]) -> list[int]:
        """Where chunks land in the new mdat's payload (add its start for offsets)."""
        out: list[int] = []
        starts, out_starts = self.starts, self.out_starts
        last = len(starts) - 1
        index = 0
        for offset, size in zip(offsets, sizes, strict=True):
            if size == 0:
                out.append(0)  # an empty chunk's offset is never read
                continue
            # Chunks mostly ascend: step forward from the last interval, bisect otherwise.
            if starts[index] > offset:
                index = bisect_right(starts, offset) - 1
            else:
                while index < last and starts[index + 1] <= offset:
                    index += 1
            out.append(out_starts[index] + offset - starts[index])
        return out


def settle_moov(build: Callable[[int], bytes], before: int, guess: int, mdat_header: int) -> bytes:
    """The new moov from `build(base)`, `base` being where its mdat payload starts.

    The moov's size depends on stco vs co64, which depends on the offsets,
    which depend on the moov's size: iterate (a few rounds at most, since a
    table only ever grows from stco to co64).
    """
    moov = build(before + guess + mdat_header)
    for _ in range(4):
        again = build(before + len(moov) + mdat_header)
        if len(again) == len(moov):
            return again
        moov = again
    raise MalformedMedia("chunk offsets do not settle")  # pragma: no cover
