"""The FLV tag index plans exactly what the scanning planner plans, for any seek."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flv_media import (
    AUDIO,
    SCRIPT,
    VIDEO,
    Synthetic,
    aac_config,
    aac_frame,
    avc_config,
    avc_frame,
    flv,
    metadata,
    synthetic,
    tag,
)
from vodedge.media.errors import MediaError
from vodedge.media.flv.index import FlvIndex, read_flv_index
from vodedge.media.flv.plan import flv_clip_plan
from vodedge.media.flv.seek import parse_seek
from vodedge.media.plan import Plan, Span
from vodedge.media.reading import run_bytes

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO.parent / "shared" / "media"


def _real() -> list[tuple[str, bytes]]:
    paths = [REPO / "samples" / "talk.flv", *sorted(MEDIA.glob("*.flv"))]
    return [(path.name, path.read_bytes()) for path in paths if path.exists()]


def _made() -> list[tuple[str, bytes]]:
    cases = {
        "plain": Synthetic(),
        "enhanced": Synthetic(enhanced=True),
        "no_keyframes": Synthetic(keyframe_index=False),
        "object_meta": Synthetic(metadata_object=True),
        "bad_back": Synthetic(bad_back_pointers=True),
        "late_start": Synthetic(start_ms=5000),
        "audio_only": Synthetic(with_video=False, flags=0x04),
        "video_only": Synthetic(with_audio=False, flags=0x01),
        "long_gop": Synthetic(seconds=6.0, gop=17, audio_ms=23),
    }
    out = [(name, synthetic(options)) for name, options in cases.items()]
    # A second onMetaData mid-file, and one that is not decodable.
    frames = [tag(AUDIO, aac_frame(n), 40 * n) for n in range(30)]
    late = [*frames[:10], tag(SCRIPT, metadata({"duration": 1.0})), *frames[10:]]
    out.append(("two_metas", flv([tag(SCRIPT, metadata({"duration": 1.2})), *late], 0x04)))
    broken = [*frames[:5], tag(SCRIPT, b"\x02\x00\nonMetaData\x08\x00"), *frames[5:]]
    out.append(("broken_meta", flv(broken, 0x04)))
    return out


@functools.cache
def sources() -> list[tuple[str, bytes]]:
    """Real and generated FLVs, and each cut short at a few places."""
    whole = _real() + _made()
    cuts = [
        (f"{name}[:{cut}]", data[:cut])
        for name, data in whole[:4] + whole[-3:]
        for cut in (len(data) * 2 // 3, len(data) - 7)
    ]
    return whole + cuts


def _outcome(make: object) -> Plan | tuple[type[BaseException], str]:
    try:
        return make()  # type: ignore[operator, no-any-return]
    except MediaError as exc:
        return type(exc), str(exc)


@functools.cache
def _index(number: int) -> FlvIndex | tuple[type[BaseException], str] | None:
    data = sources()[number][1]
    try:
        return run_bytes(read_flv_index(len(data)), data)
    except MediaError as exc:
        return type(exc), str(exc)


def test_real_samples_are_present() -> None:
    assert [name for name, _ in _real() if name.startswith("srs__")], "no FLV in ../shared/media"


@st.composite
def requests(draw: st.DrawFn) -> tuple[int, bool, bool, float | int | None, float | int | None]:
    number = draw(st.integers(0, len(sources()) - 1))
    size = len(sources()[number][1])
    by_time = draw(st.booleans())
    audio_only = draw(st.booleans())
    if by_time:
        point = st.floats(0, 40, allow_nan=False) | st.integers(0, 40).map(float)
    else:
        point = st.integers(0, size + 100)
    start = draw(st.none() | point)
    end = draw(st.none() | point)
    return number, by_time, audio_only, start, end


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_index_plans_what_the_scan_plans(
    request: tuple[int, bool, bool, float | int | None, float | int | None],
) -> None:
    number, by_time, audio_only, start, end = request
    name, data = sources()[number]

    def scanned() -> Plan:
        return run_bytes(flv_clip_plan(len(data), start, end, by_time, audio_only), data)

    expected = _outcome(scanned)
    index = _index(number)
    if isinstance(index, tuple):  # the header itself is refused, whatever the seek
        assert expected == index, name
        return
    if index is None:
        return  # metadata over the limit: the caller scans
    got = _outcome(lambda: index.clip_plan(start, end, by_time, audio_only))
    if got is None:
        assert index.tags.truncated is not None, name
        return
    assert got == expected, (name, request)
    if isinstance(got, Plan):
        assert got.size == expected.size  # type: ignore[union-attr]
        assert got.output_starts() == expected.output_starts()  # type: ignore[union-attr]
        assert got.render(data) == expected.render(data)  # type: ignore[union-attr]


@pytest.mark.parametrize("number", range(len(_real())))
def test_every_keyframe_start_of_real_samples(number: int) -> None:
    data = sources()[number][1]
    index = _index(number)
    assert isinstance(index, FlvIndex)
    stamps = sorted(set(index.stamps.tolist()))[::7]
    for stamp in stamps:
        for audio_only in (False, True):
            start = stamp / 1000.0
            got = _outcome(lambda: index.clip_plan(start, None, True, audio_only))  # noqa: B023
            made = flv_clip_plan(len(data), start, None, True, audio_only)
            assert got == _outcome(lambda: run_bytes(made, data))  # noqa: B023


@pytest.mark.parametrize("number", range(len(_real()) + 6))
def test_audio_only_outputs_read_from_the_audio_map(number: int) -> None:
    """Every audio-only output copies only bytes the object's audio map holds: remapped
    onto the map's output (the stored rendition) it renders the same bytes."""
    name, data = sources()[number]
    index = _index(number)
    assert isinstance(index, FlvIndex), name
    audio = index.audio_map()
    stored = audio.plan.render(data)
    starts: list[float | None] = [None, 0.0, 0.5, 1.7, 2.4, 1000.0]
    for start in starts:
        for end in (None, 2.0 if start is None else start + 1.0):
            got = _outcome(lambda: index.clip_plan(start, end, True, True))  # noqa: B023
            if not isinstance(got, Plan):
                continue
            mapped = audio.remap(got)
            assert mapped is not None, (name, start, end)
            assert mapped.render(stored) == got.render(data), (name, start, end)


@functools.cache
def _stored(number: int) -> bytes:
    """The stored audio of source `number`: the output of its audio map's plan."""
    index = _index(number)
    assert isinstance(index, FlvIndex)
    return index.audio_map().plan.render(sources()[number][1])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_stored_audio_plans_make_what_the_source_plans_make(
    request: tuple[int, bool, bool, float | int | None, float | int | None],
) -> None:
    """An audio-only plan over the stored audio: the same outcome and bytes as the plan
    over the source, in a span per stretch without a rewritten tag between."""
    number, by_time, _, start, end = request
    name, data = sources()[number]
    index = _index(number)
    if not isinstance(index, FlvIndex):
        return
    try:
        seek = parse_seek(start, end, by_time)
    except MediaError:
        return
    expected = _outcome(lambda: index.plan(True, seek))
    got = _outcome(lambda: index.stored_plan(seek))
    if not isinstance(expected, Plan) or not isinstance(got, Plan):
        assert got == expected, (name, request)
        return
    assert index.audio_size == len(_stored(number))
    assert got.size == expected.size, (name, request)
    assert got.render(_stored(number)) == expected.render(data), (name, request)
    # The sequence header, one range of kept tags, and one more after each tag rewritten.
    spans = [p for p in got.pieces if isinstance(p, Span)]
    rewritten = len(index.kept_breaks) + len(index.meta_positions)
    assert len(spans) <= 2 + rewritten, (name, request, got.pieces)


def test_a_long_file_s_stored_plan_is_a_few_pieces() -> None:
    """30 minutes of interleaved audio and video: from any start, the header and
    metadata, the sequence header and one range of the stored audio."""
    frames = [tag(AUDIO, aac_config()), tag(VIDEO, avc_config())]
    for n in range(4000):
        frames.append(tag(AUDIO, aac_frame(n), 23 * n))
        if n % 2 == 0:
            frames.append(tag(VIDEO, avc_frame(n % 50 == 0, n), 23 * n))
    data = flv([tag(SCRIPT, metadata({"duration": 92.0})), *frames], 0x05)
    index = run_bytes(read_flv_index(len(data)), data)
    assert isinstance(index, FlvIndex)
    stored = index.audio_map().plan.render(data)
    for start in (None, 0.0, 10.0, 45.5):
        seek = parse_seek(start, None, True)
        got, expected = index.stored_plan(seek), index.plan(True, seek)
        assert isinstance(got, Plan) and isinstance(expected, Plan)
        assert len(expected.pieces) > 1000
        assert len(got.pieces) <= 3, got.pieces
        assert got.render(stored) == expected.render(data)
