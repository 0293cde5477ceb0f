"""FLV extraction and seeking against the ffmpeg oracle, on the generated matrix and real files."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from flv_media import check_output, metadata_of, run_filter
from media_matrix import FFMPEG, FFPROBE, FLV_CASES, Case, media
from oracle import audio_framemd5, first_diff, framemd5, probe, streams_of
from vodedge.media.errors import MediaError
from vodedge.media.flv import FlvAudioFilter, FlvClipFilter, flv_audio_plan, flv_clip_plan
from vodedge.media.reading import run_bytes

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
SHARED_FLV = sorted(SHARED.glob("*.flv"))


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def decode_errors(path: Path) -> str:
    """What ffmpeg complains about while demuxing all of `path` (empty: nothing)."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-c", "copy",
         "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    return proc.stderr.strip() if proc.returncode == 0 else f"exit {proc.returncode}"


def packet_lines(path: Path, selector: str) -> list[str]:
    """framemd5 packet lines (stream, dts, pts, duration, size, hash) of one stream."""
    return [line for line in framemd5(path, selector).splitlines() if not line.startswith("#")]


def packets(path: Path, kind: str) -> list[dict[str, Any]]:
    """ffprobe's packets of the first stream of `kind` ("a"/"v"): dts_time, flags, size."""
    proc = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", f"{kind}:0", "-show_packets",
         "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    found: list[dict[str, Any]] = json.loads(proc.stdout).get("packets", [])
    return found


def is_contiguous_run(part: list[str], whole: list[str]) -> int:
    """Where `part` sits in `whole` as one contiguous run; fails the test if it does not."""
    assert part, "no packets"
    starts = [i for i, line in enumerate(whole) if line == part[0]]
    for at in starts:
        if whole[at : at + len(part)] == part:
            return at
    pytest.fail(f"not a contiguous run of the input's packets: {part[:2]} ...")


# -- audio extraction ---------------------------------------------------------------------


def _cases() -> list[Any]:
    return [pytest.param(case, id=case.name) for case in FLV_CASES.values()]


@pytest.mark.parametrize("case", _cases())
def test_audio_extraction_matches_the_oracle(case: Case, tmp_path: Path) -> None:
    source_path = media(case.name)
    source = source_path.read_bytes()
    if case.error is not None:
        with pytest.raises(MediaError) as planned:
            run_bytes(flv_audio_plan(len(source)), source)
        assert planned.value.code == case.error
        with pytest.raises(MediaError) as streamed:
            run_filter(FlvAudioFilter(), source, [4096])
        assert streamed.value.code == case.error
        return
    plan = run_bytes(flv_audio_plan(len(source)), source)
    out = plan.render(source)
    assert len(out) == plan.size
    out_path = _write(tmp_path, "audio.flv", out)
    expected, actual = audio_framemd5(source_path), audio_framemd5(out_path)
    assert actual == expected, first_diff(expected, actual)
    info = probe(out_path)
    assert not streams_of(info, "video")
    assert [s["codec_name"] for s in streams_of(info, "audio")] == [
        s["codec_name"] for s in streams_of(probe(source_path), "audio")
    ]
    assert decode_errors(out_path) == ""
    meta = metadata_of(out)
    assert meta is not None and meta["hasVideo"] is False and "filesize" not in meta
    assert "width" not in meta and "videocodecid" not in meta
    # One URL, one body: streamed on a miss or planned once cached, the same bytes.
    streamed = run_filter(FlvAudioFilter(), source, [4096, 1, 333])
    assert streamed == out
    assert audio_framemd5(_write(tmp_path, "streamed.flv", streamed)) == expected


@pytest.mark.parametrize(
    "name", [c.name for c in FLV_CASES.values() if c.keyframe_index and not c.error]
)
def test_rebuilt_keyframe_index_points_at_audio_in_the_output(name: str) -> None:
    source = media(name).read_bytes()
    source_meta = metadata_of(source)
    assert source_meta is not None
    source_index = source_meta["keyframes"]
    assert isinstance(source_index, dict)
    # A time-based clip (from 1 ms here) knows its layout before it is sent: its index is
    # rebuilt. (Plans a stream could also make describe what a stream can know.)
    clip = flv_clip_plan(len(source), 0.001, by_time=True, audio_only=True)
    if not source_index["times"]:  # e.g. audio only: nothing was indexed
        meta = metadata_of(run_bytes(clip, source).render(source))
        assert meta is not None and "keyframes" not in meta and meta["hasKeyframes"] is False
        return
    out = run_bytes(clip, source).render(source)
    meta = metadata_of(out)
    assert meta is not None and meta["hasKeyframes"] is True
    index = meta["keyframes"]
    assert isinstance(index, dict) and index["times"] == source_index["times"]
    times, positions = index["times"], index["filepositions"]
    assert isinstance(times, list) and isinstance(positions, list)
    tags = {t.offset: t for t in check_output(out)}
    for time, position in zip(times, positions, strict=True):
        assert isinstance(time, float) and isinstance(position, float)
        assert tags[int(position)].kind == 8 and tags[int(position)].ts <= time * 1000 + 0.5


@pytest.mark.parametrize("path", SHARED_FLV, ids=lambda p: p.name)
def test_shared_samples(path: Path, tmp_path: Path) -> None:
    source = path.read_bytes()
    out = run_bytes(flv_audio_plan(len(source)), source).render(source)
    out_path = _write(tmp_path, "audio.flv", out)
    expected, actual = audio_framemd5(path), audio_framemd5(out_path)
    assert actual == expected, first_diff(expected, actual)
    assert not streams_of(probe(out_path), "video")


# -- seeking ----------------------------------------------------------------------------

# (case, start s, end s); the 10 s case has a keyframes index, the 2 s one has none.
TIME_SEEKS = [
    ("flv_h264_aac_10s_kfindex", 3.3, None),
    ("flv_h264_aac_10s_kfindex", 2.0, 6.1),
    ("flv_h264_aac_10s_kfindex", 0.0, 1.0),
    ("flv_h264_aac", 0.7, None),
    ("flv_h264_aac", 0.55, 1.45),
    ("flv_flv1_nellymoser", 0.9, 1.5),
    ("flv_h264_mp3", 1.0, None),
]


@pytest.mark.parametrize(("name", "start", "end"), TIME_SEEKS)
def test_time_clip_with_video(name: str, start: float, end: float | None, tmp_path: Path) -> None:
    source_path = media(name)
    source = source_path.read_bytes()
    plan = run_bytes(flv_clip_plan(len(source), start, end, by_time=True), source)
    out_path = _write(tmp_path, "clip.flv", plan.render(source))
    assert decode_errors(out_path) == ""
    video_in, video_out = packets(source_path, "v"), packets(out_path, "v")
    at = is_contiguous_run(packet_lines(out_path, "0:v"), packet_lines(source_path, "0:v"))
    assert "K" in video_out[0]["flags"], "a clip starts at a keyframe"
    keys = [float(p["dts_time"]) for p in video_in if "K" in p["flags"]]
    expected = max((k for k in keys if k <= start + 1e-6), default=keys[0])
    assert float(video_out[0]["dts_time"]) == expected
    assert at == next(
        i for i, p in enumerate(video_in) if p["dts_time"] == video_out[0]["dts_time"]
    )
    is_contiguous_run(packet_lines(out_path, "0:a"), packet_lines(source_path, "0:a"))
    if end is not None:
        last = video_out[-1]
        assert float(last["dts_time"]) < end
        gop = max(b - a for a, b in itertools.pairwise(keys)) if len(keys) > 1 else 10.0
        frame = float(last["dts_time"]) - float(video_out[-2]["dts_time"])
        span = float(last["dts_time"]) + frame - float(video_out[0]["dts_time"])
        assert end - start - frame - 1e-6 <= span <= end - start + gop + 1e-6


@pytest.mark.parametrize(("name", "start", "end"), TIME_SEEKS)
def test_time_clip_audio_only(name: str, start: float, end: float | None, tmp_path: Path) -> None:
    source_path = media(name)
    source = source_path.read_bytes()
    plan = run_bytes(flv_audio_plan(len(source), start, end, by_time=True), source)
    out_path = _write(tmp_path, "clip.flv", plan.render(source))
    assert not streams_of(probe(out_path), "video")
    is_contiguous_run(packet_lines(out_path, "0:a"), packet_lines(source_path, "0:a"))
    audio = packets(out_path, "a")
    first, last = audio[0], audio[-1]
    duration = float(first["duration_time"])
    assert float(first["dts_time"]) <= start + 1e-6 < float(first["dts_time"]) + duration + 1e-6
    if end is not None:
        stop = float(last["dts_time"]) + float(last["duration_time"])
        assert end - 1e-6 <= stop + 1e-3 and float(last["dts_time"]) < end
        span = stop - float(first["dts_time"])
        assert abs(span - (end - start)) <= 2 * duration + 1e-3


@pytest.mark.parametrize("name", ["flv_h264_aac_10s_kfindex", "flv_h264_mp3"])
@pytest.mark.parametrize("fraction", [0.1, 0.37, 0.8])
def test_byte_clip_streamed_and_planned(name: str, fraction: float, tmp_path: Path) -> None:
    source_path = media(name)
    source = source_path.read_bytes()
    start = int(len(source) * fraction)
    for audio_only, flt in (
        (False, FlvClipFilter(start=start)),
        (True, FlvAudioFilter(start=start)),
    ):
        plan = run_bytes(flv_clip_plan(len(source), start, audio_only=audio_only), source)
        out = plan.render(source)
        streamed = run_filter(flt, source, [65536])
        assert streamed == out
        out_path = _write(tmp_path, f"clip{audio_only}.flv", streamed)
        assert decode_errors(out_path) == ""
        is_contiguous_run(packet_lines(out_path, "0:a"), packet_lines(source_path, "0:a"))
        if not audio_only:
            is_contiguous_run(packet_lines(out_path, "0:v"), packet_lines(source_path, "0:v"))
