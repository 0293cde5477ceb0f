"""A plan of a literal head and many spans held as two integer columns.

An open-ended audio-only MP4 clip has a span per run of audio chunks between video
chunks, about 2,000 on the 30-minute file. Served from the stored audio samples
(`plan_map`), it is remapped from the columns and its Span tuples are never made;
anything else that reads its pieces gets them made once, the same as a `Plan`'s.
"""

from __future__ import annotations

from itertools import repeat

import numpy as np
import numpy.typing as npt

from vodedge.media.plan import Plan, Span

Ints = npt.NDArray[np.int64]


class ColumnPlan(Plan):
    """`head` then the spans `(offsets[i], lengths[i])`: ascending, not touching, none
    empty (a merged data layout). `pieces` and the output starts are made on first use."""

    __slots__ = ("head", "lengths", "offsets")

    def __init__(self, head: bytes, offsets: Ints, lengths: Ints) -> None:
        self.head = head
        self.offsets = offsets
        self.lengths = lengths
        self.size = len(head) + int(lengths.sum())

    def __getattr__(self, name: str) -> object:
        # Only reached while a slot of Plan's is unset: make the pieces once.
        if name not in ("pieces", "_starts"):
            raise AttributeError(name)
        lengths: list[int] = self.lengths.tolist()
        pairs = zip(self.offsets.tolist(), lengths, strict=True)
        plan = Plan.head_and_spans(
            self.head, list(map(tuple.__new__, repeat(Span), pairs)), lengths
        )
        self.pieces, self._starts = plan.pieces, plan.output_starts()
        return getattr(self, name)

    def __repr__(self) -> str:
        return f"ColumnPlan(size={self.size}, spans={len(self.offsets)})"


def piece_count(plan: Plan) -> int:
    """How many pieces `plan` has, without making a column plan's."""
    if isinstance(plan, ColumnPlan):
        return len(plan.offsets) + (1 if plan.head else 0)
    return len(plan.pieces)
