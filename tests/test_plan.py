"""Property tests of `Plan`, `Plan.slice` and `PlanFilter` against a naive model."""

from __future__ import annotations

import signal
from types import FrameType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.media.plan import Piece, Plan, PlanFilter, Span

# Derandomized and without the example database, so CI runs the same examples every time.
settings.register_profile(
    "vodedge-plan", max_examples=400, deadline=None, derandomize=True, database=None
)
PLAN_SETTINGS = settings.get_profile("vodedge-plan")


def model_render(source: bytes, pieces: list[Piece]) -> bytes:
    """The output the pieces describe, computed without `Plan`."""
    return b"".join(p if isinstance(p, bytes) else source[p.offset : p.end] for p in pieces)


@st.composite
def sources_and_pieces(draw: st.DrawFn, max_source: int = 300) -> tuple[bytes, list[Piece]]:
    """A source and a piece list: literals and ascending spans, some empty or adjacent."""
    source = draw(st.binary(max_size=max_source))
    cursor = draw(st.integers(0, len(source)))
    pieces: list[Piece] = []
    for kind in draw(st.lists(st.sampled_from(["literal", "span"]), max_size=12)):
        if kind == "literal":
            pieces.append(draw(st.binary(max_size=16)))
            continue
        room = len(source) - cursor
        # A gap of 0 is what makes neighbouring spans merge, so draw it often.
        gap = draw(st.one_of(st.just(0), st.integers(0, room)))
        start = cursor + gap
        length = draw(st.one_of(st.just(0), st.integers(0, len(source) - start)))
        pieces.append(Span(start, length))
        cursor = start + length
    return source, pieces


def bounds(size: int, *, negative: bool = False) -> st.SearchStrategy[int]:
    """Slice bounds around a plan of `size` bytes: mostly near it, sometimes far out."""
    low = -size - 8 if negative else 0
    far = -(10**12) if negative else 0
    return st.one_of(st.integers(low, size + 8), st.integers(far, 10**12))


def first_span_offset(plan: Plan) -> int | None:
    """The source offset of the plan's first span, if any."""
    return next((span.offset for span in plan.spans()), None)


def run_filter(plan: Plan, source: bytes, source_start: int, sizes: list[int]) -> bytes:
    """Feed `source[source_start:]` to a `PlanFilter` cut into chunks of `sizes` (rest last)."""
    flt = PlanFilter(plan, source_start)
    out: list[bytes] = []
    pos = source_start
    chunks: list[bytes] = []
    for size in sizes:
        if pos >= len(source):
            break
        chunks.append(source[pos : pos + size])
        pos += size
    if pos < len(source):
        chunks.append(source[pos:])
    # A plan without spans needs no source; an empty feed is how a caller flushes it.
    fed = 0
    for chunk in chunks or [b""]:
        assert flt.position == source_start + fed
        out.extend(flt.feed(chunk))
        fed += len(chunk)
    assert flt.finished
    assert flt.wanted_until() is None
    assert flt.position == max(len(source), source_start)
    return b"".join(out)


@PLAN_SETTINGS
@given(sources_and_pieces())
def test_render_matches_model_and_size(case: tuple[bytes, list[Piece]]) -> None:
    """Rendering equals the naive concatenation and `size` is its length."""
    source, pieces = case
    plan = Plan(pieces)
    rendered = plan.render(source)
    assert rendered == model_render(source, pieces)
    assert plan.size == len(rendered)


@PLAN_SETTINGS
@given(sources_and_pieces(), st.data())
def test_slice_renders_the_slice(case: tuple[bytes, list[Piece]], data: st.DataObject) -> None:
    """`slice(a, b)` renders `render()[a:b]`, also past the end and with a > b."""
    source, pieces = case
    plan = Plan(pieces)
    rendered = plan.render(source)
    a = data.draw(bounds(plan.size), label="a")
    b = data.draw(bounds(plan.size), label="b")
    part = plan.slice(a, b)
    assert part.render(source) == rendered[a:b]
    assert part.size == len(rendered[a:b])


@PLAN_SETTINGS
@given(sources_and_pieces(), st.data())
def test_slice_of_slice(case: tuple[bytes, list[Piece]], data: st.DataObject) -> None:
    """Slicing a slice is slicing the rendered slice (Range on a clipped output)."""
    source, pieces = case
    plan = Plan(pieces)
    a, b = data.draw(bounds(plan.size), label="a"), data.draw(bounds(plan.size), label="b")
    part = plan.slice(a, b)
    c, d = data.draw(bounds(part.size), label="c"), data.draw(bounds(part.size), label="d")
    assert part.slice(c, d).render(source) == plan.render(source)[a:b][c:d]


@PLAN_SETTINGS
@given(sources_and_pieces(), st.data())
def test_slice_negative_bounds_like_python(
    case: tuple[bytes, list[Piece]], data: st.DataObject
) -> None:
    """With negative bounds too, `slice(a, b)` renders `render()[a:b]`."""
    source, pieces = case
    plan = Plan(pieces)
    a = data.draw(bounds(plan.size, negative=True), label="a")
    b = data.draw(bounds(plan.size, negative=True), label="b")
    assert plan.slice(a, b).render(source) == plan.render(source)[a:b]


def test_slice_negative_bound_minimal() -> None:
    """The minimal case: Python's b"abc"[-1:3] is b"c"."""
    assert Plan([b"abc"]).slice(-1, 3).render(b"") == b"c"


@PLAN_SETTINGS
@given(sources_and_pieces())
def test_pieces_are_normalised(case: tuple[bytes, list[Piece]]) -> None:
    """No empty pieces, no two literals in a row, no two touching spans in a row."""
    source, pieces = case
    plan = Plan(pieces)
    for piece in plan.pieces:
        assert (piece.length if isinstance(piece, Span) else len(piece)) > 0
    for prev, nxt in zip(plan.pieces, plan.pieces[1:], strict=False):
        assert not (isinstance(prev, bytes) and isinstance(nxt, bytes))
        if isinstance(prev, Span) and isinstance(nxt, Span):
            assert prev.end < nxt.offset
    # Normal form: rebuilding from the pieces changes nothing, and equality follows content.
    again = Plan(plan.pieces)
    assert again == plan
    assert hash(again) == hash(plan)
    assert again.render(source) == plan.render(source)


def test_merging_examples() -> None:
    """Touching spans and neighbouring literals merge; empty ones vanish."""
    assert Plan([Span(0, 2), Span(2, 3)]).pieces == (Span(0, 5),)
    assert Plan([Span(0, 2), Span(3, 3)]).pieces == (Span(0, 2), Span(3, 3))
    assert Plan([b"a", b"", b"b", Span(4, 0), b"c"]).pieces == (b"abc",)
    assert Plan([Span(0, 2), b"x", Span(2, 3)]).pieces == (Span(0, 2), b"x", Span(2, 3))
    assert Plan([Span(0, 2), Span(5, 0), Span(2, 1)]).pieces == (Span(0, 3),)
    assert Plan([bytearray(b"ab"), memoryview(b"cd")]).pieces == (b"abcd",)  # type: ignore[list-item]
    assert Plan(()).size == 0
    assert Plan(()).render(b"") == b""


@PLAN_SETTINGS
@given(sources_and_pieces(), st.data())
def test_descending_spans_rejected(case: tuple[bytes, list[Piece]], data: st.DataObject) -> None:
    """A non-empty span that starts before the end of the previous span is a ValueError."""
    _, pieces = case
    spans = [p for p in pieces if isinstance(p, Span) and p.length > 0]
    if not spans:
        spans = [Span(10, 5)]
        pieces = [*pieces, spans[0]]
    anchor = data.draw(st.sampled_from(spans))
    index = pieces.index(anchor)
    bad = Span(data.draw(st.integers(0, anchor.end - 1)), data.draw(st.integers(1, 50)))
    # Literals between the two spans must not hide the disorder.
    filler = data.draw(st.lists(st.binary(max_size=4), max_size=2))
    with pytest.raises(ValueError):
        Plan([*pieces[: index + 1], *filler, bad, *pieces[index + 1 :]])


@pytest.mark.parametrize("span", [Span(-1, 3), Span(0, -1), Span(-5, -5)])
def test_negative_span_rejected(span: Span) -> None:
    """Negative offsets and lengths are ValueErrors."""
    with pytest.raises(ValueError):
        Plan([b"x", span])


@PLAN_SETTINGS
@given(sources_and_pieces())
def test_render_past_source_end_rejected(case: tuple[bytes, list[Piece]]) -> None:
    """A plan over a shorter source than its spans need refuses to render."""
    source, pieces = case
    plan = Plan(pieces)
    last = max((s.end for s in plan.spans()), default=0)
    if last == 0:
        return
    with pytest.raises(ValueError):
        plan.render(source[: last - 1])


@PLAN_SETTINGS
@given(sources_and_pieces())
def test_source_bytes(case: tuple[bytes, list[Piece]]) -> None:
    """`source_bytes` counts exactly the output bytes that come from spans."""
    _, pieces = case
    plan = Plan(pieces)
    literal_bytes = sum(len(p) for p in plan.pieces if isinstance(p, bytes))
    assert plan.source_bytes == sum(p.length for p in pieces if isinstance(p, Span))
    assert plan.source_bytes == plan.size - literal_bytes
    assert list(plan.spans()) == [p for p in plan.pieces if isinstance(p, Span)]


@PLAN_SETTINGS
@given(
    sources_and_pieces(),
    st.lists(st.integers(1, 64), max_size=40),
    st.data(),
)
def test_filter_any_chunking(
    case: tuple[bytes, list[Piece]], sizes: list[int], data: st.DataObject
) -> None:
    """Fed the source from the first span (or earlier) in any chunking, the filter renders."""
    source, pieces = case
    plan = Plan(pieces)
    first = first_span_offset(plan)
    start = data.draw(
        st.one_of(st.just(first if first is not None else 0), st.integers(0, first or 0)),
        label="source_start",
    )
    assert run_filter(plan, source, start, sizes) == plan.render(source)


@PLAN_SETTINGS
@given(sources_and_pieces(), st.data())
def test_filter_one_byte_chunks(case: tuple[bytes, list[Piece]], data: st.DataObject) -> None:
    """One-byte chunks are the worst chunking; the output is still exact."""
    source, pieces = case
    plan = Plan(pieces)
    start = data.draw(st.integers(0, first_span_offset(plan) or 0), label="source_start")
    assert run_filter(plan, source, start, [1] * len(source)) == plan.render(source)


@PLAN_SETTINGS
@given(sources_and_pieces(), st.lists(st.integers(1, 64), max_size=40))
def test_filter_stops_at_wanted_until(case: tuple[bytes, list[Piece]], sizes: list[int]) -> None:
    """Feeding only up to `wanted_until()` completes the output (no wasted origin bytes)."""
    source, pieces = case
    plan = Plan(pieces)
    flt = PlanFilter(plan)
    out = list(flt.feed(b""))
    pos = 0
    steps = iter(sizes)
    while (until := flt.wanted_until()) is not None:
        assert pos < until <= len(source)
        step = min(next(steps, until - pos), until - pos)
        out.extend(flt.feed(source[pos : pos + step]))
        pos += step
    assert flt.finished
    assert b"".join(out) == plan.render(source)


@PLAN_SETTINGS
@given(sources_and_pieces(), st.data())
def test_filter_on_slices(case: tuple[bytes, list[Piece]], data: st.DataObject) -> None:
    """A sliced plan (a Range request) streams exactly through the filter."""
    source, pieces = case
    plan = Plan(pieces)
    part = plan.slice(data.draw(bounds(plan.size)), data.draw(bounds(plan.size)))
    start = data.draw(st.integers(0, first_span_offset(part) or 0), label="source_start")
    sizes = data.draw(st.lists(st.integers(1, 32), max_size=30), label="sizes")
    assert run_filter(part, source, start, sizes) == part.render(source)


def test_filter_literal_only_plan_flushes_on_empty_feed() -> None:
    """A plan without spans (a Range inside the header) needs no source byte."""
    flt = PlanFilter(Plan([b"head", b"er"]), source_start=7)
    assert flt.wanted_until() is None
    assert b"".join(flt.feed(b"")) == b"header"
    assert flt.finished
    assert flt.position == 7


def test_filter_rejects_start_past_wanted_span() -> None:
    """Starting the source after a span it still needs is a ValueError, not a short body."""
    flt = PlanFilter(Plan([b"h", Span(4, 4)]), source_start=5)
    with pytest.raises(ValueError):
        flt.feed(b"abcdef")


def test_filter_one_byte_chunks_example() -> None:
    """A hand-checked plan fed byte by byte, with trailing source after the last span."""
    source = bytes(range(20))
    plan = Plan([b"<", Span(2, 3), Span(5, 2), b"|", Span(10, 1), b">"])
    flt = PlanFilter(plan, source_start=1)
    out = [b for i in range(1, 20) for b in flt.feed(source[i : i + 1])]
    assert b"".join(out) == b"<" + bytes([2, 3, 4, 5, 6]) + b"|" + bytes([10]) + b">"
    assert flt.finished and flt.position == 20


class TooSlow(BaseException):
    """Raised by the timer of `test_many_literals_merge_in_linear_time`."""


def test_many_literals_merge_in_linear_time() -> None:
    """16000 literals of 64 bytes (1 MB) make a plan in well under a second."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise TooSlow("Plan() still merging literals after 1 s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        plan = Plan([b"x" * 64] * 16000)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert plan.pieces == (b"x" * 64 * 16000,)
