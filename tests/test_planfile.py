"""write_plan_file writes exactly what the plan renders, however its spans lie in the source:
alone (sparse), a window at a time (dense), copied in the kernel (large), between literals."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.media.plan import Piece, Plan, Span
from vodedge.planfile import COPY_RANGE_MIN, DENSE_BYTES, WINDOW, write_plan_file

SOURCE_SIZE = 3 * WINDOW + COPY_RANGE_MIN + 12345


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("planfile") / "source.bin"
    path.write_bytes(random.Random(7).randbytes(SOURCE_SIZE))
    return path


def _written(plan: Plan, source: Path, out: Path) -> bytes:
    progress: list[int] = []
    src = os.open(source, os.O_RDONLY)
    dst = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        write_plan_file(plan, src, dst, progress.append)
    finally:
        os.close(src)
        os.close(dst)
    assert sum(progress) == plan.size
    return out.read_bytes()


def _spans(gap: int, length: int, start: int = 0, count: int = 10_000) -> list[Span]:
    """`count` spans of `length` bytes, `gap` bytes apart, from `start` while they fit."""
    spans = []
    offset = start
    while len(spans) < count and offset + length <= SOURCE_SIZE:
        spans.append(Span(offset, length))
        offset += length + gap
    return spans


@pytest.mark.parametrize(
    ("gap", "length"),
    [
        (DENSE_BYTES // 2, 300),  # dense: read a window at a time
        (DENSE_BYTES * 3, 700),  # sparse: a read per span
        (0, 100),  # touching (as a plan never has them, but the writer must not care)
        (WINDOW, 5000),  # one span per window
    ],
)
def test_spans_in_any_density(source: Path, tmp_path: Path, gap: int, length: int) -> None:
    plan = Plan([b"head", *_spans(gap, length)])
    data = source.read_bytes()
    assert _written(plan, source, tmp_path / "out") == plan.render(data)


def test_large_spans_between_literals_and_dense_runs(source: Path, tmp_path: Path) -> None:
    pieces: list[Piece] = [b"h", *_spans(100, 50, 10, 200), b"lit"]
    pieces += [Span(WINDOW, COPY_RANGE_MIN + 3), b"x", *_spans(9000, 20, 2 * WINDOW + 5, 40)]
    pieces += [Span(SOURCE_SIZE - 10, 10)]
    plan = Plan(pieces)
    assert _written(plan, source, tmp_path / "out") == plan.render(source.read_bytes())


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 9000)), max_size=300))
def test_generated_layouts(source: Path, layout: list[tuple[int, int]]) -> None:
    pieces: list[Piece] = [b"start"]
    offset = 0
    for gap, length in layout:
        offset += gap
        if offset + length > SOURCE_SIZE:
            break
        pieces.append(Span(offset, length))
        if length % 7 == 0:
            pieces.append(bytes([length % 256]) * 3)
        offset += length
    plan = Plan(pieces)
    assert _written(plan, source, source.with_name("out")) == plan.render(source.read_bytes())


@pytest.mark.parametrize("gap", [10, DENSE_BYTES * 2])
def test_a_source_shorter_than_the_plan_is_an_error(source: Path, tmp_path: Path, gap: int) -> None:
    plan = Plan([*_spans(gap, 400, SOURCE_SIZE - 50_000), Span(SOURCE_SIZE + 10, 400)])
    with pytest.raises(OSError, match="the input ended"):
        _written(plan, source, tmp_path / "out")
