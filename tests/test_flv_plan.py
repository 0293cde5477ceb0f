"""FLV plans: exact sizes, spans on tag boundaries, metadata that describes the output."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from flv_media import (
    AUDIO,
    SCRIPT,
    VIDEO,
    Synthetic,
    aac_frame,
    check_output,
    flv,
    metadata,
    metadata_of,
    parse,
    run_filter,
    synthetic,
    tag,
)
from vodedge.media.errors import NoAudioTrack, NotFlv, TruncatedMedia
from vodedge.media.flv import FlvAudioFilter, flv_audio_plan, flv_clip_plan, flv_summary
from vodedge.media.flv.amf0 import AmfValue
from vodedge.media.plan import Plan, Span
from vodedge.media.reading import ReadRequest, run, run_bytes

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "samples" / "talk.flv"


def plan_of(data: bytes) -> Plan:
    return run_bytes(flv_audio_plan(len(data)), data)


def requests_of(data: bytes) -> tuple[Plan, list[ReadRequest]]:
    seen: list[ReadRequest] = []

    def read_at(offset: int, length: int) -> bytes:
        seen.append(ReadRequest(offset, length))
        return data[offset : offset + length]

    return run(flv_audio_plan(len(data)), read_at), seen


def test_plan_is_header_metadata_then_spans_on_tag_boundaries() -> None:
    source = synthetic()
    plan = plan_of(source)
    first = plan.pieces[0]
    assert isinstance(first, bytes) and first.startswith(b"FLV\x01\x04")
    assert all(isinstance(p, Span) for p in plan.pieces[1:])
    starts = {t.offset for t in parse(source)[1]}
    ends = {t.offset + 11 + len(t.data) + 4 for t in parse(source)[1]}
    for span in plan.spans():
        assert span.offset in starts and span.end in ends
    out = plan.render(source)
    assert len(out) == plan.size
    check_output(out)


def test_a_time_clip_has_the_exact_filesize_and_a_rebuilt_keyframes_index() -> None:
    source = synthetic()
    out = run_bytes(flv_clip_plan(len(source), 0.001, by_time=True, audio_only=True), source)
    out = out.render(source)
    meta = metadata_of(out)
    assert meta is not None and meta["filesize"] == float(len(out))
    source_meta = metadata_of(source)
    assert source_meta is not None
    index = meta["keyframes"]
    source_index = source_meta["keyframes"]
    assert isinstance(index, dict) and isinstance(source_index, dict)
    assert index["times"] == source_index["times"]
    positions = index["filepositions"]
    assert isinstance(positions, list) and len(positions) == len(source_index["times"])
    by_offset = {t.offset: t for t in parse(out)[1]}
    for time, position in zip(index["times"], positions, strict=True):
        assert isinstance(time, float) and isinstance(position, float)
        found = by_offset[int(position)]
        assert found.kind == AUDIO
        assert found.ts <= time * 1000 + 0.5
        # ...and it is the last audio frame at or before that time.
        later = [t for t in parse(out)[1] if t.kind == AUDIO and t.offset > found.offset]
        assert not later or later[0].ts > time * 1000


def test_plan_without_a_source_index_adds_none() -> None:
    source = synthetic(Synthetic(keyframe_index=False))
    meta = metadata_of(plan_of(source).render(source))
    assert meta is not None and "keyframes" not in meta and meta["hasVideo"] is False


def test_a_plan_a_stream_could_make_is_the_streams_bytes() -> None:
    """Without a time clip the layout is unknown to a stream when it writes the metadata:
    the plan writes the same (no filesize, no keyframes), so one URL is one body."""
    source = synthetic()
    out = plan_of(source).render(source)
    meta = metadata_of(out)
    assert meta is not None and "filesize" not in meta and "keyframes" not in meta
    assert run_filter(FlvAudioFilter(), source, [1000]) == out
    for start in (0, len(source) // 3):
        plan = run_bytes(flv_clip_plan(len(source), start, audio_only=True), source)
        assert run_filter(FlvAudioFilter(start=start), source, [777]) == plan.render(source)


def test_a_time_clip_adds_filesize_when_the_source_had_none() -> None:
    source = flv([tag(SCRIPT, metadata({"duration": 1.0})), tag(AUDIO, aac_frame(0))])
    out = run_bytes(flv_clip_plan(len(source), None, 0.5, by_time=True, audio_only=True), source)
    out = out.render(source)
    meta = metadata_of(out)
    assert meta is not None and meta["filesize"] == float(len(out))


def test_layout_keys_of_the_source_are_not_carried_over() -> None:
    extra: dict[str, AmfValue] = {
        "datasize": 1.0,
        "canSeekToEnd": True,
        "lastkeyframelocation": 5.0,
        "hasKeyframes": True,
        "videosize": 3.0,
        "audiosize": 2.0,
    }
    source = flv([tag(SCRIPT, metadata(extra)), tag(AUDIO, aac_frame(0))])
    meta = metadata_of(plan_of(source).render(source))
    assert meta is not None
    assert meta["hasKeyframes"] is False and meta["audiosize"] == 2.0
    for key in ("datasize", "canSeekToEnd", "lastkeyframelocation", "videosize"):
        assert key not in meta


def test_plan_reads_in_large_blocks() -> None:
    source = SAMPLE.read_bytes()
    _, seen = requests_of(source)
    assert len(seen) <= 2
    big = synthetic(Synthetic(seconds=600, fps=30, gop=60))  # a few MB of small tags
    _, seen = requests_of(big)
    assert len(seen) <= len(big) // (1 << 20) + 3
    assert all(r.length >= min(1 << 20, len(big) - r.offset) for r in seen)


def test_header_without_audio_is_refused_after_one_read() -> None:
    source = synthetic(Synthetic(flags=0x01))
    seen: list[ReadRequest] = []

    def read_at(offset: int, length: int) -> bytes:
        seen.append(ReadRequest(offset, length))
        return source[offset : offset + length]

    with pytest.raises(NoAudioTrack):
        run(flv_audio_plan(len(source)), read_at)
    assert len(seen) == 1


def test_no_audio_tags_is_no_audio_track() -> None:
    source = synthetic(Synthetic(with_audio=False))  # the header still claims audio
    with pytest.raises(NoAudioTrack):
        plan_of(source)


def test_not_flv() -> None:
    with pytest.raises(NotFlv):
        plan_of(b"\x00\x00\x00\x18ftypisom" + b"\0" * 100)


@pytest.mark.parametrize("cut", [1, 5, 11, 30])
def test_truncated_file_is_refused(cut: int) -> None:
    source = synthetic()
    if cut <= 4:
        plan_of(source[:-cut])  # only the redundant last back-pointer is missing
        return
    with pytest.raises(TruncatedMedia):
        plan_of(source[:-cut])


def test_source_shorter_than_announced_is_truncated() -> None:
    source = synthetic()
    with pytest.raises(TruncatedMedia):
        run(flv_audio_plan(len(source) + 1000), lambda o, n: source[o : o + n])


def test_plan_slices_like_the_rendered_output() -> None:
    source = synthetic()
    plan = plan_of(source)
    out = plan.render(source)
    for lo, hi in ((0, 13), (5, 400), (100, len(out)), (len(out) - 3, len(out))):
        assert plan.slice(lo, hi).render(source) == out[lo:hi]


def test_summary_of_sample() -> None:
    source = SAMPLE.read_bytes()
    summary = run_bytes(flv_summary(len(source)), source)
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["header_has_audio"] and data["header_has_video"]
    assert data["audio_codecs"] == ["aac"] and data["video_codecs"] == ["avc"]
    tags = parse(source)[1]
    for kind, name in ((AUDIO, "audio"), (VIDEO, "video"), (SCRIPT, "script")):
        mine = [t for t in tags if t.kind == kind]
        assert data["tags"][name] == {
            "count": len(mine),
            "bytes": sum(15 + len(t.data) for t in mine),
        }
    assert data["audio_only_bytes"] == plan_of(source).size
    assert data["metadata"]["width"] == 320.0
    assert data["duration"] == pytest.approx(8.08)


def test_summary_of_enhanced_truncated_file_does_not_raise() -> None:
    source = synthetic(Synthetic(enhanced=True))[:-30]
    summary = run_bytes(flv_summary(len(source)), source)
    assert summary.truncated is not None
    assert summary.audio_codecs == ["Opus"] and summary.video_codecs == ["hvc1"]
    assert summary.audio_only_bytes is None and summary.audio_only_error
    assert summary.keyframe_index_entries and summary.metadata
    assert summary.metadata["keyframes"] == {"entries": summary.keyframe_index_entries}
    json.dumps(summary.to_dict())


def test_summary_of_odd_metadata_serialises() -> None:
    bad_number = struct.pack(">d", float("nan"))
    source = flv(
        [
            tag(
                SCRIPT, metadata({"x": 1.0})[:-3] + b"\x00\x01n\x00" + bad_number + b"\x00\x00\x09"
            ),
            tag(AUDIO, aac_frame(0)),
        ]
    )
    summary = run_bytes(flv_summary(len(source)), source)
    assert summary.metadata == {"x": 1.0, "n": "nan"}
    json.dumps(summary.to_dict(), allow_nan=False)
