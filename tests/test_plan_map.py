"""Plans read from another plan's stored output (`OutputMap`): the same bytes, spans
merged where they touch there, and None for any byte the stored output lacks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings

from test_mp4_index import SOURCES, bounds, indexed, source
from vodedge.media.errors import MediaError
from vodedge.media.mp4.index import Mp4Index
from vodedge.media.plan import Plan, Span
from vodedge.media.plan_map import OutputMap

SOURCE = bytes(range(256)) * 4


def test_spans_map_into_the_output_and_merge_there() -> None:
    """Spans with gaps in the source touch in the stored output: one span there."""
    stored = Plan([b"head", Span(10, 5), Span(40, 20), Span(100, 8)])
    output = stored.render(SOURCE)
    plan = Plan([b"new head", Span(12, 3), Span(40, 20), Span(100, 2), b"tail", Span(104, 4)])
    mapped = OutputMap(stored).remap(plan)
    assert mapped is not None
    assert mapped.pieces == (b"new head", Span(6, 25), b"tail", Span(33, 4))
    assert mapped.render(output) == plan.render(SOURCE)


@pytest.mark.parametrize(
    "span",
    [Span(8, 4), Span(14, 2), Span(30, 1), Span(59, 2), Span(108, 1), Span(200, 1), Span(0, 1)],
)
def test_a_byte_the_output_lacks_maps_to_none(span: Span) -> None:
    """Any source byte outside the stored plan's spans: the plan cannot read from it."""
    stored = Plan([b"head", Span(10, 5), Span(40, 20), Span(100, 8)])
    assert OutputMap(stored).remap(Plan([b"x", span])) is None
    assert OutputMap(Plan([b"only literals"])).remap(Plan([span])) is None


def test_literals_alone_need_no_source() -> None:
    """A plan of literals maps to itself."""
    plan = Plan([b"abc"])
    assert OutputMap(Plan([Span(0, 4)])).remap(plan) == plan


@pytest.mark.parametrize("spec", SOURCES)
def test_audio_clips_read_from_the_stored_audio(spec: str) -> None:
    """Every audio-only clip maps into the stored bytes of all audio samples and renders
    the same bytes from there; a full clip maps too when all it copies is audio."""
    data = source(spec)
    index = indexed(spec)
    if not isinstance(index, Mp4Index):
        pytest.skip("the file is refused")
    try:
        audio = index.audio_map()
    except MediaError:
        pytest.skip("no audio-only output")
    stored = audio.plan.render(data)
    assert not [p for p in audio.plan.pieces if not isinstance(p, Span)]

    @settings(
        max_examples=12 if len(data) > 20_000_000 else 30,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(bounds(spec))
    def check(pair: tuple[float | None, float | None]) -> None:
        start, end = pair
        for audio_only in (True, False):
            try:
                plan = index.clip(start, end, audio_only=audio_only)
            except MediaError:
                continue
            mapped = audio.remap(plan)
            if audio_only:
                assert mapped is not None
            if mapped is not None:
                assert mapped.size == plan.size
                assert mapped.render(stored) == plan.render(data)
                assert len(mapped.pieces) <= len(plan.pieces)

    check()
