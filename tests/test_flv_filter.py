"""The incremental FLV audio filter: what it keeps, drops and rewrites, in any chunking."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
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
    check_output,
    ex_audio,
    ex_video,
    flv,
    metadata,
    metadata_of,
    parse,
    run_filter,
    synthetic,
    tag,
    without_metadata,
)
from vodedge.media.errors import MalformedMedia, NoAudioTrack, NotFlv, TruncatedMedia
from vodedge.media.flv import FlvAudioFilter, flv_audio_plan
from vodedge.media.flv.amf0 import EcmaArray
from vodedge.media.reading import run_bytes

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "talk.flv"


def audio_only(data: bytes, chunks: list[int] | None = None) -> bytes:
    return run_filter(FlvAudioFilter(), data, chunks)


def plan_output(data: bytes) -> bytes:
    return run_bytes(flv_audio_plan(len(data)), data).render(data)


def test_header_keeps_only_the_audio_flag() -> None:
    out = audio_only(synthetic())
    assert out[:13] == b"FLV\x01\x04\x00\x00\x00\x09\x00\x00\x00\x00"


def test_header_without_audio_is_refused_before_any_output() -> None:
    flt = FlvAudioFilter()
    data = synthetic(Synthetic(flags=0x01))
    assert flt.feed(data[:8]) == []
    with pytest.raises(NoAudioTrack):
        flt.feed(data[8:])


@pytest.mark.parametrize("prefix", [b"F", b"FL", b"FLV"])
def test_not_flv_is_refused_at_the_first_wrong_byte(prefix: bytes) -> None:
    flt = FlvAudioFilter()
    assert flt.feed(prefix) == []
    with pytest.raises(NotFlv):
        FlvAudioFilter().feed(prefix[:-1] + b"X")


def test_header_size_below_nine_is_malformed() -> None:
    with pytest.raises(MalformedMedia):
        FlvAudioFilter().feed(b"FLV\x01\x05\x00\x00\x00\x08\x00\x00\x00\x00")


def test_video_dropped_audio_and_script_kept_byte_for_byte() -> None:
    cue = tag(SCRIPT, b"\x02\x00\x0aonCuePoint\x05", 1500)
    source = flv(
        [
            tag(SCRIPT, metadata({"duration": 1.0, "width": 2.0})),
            tag(VIDEO, avc_config()),
            tag(AUDIO, aac_config()),
            tag(VIDEO, avc_frame(True, 0)),
            tag(AUDIO, aac_frame(0), 0),
            tag(AUDIO, aac_frame(1), 23),
            cue,
            tag(VIDEO, ex_video(True, 1, b"av01", b"payload")),
            tag(AUDIO, ex_audio(1, b"fLaC", b"flac-frame"), 46),
            tag(AUDIO, b"\x2f" + b"m" * 10, 0x01234567),  # extended timestamp byte set
            tag(VIDEO, avc_frame(False, 1), 0x01234567),
        ]
    )
    out = audio_only(source)
    tags = check_output(out)
    source_tags = parse(source)[1]
    kept = [t for t in source_tags if t.kind != VIDEO and not t.is_metadata]
    assert [t.raw for t in tags if not t.is_metadata] == [t.raw for t in kept]
    assert tags[-1].ts == 0x01234567
    assert tags[0].is_metadata


def test_unknown_tag_types_are_dropped() -> None:
    source = flv([tag(AUDIO, aac_frame(0)), tag(20, b"??"), tag(AUDIO, aac_frame(1), 23)])
    assert [t.kind for t in check_output(audio_only(source))] == [AUDIO, AUDIO]


def test_encrypted_script_tags_are_kept_not_parsed() -> None:
    secret = tag(SCRIPT, b"\x02\x00\x0aonMetaData\xff\xff", type_bits=0x20)
    source = flv([secret, tag(AUDIO, aac_frame(0))])
    assert audio_only(source) == plan_output(source) == source[:4] + b"\x04" + source[5:]


def test_wrong_back_pointers_are_corrected() -> None:
    source = synthetic(Synthetic(bad_back_pointers=True))
    assert any(t.back != 11 + len(t.data) for t in parse(source)[1])
    out = audio_only(source)
    check_output(out)
    assert without_metadata(out) == without_metadata(plan_output(source))


def test_extra_header_bytes_are_dropped() -> None:
    source = synthetic(Synthetic(extra_header=b"\x00" * 23))
    out = audio_only(source)
    assert out[5:9] == b"\x00\x00\x00\x09"
    check_output(out)
    assert without_metadata(out) == without_metadata(plan_output(source))


def test_missing_final_back_pointer_is_tolerated() -> None:
    source = flv([tag(AUDIO, aac_frame(0)), tag(AUDIO, aac_frame(1), 23)])
    for cut in (1, 2, 4):
        out = audio_only(source[:-cut])
        assert out == audio_only(source) == plan_output(source[:-cut])
    # The first tag is whole when only its back-pointer is cut (and nothing follows).
    first_only = source[: 13 + 11 + len(aac_frame(0)) + 1]
    assert len(check_output(audio_only(first_only))) == 1


@pytest.mark.parametrize("cut", [5, 11, 20, 30, 36])
def test_truncated_input_emits_whole_tags_then_raises(cut: int) -> None:
    source = flv([tag(AUDIO, aac_frame(0)), tag(AUDIO, aac_frame(1), 23)])
    truncated = source[:-cut]
    for chunks in (None, [1], [7]):
        flt = FlvAudioFilter()
        out: list[bytes] = []
        position = 0
        step = chunks[0] if chunks else len(truncated)
        while position < len(truncated):
            out += flt.feed(truncated[position : position + step])
            position += step
        with pytest.raises(TruncatedMedia):
            flt.close()
        produced = b"".join(out)
        tags = check_output(produced)
        assert len(tags) == 1  # the first tag is whole, the second is not
    with pytest.raises(TruncatedMedia):
        run_bytes(flv_audio_plan(len(truncated)), truncated)


def test_empty_and_header_only_inputs() -> None:
    with pytest.raises(TruncatedMedia):
        FlvAudioFilter().close()
    header_only = flv([])
    assert audio_only(header_only) == header_only[:4] + b"\x04" + header_only[5:]
    # A plan sees the whole file: no audio tag at all is an error it can report.
    with pytest.raises(NoAudioTrack):
        plan_output(header_only)


def test_streamed_metadata_describes_audio_only() -> None:
    source = synthetic()
    meta = metadata_of(audio_only(source))
    assert isinstance(meta, EcmaArray)
    assert meta["hasVideo"] is False
    for key in ("width", "height", "videocodecid", "filesize", "keyframes"):
        assert key not in meta
    assert meta["duration"] == 3.0 and meta["audiocodecid"] == 10.0 and meta["stereo"] is True


def test_metadata_as_an_object_stays_an_object() -> None:
    meta = metadata_of(audio_only(synthetic(Synthetic(metadata_object=True))))
    assert type(meta) is dict and meta["hasVideo"] is False


def test_malformed_metadata_is_a_typed_error() -> None:
    bad = b"\x02\x00\x0aonMetaData\x08\x00\x00\x00\x01\x00\x01a\x04"  # reserved marker
    source = flv([tag(SCRIPT, bad), tag(AUDIO, aac_frame(0))])
    with pytest.raises(MalformedMedia):
        audio_only(source)
    with pytest.raises(MalformedMedia):
        plan_output(source)


def test_enhanced_flv_audio_kept_video_dropped() -> None:
    source = synthetic(Synthetic(enhanced=True))
    tags = check_output(audio_only(source))
    assert {t.kind for t in tags} == {AUDIO, SCRIPT}
    assert sum(t.kind == AUDIO for t in tags) == sum(t.kind == AUDIO for t in parse(source)[1])


CASES = {
    "plain": Synthetic(),
    "enhanced": Synthetic(enhanced=True),
    "object_metadata": Synthetic(metadata_object=True, keyframe_index=False),
    "bad_back_pointers": Synthetic(bad_back_pointers=True),
    "extended_ts": Synthetic(start_ms=0xFFFF00, extra_header=b"\x01\x02"),
    "audio_only": Synthetic(with_video=False, flags=0x04),
}


@pytest.mark.parametrize("name", sorted(CASES))
@given(chunks=st.lists(st.integers(1, 600), min_size=1, max_size=8))
@settings(max_examples=30, deadline=None)
def test_any_chunking_gives_the_plan_output(name: str, chunks: list[int]) -> None:
    source = synthetic(CASES[name])
    whole = audio_only(source)
    assert audio_only(source, chunks) == whole
    assert without_metadata(whole) == without_metadata(plan_output(source))


@pytest.mark.parametrize("chunks", [[1], [3, 1000, 17], [65536]], ids=str)
def test_sample_in_chunks_matches_plan(chunks: list[int]) -> None:
    source = SAMPLE.read_bytes()
    assert without_metadata(audio_only(source, chunks)) == without_metadata(plan_output(source))
