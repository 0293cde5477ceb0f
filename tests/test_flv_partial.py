"""FLV seeks planned from the head and the tags from the seek's keyframe on (the
keyframes index placing it): the whole file's plan byte for byte, reading only those."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_matrix import media
from vodedge.media.errors import MediaError
from vodedge.media.flv.index import FlvIndex, read_flv_index
from vodedge.media.flv.partial import partial_plan, read_head
from vodedge.media.flv.seek import parse_seek
from vodedge.media.plan import Plan
from vodedge.media.reading import run, run_bytes

WITH_INDEX = ["flv_h264_aac_kfindex", "flv_h264_aac_10s_kfindex", "flv_video_only_kfindex"]


@functools.cache
def _data(name: str) -> bytes:
    return media(name).read_bytes()


@functools.cache
def _index(name: str) -> FlvIndex:
    data = _data(name)
    index = run_bytes(read_flv_index(len(data)), data)
    assert isinstance(index, FlvIndex)
    return index


def _partial(name: str, seek: dict[str, object], audio_only: bool) -> tuple[Plan | None, int]:
    """The partial plan and how many bytes it read (each read counted once)."""
    data = _data(name)
    read: set[int] = set()

    def read_at(offset: int, length: int) -> bytes:
        read.update(range(offset, min(offset + length, len(data))))
        return data[offset : offset + length]

    found = run(partial_plan(len(data), parse_seek(**seek), audio_only), read_at)  # type: ignore[arg-type]
    return (None if found is None else found[0]), len(read)


@st.composite
def seeks(draw: st.DrawFn) -> tuple[str, dict[str, object], bool]:
    name = draw(st.sampled_from(WITH_INDEX))
    head = run_bytes(read_head(len(_data(name))), _data(name))
    assert head is not None, name
    if draw(st.booleans()):
        start = int(draw(st.sampled_from(sorted(head.positions))))
        end = draw(st.none() | st.integers(start + 1, len(_data(name)) + 100))
        return name, {"start": start, "end": end}, draw(st.booleans())
    start_s = draw(st.floats(0.01, 12.0, allow_nan=False))
    end_s = draw(st.none() | st.floats(start_s + 0.01, 13.0, allow_nan=False))
    return name, {"start": start_s, "end": end_s, "by_time": True}, False


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seeks())
def test_partial_plans_are_the_whole_files_plans(case: tuple[str, dict[str, object], bool]) -> None:
    """Wherever the index places the seek, the plan is the whole file's; it reads less
    than the file whenever the seek starts past the first keyframe."""
    name, seek, audio_only = case
    data = _data(name)
    try:
        want = _index(name).plan(audio_only, parse_seek(**seek))  # type: ignore[arg-type]
    except MediaError as exc:
        with pytest.raises(type(exc)):
            _partial(name, seek, audio_only)
        return
    got, read = _partial(name, seek, audio_only)
    if got is None:
        # Only a time before the first indexed keyframe leaves the index without one.
        assert seek.get("by_time"), (name, seek)
        return
    assert want is not None and got.render(data) == want.render(data), (name, seek)
    assert read <= len(data)


@pytest.mark.parametrize("name", WITH_INDEX)
def test_a_late_start_reads_little_of_the_file(name: str) -> None:
    """From the last indexed keyframe: the head and the tail, not the middle."""
    data = _data(name)
    head = run_bytes(read_head(len(data)), data)
    assert head is not None
    last = int(max(head.positions))
    got, read = _partial(name, {"start": last}, False)
    assert got is not None and got.render(data) == _index(name).plan(
        False, parse_seek(last)
    ).render(data)  # type: ignore[union-attr]
    assert read < head.end + (len(data) - last) + (64 << 10) + (2 << 20)


@pytest.mark.parametrize("name", ["flv_h264_aac", "flv_h264_mp3"])
def test_without_a_keyframes_index_there_is_no_partial_plan(name: str) -> None:
    data = _data(name)
    assert run_bytes(read_head(len(data)), data) is None
    got, _ = _partial(name, {"start": len(data) // 2}, False)
    assert got is None


@st.composite
def mutants(draw: st.DrawFn) -> tuple[bytes, dict[str, object]]:
    name = draw(st.sampled_from(WITH_INDEX))
    data = bytearray(_data(name))
    head = run_bytes(read_head(len(data)), bytes(data))
    assert head is not None
    start = int(draw(st.sampled_from(sorted(head.positions))))
    for _ in range(draw(st.integers(1, 6))):
        # Mostly the head (metadata, keyframes index, sequence headers) and the tags
        # around the seek's keyframe: what the partial read looks at.
        near = draw(st.sampled_from([(0, head.end), (max(start - 64, 0), start + 64)]))
        at = draw(st.integers(near[0], min(near[1], len(data)) - 1))
        data[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    seek = draw(
        st.sampled_from(
            [
                {"start": start},
                {"start": 2.0, "by_time": True},
                {"start": start, "end": start + 5000},
            ]
        )
    )
    return bytes(data), seek


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutants())
def test_a_damaged_file_gets_a_plan_none_or_a_media_error(
    case: tuple[bytes, dict[str, object]],
) -> None:
    """Damaged metadata, keyframes index, tags or a cut file: the partial read answers
    with a plan within the file, None (the whole file is read), or a MediaError; never
    another exception, and never a span past the file's end."""
    data, seek = case
    try:
        found = run_bytes(partial_plan(len(data), parse_seek(**seek), False), data)  # type: ignore[arg-type]
    except MediaError:
        return
    if found is not None:
        plan, _ = found
        assert all(span.end <= len(data) for span in plan.spans())
