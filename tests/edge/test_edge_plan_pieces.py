"""The pieces a plan over a complete cached file is sent as: its bytes exactly, the
first of them bytes when the plan starts with bytes (they go out with the headers)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.edge.cache import Body
from vodedge.edge.cache_index import ObjectMeta
from vodedge.edge.deliver import SENDFILE_MIN, FileSpan, plan_pieces
from vodedge.media.plan import Plan, Span

SOURCE = bytes(range(256)) * 2048  # 512 kB, every offset's byte known


@pytest.fixture(scope="module")
def body(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Body]:
    path = tmp_path_factory.mktemp("pieces") / "object"
    path.write_bytes(SOURCE)
    meta = ObjectMeta("k", len(SOURCE), None, None, None, 0.0, 1e12)
    fd = os.open(path, os.O_RDONLY)
    try:
        yield Body(meta, fd, None, Path(path))
    finally:
        os.close(fd)


lengths = st.one_of(
    st.integers(1, 4000), st.integers(SENDFILE_MIN - 2, SENDFILE_MIN + 2), st.integers(1, 150_000)
)
parts = st.lists(st.one_of(st.binary(min_size=1, max_size=3000), lengths), max_size=8)


@settings(max_examples=300, deadline=None)
@given(parts=parts, gaps=st.lists(st.integers(0, 20_000), min_size=8, max_size=8))
def test_pieces_are_the_plan(parts: list[bytes | int], gaps: list[int], body: Body) -> None:
    """Literals and spans of every size (small, around the sendfile threshold, large),
    back to back or apart: the pieces read back as the plan renders."""
    pieces: list[bytes | Span] = []
    offset = 0
    for part, gap in zip(parts, gaps, strict=False):
        if isinstance(part, bytes):
            pieces.append(part)
            continue
        offset += gap
        if offset + part > len(SOURCE):
            break
        pieces.append(Span(offset, part))
        offset += part
    plan = Plan(pieces)
    out = list(plan_pieces(plan, body).pieces)
    sent = b"".join(
        os.pread(body.fd, p.length, p.offset) if isinstance(p, FileSpan) else p for p in out
    )
    assert sent == plan.render(SOURCE)
    if plan.pieces and isinstance(plan.pieces[0], bytes):
        assert isinstance(out[0], bytes)
    # A small span is sent from the file only after the first piece, alone.
    for at, piece in enumerate(out):
        if isinstance(piece, FileSpan) and piece.length < SENDFILE_MIN:
            assert at > 0


def test_a_clips_last_chunk_is_sent_from_the_file(body: Body) -> None:
    """A clip: its moov and first small chunk together (with the headers), its large
    span and its small last chunk from the file."""
    plan = Plan([b"moov" * 100, Span(10, 300), Span(9000, 200_000), Span(211_000, 4_000)])
    out = list(plan_pieces(plan, body).pieces)
    assert out == [
        b"moov" * 100 + SOURCE[10:310],
        FileSpan(body.fd, 9000, 200_000),
        FileSpan(body.fd, 211_000, 4_000),
    ]
