"""Byte ranges `[start, end)` of an object: which are present, which to fetch."""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections.abc import Iterable

Extent = tuple[int, int]


def merged(extents: Iterable[Extent]) -> list[Extent]:
    """The ranges sorted, with overlapping and touching ones joined; empty ones dropped."""
    out: list[Extent] = []
    for start, end in sorted(e for e in extents if e[1] > e[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def merge_in(extents: list[Extent], more: list[Extent]) -> list[Extent]:
    """`extents` (merged) with `more` (sorted) added: only the extents `more` can touch
    are merged again (a sparse object holds thousands, a record adds a few)."""
    more = [e for e in more if e[1] > e[0]]
    if not more:
        return list(extents)
    low, high = more[0][0], max(end for _, end in more)
    # The first extent that may touch `low` (ends at or after it), the first after `high`.
    first = max(bisect_right(extents, (low, 1 << 62)) - 1, 0)
    if first < len(extents) and extents[first][1] < low:
        first += 1
    last = bisect_right(extents, (high, 1 << 62))
    out: list[Extent] = []
    for start, end in heapq.merge(extents[first:last], more):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return [*extents[:first], *out, *extents[last:]]


def run_end(extents: list[Extent], offset: int) -> int:
    """Where the present run holding `offset` ends (`offset` itself when absent);
    `extents` merged."""
    at = bisect_right(extents, (offset, 1 << 62)) - 1
    if at >= 0 and extents[at][0] <= offset < extents[at][1]:
        return extents[at][1]
    return offset


def missing(extents: list[Extent], start: int, end: int) -> list[Extent]:
    """The parts of `[start, end)` not in `extents` (merged), in order."""
    gaps: list[Extent] = []
    at = start
    for index in range(max(bisect_right(extents, (start, 1 << 62)) - 1, 0), len(extents)):
        low, high = extents[index]
        if low >= end:
            break
        if high <= at:
            continue
        if low > at:
            gaps.append((at, low))
        at = max(at, high)
    if at < end:
        gaps.append((at, end))
    return gaps


def coalesced(ranges: Iterable[Extent], gap: int) -> list[Extent]:
    """Ranges in order, neighbours closer than `gap` bytes joined (fetching a small gap
    costs less than another request)."""
    out: list[Extent] = []
    for start, end in ranges:
        if end <= start:
            continue
        if out and start - out[-1][1] <= gap and start >= out[-1][0]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def split(ranges: Iterable[Extent], most: int) -> list[Extent]:
    """Ranges cut into pieces of at most `most` bytes."""
    return [(at, min(at + most, end)) for start, end in ranges for at in range(start, end, most)]


def covered(extents: list[Extent]) -> int:
    """How many bytes the (merged) extents hold."""
    return sum(end - start for start, end in extents)
