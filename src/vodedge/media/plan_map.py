"""Reading a plan's source bytes from another plan's output (a stored rendition).

An audio-only clip copies a subset of the bytes that the plan of "every audio
sample" copies. Once that plan's output is stored, the clip's spans map into it,
and the thousands of small spans between video chunks merge into one or a few.
"""

from __future__ import annotations

from itertools import chain

import numpy as np

from vodedge.media.plan import Piece, Plan, Span
from vodedge.media.plan_columns import ColumnPlan


class OutputMap:
    """Where each source byte that `plan` copies lands in its output."""

    __slots__ = ("ends", "outputs", "plan", "sources")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        spans = [(i, p) for i, p in enumerate(plan.pieces) if isinstance(p, Span)]
        starts = plan.output_starts()
        self.sources = np.array([p.offset for _, p in spans], np.int64)
        self.ends = np.array([p.end for _, p in spans], np.int64)
        self.outputs = np.array([starts[i] for i, _ in spans], np.int64)

    def remap(self, plan: Plan) -> Plan | None:
        """`plan` reading this map's output instead of the source (the same bytes), or
        None when one of its spans is not wholly copied by this map's plan."""
        if isinstance(plan, ColumnPlan):  # its columns, without making its spans
            mapped = self._columns(plan.offsets, plan.lengths) if len(plan.offsets) else []
            return None if mapped is None else Plan([plan.head, *mapped])
        pieces: list[Piece] = []
        run: list[Span] = []
        for piece in plan.pieces:
            if isinstance(piece, Span):
                run.append(piece)
                continue
            if run:
                mapped = self._spans(run)
                if mapped is None:
                    return None
                pieces += mapped
                run = []
            pieces.append(piece)
        if run:
            mapped = self._spans(run)
            if mapped is None:
                return None
            pieces += mapped
        return Plan(pieces)

    def _spans(self, run: list[Span]) -> list[Span] | None:
        """Consecutive spans mapped into the output, those that touch there merged."""
        flat = np.fromiter(chain.from_iterable(run), np.int64, 2 * len(run))
        return self._columns(flat[0::2], flat[1::2])

    def _columns(self, offsets: np.ndarray, lengths: np.ndarray) -> list[Span] | None:
        """`_spans` of spans given as columns (not empty)."""
        at = np.searchsorted(self.sources, offsets, "right") - 1
        if len(self.sources) == 0 or at.min() < 0:
            return None
        if np.any(offsets + lengths > self.ends[at]):
            return None
        starts = self.outputs[at] + offsets - self.sources[at]
        stops = starts + lengths
        fresh = np.flatnonzero(starts[1:] != stops[:-1]) + 1
        firsts = np.concatenate(([0], fresh))
        lasts = np.concatenate((fresh - 1, [len(starts) - 1]))
        begin, end = starts[firsts].tolist(), stops[lasts].tolist()
        return [Span(b, e - b) for b, e in zip(begin, end, strict=True)]
