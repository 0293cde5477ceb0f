"""The Plan: a transform's output as literal bytes and spans of the source."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from itertools import accumulate
from typing import NamedTuple


class Span(NamedTuple):
    """`length` bytes of the source starting at `offset`."""

    # A NamedTuple, not a dataclass: plans hold thousands of these and a tuple is
    # several times cheaper to create.
    offset: int
    length: int

    @property
    def end(self) -> int:
        """The source offset just past this span."""
        return self.offset + self.length


Piece = bytes | Span


class Plan:
    """An ordered list of pieces whose spans ascend in source order.

    The size is known without reading the source, and any output byte range
    maps to a smaller plan (`slice`), which is what HTTP `Range` needs.
    """

    __slots__ = ("_starts", "pieces", "size")

    def __init__(self, pieces: Iterable[Piece]) -> None:
        merged: list[Piece] = []
        literals: list[bytes] = []  # joined once, so long runs of literals stay linear
        last_span_end = -1
        pending: list[int] = []  # [start, end] of a span still growing
        for piece in pieces:
            if isinstance(piece, Span):
                offset, length = piece.offset, piece.length
                if length < 0 or offset < 0:
                    raise ValueError(f"bad span {piece}")
                if length == 0:
                    continue
                if offset < last_span_end:
                    raise ValueError("plan spans must ascend in source order")
                last_span_end = offset + length
                if literals:
                    merged.append(b"".join(literals))
                    literals = []
                elif pending and pending[1] == offset:
                    pending[1] += length
                    continue
                if pending:
                    merged.append(Span(pending[0], pending[1] - pending[0]))
                pending = [offset, offset + length]
                continue
            if piece:
                if pending:
                    merged.append(Span(pending[0], pending[1] - pending[0]))
                    pending = []
                literals.append(bytes(piece))
        if pending:
            merged.append(Span(pending[0], pending[1] - pending[0]))
        if literals:
            merged.append(b"".join(literals))
        self.pieces: tuple[Piece, ...] = tuple(merged)
        starts: list[int] = []
        position = 0
        for piece in self.pieces:
            starts.append(position)
            position += piece.length if isinstance(piece, Span) else len(piece)
        self._starts = starts
        self.size = position

    @classmethod
    def head_and_spans(
        cls, head: bytes, spans: list[Span], lengths: list[int] | None = None
    ) -> Plan:
        """A literal followed by spans that already ascend without touching and are not
        empty (a merged data layout): built without re-checking thousands of spans.
        `lengths`, the spans' lengths when the caller has them, saves a pass."""
        plan = cls.__new__(cls)
        plan.pieces = (head, *spans) if head else tuple(spans)
        if lengths is None:
            lengths = [span.length for span in spans]
        starts = list(accumulate(lengths, initial=len(head)))
        plan.size = starts.pop()
        plan._starts = [0, *starts] if head else starts
        return plan

    def __repr__(self) -> str:
        return f"Plan(size={self.size}, pieces={len(self.pieces)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and self.pieces == other.pieces

    def __hash__(self) -> int:
        return hash(self.pieces)

    def output_starts(self) -> list[int]:
        """Where each piece starts in the output."""
        return list(self._starts)

    def spans(self) -> Iterator[Span]:
        """The source spans of this plan, in order."""
        return (p for p in self.pieces if isinstance(p, Span))

    @property
    def source_bytes(self) -> int:
        """How many bytes of the output come from the source."""
        return sum(span.length for span in self.spans())

    def slice(self, start: int, stop: int) -> Plan:
        """The plan of output bytes `[start:stop]`, with Python's slice semantics."""
        window = range(self.size)[start:stop]
        start, stop = window.start, max(window.start, window.stop)
        if start == stop:
            return Plan(())
        if start == 0 and stop == self.size:
            return self
        first = bisect_right(self._starts, start) - 1
        out: list[Piece] = []
        for index in range(first, len(self.pieces)):
            piece_start = self._starts[index]
            if piece_start >= stop:
                break
            piece = self.pieces[index]
            lo = max(start - piece_start, 0)
            if isinstance(piece, Span):
                hi = min(stop - piece_start, piece.length)
                out.append(Span(piece.offset + lo, hi - lo))
            else:
                hi = min(stop - piece_start, len(piece))
                out.append(piece[lo:hi])
        return Plan(out)

    def render(self, source: bytes | memoryview) -> bytes:
        """The output bytes, given the whole source in memory (tests, small files)."""
        view = memoryview(source)
        parts: list[bytes] = []
        for piece in self.pieces:
            if isinstance(piece, Span):
                chunk = view[piece.offset : piece.end]
                if len(chunk) != piece.length:
                    raise ValueError("plan reads past the end of the source")
                parts.append(bytes(chunk))
            else:
                parts.append(piece)
        return b"".join(parts)


class PlanFilter:
    """Turns the source, fed front to back in any chunking, into the plan's output.

    This is how a plan is served from a live origin stream: the wanted spans
    are copied, everything else is skipped, literals are emitted in place.
    """

    __slots__ = ("_done_in_piece", "_index", "_pieces", "_position")

    def __init__(self, plan: Plan, source_start: int = 0) -> None:
        self._pieces = plan.pieces
        self._index = 0
        self._position = source_start
        self._done_in_piece = 0

    @property
    def position(self) -> int:
        """The source offset of the next byte `feed` expects."""
        return self._position

    @property
    def finished(self) -> bool:
        """True once the whole plan has been emitted."""
        return self._index >= len(self._pieces)

    def wanted_until(self) -> int | None:
        """The source offset past which no byte is needed, or None when done."""
        spans = [p for p in self._pieces[self._index :] if isinstance(p, Span)]
        return spans[-1].end if spans else None

    def feed(self, data: bytes | memoryview) -> list[bytes]:
        """Consume source bytes at `position`; return the output they complete."""
        out: list[bytes] = []
        view = memoryview(data)
        while True:
            if self._index >= len(self._pieces):
                self._position += len(view)
                return out
            piece = self._pieces[self._index]
            if not isinstance(piece, Span):
                out.append(piece)
                self._index += 1
                continue
            if not view:
                return out
            want = piece.offset + self._done_in_piece
            if self._position < want:
                skip = min(want - self._position, len(view))
                view = view[skip:]
                self._position += skip
                continue
            if self._position > want:
                raise ValueError("source fed past a span that was still wanted")
            take = min(piece.length - self._done_in_piece, len(view))
            out.append(bytes(view[:take]))
            view = view[take:]
            self._position += take
            self._done_in_piece += take
            if self._done_in_piece == piece.length:
                self._index += 1
                self._done_in_piece = 0
