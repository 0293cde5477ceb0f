"""Laying out a new MP4: source data intervals in the new mdat, and a moov that fits."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate, compress
from operator import add, le, ne, sub
from typing import NamedTuple

from vodedge.media.errors import MalformedMedia


class DataLayout(NamedTuple):
    """Source byte intervals (merged, ascending) and where each lands in the new mdat."""

    starts: list[int]
    lengths: list[int]
    out_starts: list[int]
    chunk_positions: list[int]  # where each chunk given to `of` lands, in its order

    @classmethod
    def of(cls, offsets: list[int], sizes: list[int]) -> DataLayout:
        """Merge possibly overlapping chunks (offsets, sizes) into ascending intervals."""
        ends = list(map(add, offsets, sizes))
        if offsets and all(sizes) and all(map(le, ends, offsets[1:])):
            # The common case, one track's chunks in file order: only touching
            # chunks merge, and every step here runs in C.
            breaks = list(compress(range(1, len(offsets)), map(ne, offsets[1:], ends)))
            starts = [offsets[0], *(offsets[i] for i in breaks)]
            stops = [*(ends[i - 1] for i in breaks), ends[-1]]
            lengths = list(map(sub, stops, starts))
            positions = [0, *accumulate(sizes)]
            positions.pop()
            return cls(starts, lengths, [0, *accumulate(lengths)], positions)
        else:
            starts, stops = [], []
            for offset, end in sorted(zip(offsets, ends, strict=True)):
                if end == offset:
                    continue
                if stops and offset <= stops[-1]:
                    stops[-1] = max(stops[-1], end)
                else:
                    starts.append(offset)
                    stops.append(end)
        lengths = list(map(sub, stops, starts))
        layout = cls(starts, lengths, [0, *accumulate(lengths)], [])
        layout.chunk_positions.extend(layout.positions(offsets, sizes))
        return layout

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
