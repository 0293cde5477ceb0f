"""MP4 seeking against the ffmpeg oracle: which packets a clip keeps, and its timing."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from media_matrix import FFMPEG, FFPROBE, media
from mp4_rewrite import rewrite
from oracle import probe, streams_of
from vodedge.media.errors import InvalidSeek, MediaError, NoAudioTrack, UnsupportedMedia
from vodedge.media.mp4.seek import clip_plan
from vodedge.media.reading import run_bytes
from vodedge.media.seeking import parse_seconds

EPS = 1e-4
# ffmpeg rounds an edit that starts mid-frame to the frame before (this case's
# video edit starts 5.5 frames in), so its timestamps run half a frame earlier
# than the ones ISO/IEC 14496-12 gives; allow that much.
TIME_SLACK = {"mp4_trimmed_elst": 0.02}

CASES = [
    "mp4_h264_aac",
    "mp4_h264_aac_faststart",
    "mp4_h264_bframes_aac",
    "mp4_hevc_aac",
    "mp4_vp9_opus",
    "mp4_mpeg4_mp3",
    "mov_h264_pcm_s16le",
    "mp4_two_languages",
    "mp4_audio_delayed_elst",
    "mp4_trimmed_elst",
    "3gp_h264_aac",
    "m4a_aac",
]
# (start, end) pairs, seconds; the cases are 2 s long with a keyframe every 0.48 s.
SEEKS = [(0.7, None), (None, 1.3), (0.55, 1.45), (1.0, 1.2)]


def packets(path: Path, selector: str) -> list[dict[str, Any]]:
    """ffprobe's packets of one stream: pts_time, duration_time, flags, data_hash."""
    proc = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", selector, "-show_packets",
         "-show_data_hash", "md5", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out = json.loads(proc.stdout).get("packets", [])
    return sorted(out, key=lambda p: float(p.get("dts_time", p["pts_time"])))


def _pts(packet: dict[str, Any]) -> float:
    return float(packet["pts_time"])


def _clip(src: Path, tmp_path: Path, name: str = "clip", **kw: Any) -> Path:
    data = src.read_bytes()
    plan = run_bytes(clip_plan(len(data), **kw), data)
    out = tmp_path / f"{name}{src.suffix}"
    out.write_bytes(plan.render(data))
    return out


def _run_start(source: list[dict[str, Any]], clip: list[dict[str, Any]]) -> int:
    """Where the clip's packets sit in the source's, asserting they are one contiguous run."""
    hashes = [p["data_hash"] for p in source]
    wanted = [p["data_hash"] for p in clip]
    assert wanted, "the clip has no packets for this stream"
    for index in range(len(hashes) - len(wanted) + 1):
        if hashes[index : index + len(wanted)] == wanted:
            return index
    raise AssertionError("the clip's packets are not one contiguous run of the source's")


def _holding(source: list[dict[str, Any]], when: float) -> int:
    """The index of the packet that holds instant `when` (the first one before it)."""
    index = 0
    for i, packet in enumerate(source):
        if _pts(packet) <= when + EPS:
            index = i
    return index


@pytest.mark.parametrize("start,end", SEEKS)
@pytest.mark.parametrize("audio_only", [True, False], ids=["audio", "full"])
@pytest.mark.parametrize("case", CASES)
def test_clip_matches_oracle(
    case: str, audio_only: bool, start: float | None, end: float | None, tmp_path: Path
) -> None:
    """Every stream of the clip is a contiguous run of the source's packets starting
    where the rules say, and the clip lasts `end - start` within a packet or a GOP."""
    src = media(case)
    out = _clip(src, tmp_path, start=start, end=end, audio_only=audio_only)
    info = probe(out)
    source_info = probe(src)
    video_in = streams_of(source_info, "video")
    assert len(streams_of(info, "audio")) == len(streams_of(source_info, "audio"))
    if audio_only or not video_in:
        assert not streams_of(info, "video")
        begin = start or 0.0
    else:
        assert len(streams_of(info, "video")) == len(video_in)
        source_video = packets(src, "v:0")
        clip_video = packets(out, "v:0")
        first = _run_start(source_video, clip_video)
        keys = [i for i, p in enumerate(source_video) if "K" in p["flags"]]
        shown = [i for i in keys if _pts(source_video[i]) <= (start or 0.0) + EPS]
        expected = shown[-1] if shown and start is not None else keys[0]
        assert first == expected, f"video starts at packet {first}, keyframe rule says {expected}"
        begin = _pts(source_video[expected]) if start is not None else 0.0
        # Decode order: the keyframe comes first and is shown at 0; open-GOP leading
        # pictures after it may carry earlier (negative, edited-out) times.
        shown_at = _pts(source_video[0]) if first == 0 and start is None else 0.0
        assert abs(_pts(clip_video[0]) - shown_at) < EPS, "the clip's keyframe must be shown at 0"
        if end is not None:
            gop = max(
                _pts(source_video[b]) - _pts(source_video[a]) for a, b in itertools.pairwise(keys)
            )
            clip_span = float(streams_of(info, "video")[0]["duration"])
            assert abs(clip_span - (end - begin)) <= gop + EPS
    slack = TIME_SLACK.get(case, 0.0) + EPS
    for stream, described in enumerate(streams_of(source_info, "audio")):
        if described["codec_name"].startswith("pcm_"):
            _check_pcm(src, out, stream, described, begin, end)
            continue
        source_audio = packets(src, f"a:{stream}")
        clip_audio = packets(out, f"a:{stream}")
        first = _run_start(source_audio, clip_audio)
        if start is None:
            assert first == 0, "a clip without start keeps the beginning"
        elif first > 0 or _pts(source_audio[0]) <= begin:
            assert _pts(source_audio[first]) <= begin + slack, "audio starts after the start"
        if start is not None and first + 1 < len(source_audio):
            assert _pts(source_audio[first + 1]) > begin - slack, "audio starts a packet early"
        frame = float(source_audio[0]["duration_time"])
        after = first + len(clip_audio)
        if end is not None and after < len(source_audio):
            assert _pts(source_audio[after]) >= end - frame - slack
            assert _pts(clip_audio[-1]) - _pts(clip_audio[0]) <= end - begin + frame + slack
        if end is None:
            assert after == len(source_audio), "an open-ended clip keeps every later packet"


def _raw_audio(path: Path, stream: int) -> bytes:
    return subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}",
         "-c", "copy", "-f", "data", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip


def _check_pcm(
    src: Path, out: Path, stream: int, info: dict[str, Any], begin: float, end: float | None
) -> None:
    """PCM packets are demuxer-made groups of samples, so compare the sample bytes."""
    source_raw, clip_raw = _raw_audio(src, stream), _raw_audio(out, stream)
    block = int(info["channels"]) * int(info["bits_per_sample"]) // 8
    rate = int(info["sample_rate"])
    at = source_raw.find(clip_raw)
    assert at >= 0 and at % block == 0, "the clip's samples are not a run of the source's"
    first = packets(src, f"a:{stream}")[0]
    expected = int((begin - _pts(first)) * rate + 1e-6) * block
    assert at == max(expected, 0)
    if end is not None:
        assert abs(len(clip_raw) / block / rate - (end - max(begin, 0))) <= 1 / rate + EPS


def test_clip_of_co64_file(tmp_path: Path) -> None:
    """A source with 64-bit chunk offsets clips the same as the original."""
    src = media("mp4_h264_aac")
    co64 = tmp_path / "co64.mp4"
    co64.write_bytes(rewrite(src.read_bytes(), "co64"))
    plain = _clip(src, tmp_path, "plain", start=0.7, end=1.5)
    other = _clip(co64, tmp_path, "other", start=0.7, end=1.5)
    for selector in ("v:0", "a:0"):
        assert [p["data_hash"] for p in packets(plain, selector)] == [
            p["data_hash"] for p in packets(other, selector)
        ]


def test_clip_of_largesize_file(tmp_path: Path) -> None:
    """64-bit box headers everywhere do not change what a clip holds."""
    src = media("mp4_h264_bframes_aac")
    big = tmp_path / "large.mp4"
    big.write_bytes(rewrite(src.read_bytes(), "largesize"))
    out = _clip(big, tmp_path, start=0.5, end=None, audio_only=True)
    source_audio = packets(src, "a:0")
    first = _run_start(source_audio, packets(out, "a:0"))
    assert first == _holding(source_audio, 0.5)


@pytest.mark.parametrize(
    "start,end,message",
    [
        (-1.0, None, "start must be"),
        (float("nan"), None, "start must be"),
        (float("inf"), None, "start must be"),
        (1.0, 1.0, "must be after"),
        (1.5, 0.5, "must be after"),
        (30.0, None, "past the end"),
    ],
)
def test_bad_seek_values(start: float, end: float | None, message: str) -> None:
    """Bad bounds are a typed InvalidSeek with a readable message."""
    data = media("mp4_h264_aac").read_bytes()
    with pytest.raises(InvalidSeek, match=message) as caught:
        run_bytes(clip_plan(len(data), start=start, end=end), data)
    assert caught.value.code == "invalid_seek"


@pytest.mark.parametrize("text", ["", "abc", "-1", "1e3", "nan", "inf", "0x10", "1.2.3", " "])
def test_parse_seconds_refuses(text: str) -> None:
    """Only plain decimal seconds are accepted from URLs and the command line."""
    with pytest.raises(InvalidSeek):
        parse_seconds(text, "start")


def test_parse_seconds_accepts() -> None:
    """Integers and decimals parse to floats."""
    assert parse_seconds("12", "start") == 12.0
    assert parse_seconds("0.25", "end") == 0.25
    assert parse_seconds(".5", "end") == 0.5


def test_audio_only_clip_of_video_only_file() -> None:
    """No audio track: a typed error, not an empty file."""
    data = media("mp4_video_only").read_bytes()
    with pytest.raises(NoAudioTrack):
        run_bytes(clip_plan(len(data), start=0.5, end=None, audio_only=True), data)


def test_fragmented_is_refused_cleanly() -> None:
    """Seeking in fragmented files is not supported yet, and says so."""
    data = media("mp4_frag_default_base_moof").read_bytes()
    with pytest.raises(UnsupportedMedia, match="fragmented"):
        run_bytes(clip_plan(len(data), start=0.5, end=None), data)


def test_clip_is_smaller_and_sized_exactly(tmp_path: Path) -> None:
    """The plan's size is the file's size, and a clip is smaller than its source."""
    src = media("mp4_h264_aac")
    data = src.read_bytes()
    plan = run_bytes(clip_plan(len(data), start=1.0, end=None), data)
    assert plan.size == len(plan.render(data)) < len(data)


def test_errors_are_media_errors() -> None:
    """Garbage input gives a MediaError, never another exception."""
    for blob in (b"", b"\0" * 64, b"not an mp4 file at all, no", b"\0\0\0\x08ftyp" * 3):
        with pytest.raises(MediaError):
            run_bytes(clip_plan(len(blob), start=0.5, end=None), blob)
