"""FLV seeking: byte offsets and seconds, resolved to tags; clips that decode."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flv_media import (
    AUDIO,
    SCRIPT,
    VIDEO,
    Synthetic,
    Tag,
    check_output,
    metadata_of,
    parse,
    run_filter,
    synthetic,
    without_metadata,
)
from vodedge.media.errors import InvalidSeek
from vodedge.media.flv import (
    FlvAudioFilter,
    FlvClipFilter,
    flv_audio_plan,
    flv_clip_plan,
    parse_seek,
)
from vodedge.media.flv.seek import SeekValue
from vodedge.media.reading import run_bytes

SOURCE = synthetic(Synthetic(seconds=4, fps=10, gop=5))
SOURCE_NO_INDEX = synthetic(Synthetic(seconds=4, fps=10, gop=5, keyframe_index=False))
TAGS = parse(SOURCE)[1]


def clip(
    source: bytes,
    start: SeekValue = None,
    end: SeekValue = None,
    by_time: bool = False,
    audio_only: bool = False,
) -> bytes:
    plan = run_bytes(flv_clip_plan(len(source), start, end, by_time, audio_only), source)
    out = plan.render(source)
    assert len(out) == plan.size
    return out


def media_tags(out: bytes) -> list[Tag]:
    return [t for t in check_output(out) if t.kind in (AUDIO, VIDEO)]


def is_config(t: Tag) -> bool:
    return t.data[0] >> 4 == 10 and t.data[1] == 0 if t.kind == AUDIO else t.data[1] == 0


def is_keyframe(t: Tag) -> bool:
    return t.kind == VIDEO and t.data[0] >> 4 == 1 and t.data[1] == 1


# -- validation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "by_time", "expected"),
    [
        (None, None, False, (None, None)),
        (0, None, False, (None, None)),
        ("100", "200", False, (100, 200)),
        (100.0, None, False, (100, None)),
        ("1.5", "2", True, (1.5, 2.0)),
        (" 3 ", None, True, (3.0, None)),
        (0, 2, True, (None, 2.0)),
    ],
)
def test_valid_seek_values(
    start: SeekValue, end: SeekValue, by_time: bool, expected: tuple[object, object]
) -> None:
    seek = parse_seek(start, end, by_time)
    assert (seek.start, seek.end) == expected


@pytest.mark.parametrize(
    ("start", "end", "by_time"),
    [
        (-1, None, False),
        ("-1", None, True),
        (float("nan"), None, True),
        ("nan", None, True),
        ("inf", None, True),
        (math.inf, None, False),
        ("abc", None, False),
        ("", None, True),
        ("1.5", None, False),  # bytes are whole
        (10.5, None, False),
        (True, None, False),
        (10, 10, False),
        (10, 5, False),
        (None, 0, True),
        (2.0, 1.0, True),
    ],
)
def test_invalid_seek_values(start: SeekValue, end: SeekValue, by_time: bool) -> None:
    with pytest.raises(InvalidSeek):
        parse_seek(start, end, by_time)
    with pytest.raises(InvalidSeek):
        clip(SOURCE, start, end, by_time)


@pytest.mark.parametrize("by_time", [False, True])
def test_start_past_the_end(by_time: bool) -> None:
    start = 999.0 if by_time else len(SOURCE)
    with pytest.raises(InvalidSeek):
        clip(SOURCE, start, by_time=by_time)
    with pytest.raises(InvalidSeek):
        clip(SOURCE, start, by_time=by_time, audio_only=True)


def test_start_inside_the_last_tag_is_past_the_end() -> None:
    with pytest.raises(InvalidSeek):
        clip(SOURCE, TAGS[-1].offset + 3)
    flt = FlvClipFilter(start=TAGS[-1].offset + 3)
    flt.feed(SOURCE)
    with pytest.raises(InvalidSeek):
        flt.close()


# -- byte offsets ------------------------------------------------------------------------


def test_byte_start_at_a_tag() -> None:
    at = TAGS[40]
    out = clip(SOURCE, at.offset)
    tags = check_output(out)
    assert tags[0].is_metadata
    # The last sequence headers before the start come next, then the source from `at` on.
    assert [t.raw for t in tags[1:3]] == [t.raw for t in TAGS if t.kind != SCRIPT][:2]
    assert all(is_config(t) for t in tags[1:3])
    rest = [t.raw for t in TAGS if t.offset >= at.offset]
    assert [t.raw for t in tags[3:]] == rest


def test_byte_start_inside_a_tag_resynchronises_on_the_next() -> None:
    at = TAGS[40]
    for inside in (at.offset - 1, at.offset - 8, TAGS[39].offset + 1):
        assert without_metadata(clip(SOURCE, inside)) == without_metadata(clip(SOURCE, at.offset))


def test_byte_end_keeps_tags_starting_before_it() -> None:
    start, end = TAGS[20], TAGS[60]
    out = clip(SOURCE, start.offset, end.offset + 1)
    assert check_output(out)[-1].raw == end.raw
    out = clip(SOURCE, start.offset, end.offset)
    assert check_output(out)[-1].raw == TAGS[59].raw


def test_byte_clip_audio_only() -> None:
    out = clip(SOURCE, TAGS[30].offset, TAGS[80].offset, audio_only=True)
    tags = check_output(out)
    assert {t.kind for t in tags} == {AUDIO, SCRIPT}
    assert is_config(tags[1])
    expected = [t.raw for t in TAGS[30:80] if t.kind == AUDIO]
    assert [t.raw for t in tags[2:]] == expected
    assert out[4] == 0x04


@given(
    start=st.integers(0, len(SOURCE) - 100),
    length=st.none() | st.integers(1, len(SOURCE)),
    audio_only=st.booleans(),
    chunk=st.integers(1, 3000),
)
@settings(max_examples=150, deadline=None)
def test_streamed_byte_clip_equals_plan(
    start: int, length: int | None, audio_only: bool, chunk: int
) -> None:
    end = None if length is None else start + length
    try:
        planned = clip(SOURCE, start, end, audio_only=audio_only)
    except InvalidSeek:
        flt = (
            FlvAudioFilter(start=start, end=end)
            if audio_only
            else FlvClipFilter(start=start, end=end)
        )
        with pytest.raises(InvalidSeek):
            run_filter(flt, SOURCE, [chunk])
        return
    flt = (
        FlvAudioFilter(start=start, end=end) if audio_only else FlvClipFilter(start=start, end=end)
    )
    streamed = run_filter(flt, SOURCE, [chunk])
    assert without_metadata(streamed) == without_metadata(planned)
    meta = metadata_of(streamed)
    if meta is not None:  # None: the clip ends before the metadata tag
        assert "filesize" not in meta and "keyframes" not in meta
        assert "duration" not in meta or (start == 0 and end is None)


def test_stream_stops_at_end_without_reading_further() -> None:
    flt = FlvClipFilter(start=TAGS[10].offset, end=TAGS[20].offset)
    out = b"".join(flt.feed(SOURCE[: TAGS[21].offset]))
    assert flt.finished
    assert flt.feed(b"garbage that is never parsed") == []
    assert flt.close() == []
    assert check_output(out)[-1].raw == TAGS[19].raw


# -- seconds ------------------------------------------------------------------------------


@pytest.mark.parametrize("source", [SOURCE, SOURCE_NO_INDEX], ids=["index", "scan"])
@pytest.mark.parametrize("start", [0.05, 0.5, 1.0, 1.26, 2.3, 3.9])
def test_time_start_full_video_begins_at_the_keyframe_at_or_before(
    source: bytes, start: float
) -> None:
    out = clip(source, start, by_time=True)
    tags = media_tags(out)
    configs = [t for t in tags if is_config(t)]
    assert (len(configs) == 2 and tags[:2] == configs[:2]) or tags[0].ts == 0
    first_frame = next(t for t in tags if not is_config(t))
    assert is_keyframe(first_frame)
    assert first_frame.ts <= start * 1000
    source_keys = [t for t in parse(source)[1] if is_keyframe(t)]
    expected = [t for t in source_keys if t.ts <= start * 1000][-1]
    assert first_frame.raw == expected.raw
    # From there on, every source tag (but metadata) is there, in order.
    rest = [t.raw for t in parse(source)[1] if t.offset >= expected.offset and not t.is_metadata]
    assert [t.raw for t in check_output(out) if not t.is_metadata][-len(rest) :] == rest


@pytest.mark.parametrize("start", [0.05, 1.0, 1.26, 3.9])
def test_time_start_audio_only_is_frame_precise(start: float) -> None:
    out = clip(SOURCE, start, by_time=True, audio_only=True)
    tags = [t for t in media_tags(out) if not is_config(t)]
    audio = [t for t in TAGS if t.kind == AUDIO and not is_config(t)]
    expected = [t for t in audio if t.ts <= start * 1000][-1]
    assert tags[0].raw == expected.raw
    assert [t.raw for t in tags] == [t.raw for t in audio if t.offset >= expected.offset]


@pytest.mark.parametrize("audio_only", [False, True])
def test_time_end(audio_only: bool) -> None:
    out = clip(SOURCE, 1.0, 2.5, by_time=True, audio_only=audio_only)
    frames = [t for t in media_tags(out) if not is_config(t)]
    assert max(t.ts for t in frames) < 2500
    source_frames = [t for t in TAGS if t.kind in (AUDIO, VIDEO) and not is_config(t)]
    if audio_only:
        source_frames = [t for t in source_frames if t.kind == AUDIO]
    stop = next(t for t in source_frames if t.ts >= 2500)
    assert frames[-1].offset < stop.offset
    last_kept = [t for t in source_frames if t.offset < stop.offset][-1]
    assert frames[-1].raw == last_kept.raw


def test_clip_metadata_describes_the_clip() -> None:
    out = clip(SOURCE, 1.2, 3.0, by_time=True)
    meta = metadata_of(out)
    assert meta is not None
    assert meta["filesize"] == float(len(out))
    assert meta["width"] == 320.0  # video kept
    duration = meta["duration"]
    assert isinstance(duration, float) and abs(duration - (3.0 - 1.0)) <= 0.1
    index = meta["keyframes"]
    assert isinstance(index, dict)
    by_offset = {t.offset: t for t in check_output(out)}
    positions = index["filepositions"]
    times = index["times"]
    assert isinstance(positions, list) and isinstance(times, list) and positions
    for time, position in zip(times, positions, strict=True):
        assert isinstance(position, float) and isinstance(time, float)
        found = by_offset[int(position)]
        assert is_keyframe(found) and found.ts == round(time * 1000)
    assert times[0] == 1.0 and times[-1] == 2.5


def test_index_pointing_nowhere_falls_back_to_scanning() -> None:
    # Shift every position in the index by one byte: no entry points at a tag.
    meta = metadata_of(SOURCE)
    assert meta is not None and isinstance(meta["keyframes"], dict)
    positions = meta["keyframes"]["filepositions"]
    assert isinstance(positions, list)
    broken = SOURCE
    from vodedge.media.flv import amf0

    for p in positions:
        assert isinstance(p, float)
        broken = broken.replace(amf0.encode(p), amf0.encode(p + 1.0), 1)
    assert broken != SOURCE and len(broken) == len(SOURCE)
    assert without_metadata(clip(broken, 2.3, by_time=True)) == without_metadata(
        clip(SOURCE, 2.3, by_time=True)
    )


def test_audio_plan_takes_the_same_seek_arguments() -> None:
    a = run_bytes(flv_audio_plan(len(SOURCE), 1.0, 2.0, True), SOURCE).render(SOURCE)
    assert a == clip(SOURCE, 1.0, 2.0, True, audio_only=True)
