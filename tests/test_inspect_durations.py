"""`vodedge inspect` durations against ffprobe's, for every test file (ffprobe is the oracle).

A track's duration is what it plays: edit lists applied (an AAC track whose
priming is skipped by its edit lasts 8.000 s, not 8.023 s), movie fragments
counted (not 0.000 s). It must agree with ffprobe's stream duration within
one sample (the longest packet of that stream).

Where ffprobe's stream duration ends before its own last packet starts (it
takes it from the last `sidx` of a per-fragment-sidx file, not the fragments),
the oracle is ffprobe's packet timeline instead: the end of its last packet
(from the stream's start).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from media_matrix import FFPROBE, FLV_CASES, MP4_CASES, SHARED_MEDIA, media
from oracle import run_cli
from vodedge.media.errors import MediaError
from vodedge.media.flv import flv_summary
from vodedge.media.mp4.summary import Mp4Summary, mp4_summary
from vodedge.media.reading import run_bytes
from vodedge.media.sniff import looks_like_flv


def _ffprobe(*args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [FFPROBE, "-v", "error", "-of", "json", *args], capture_output=True, text=True, timeout=120
    )
    try:
        data: dict[str, Any] = json.loads(proc.stdout or "{}")
    except json.JSONDecodeError:  # ffprobe died half-way through its answer
        data = {}
    return data


def _packets(probe: dict[str, Any], index: int) -> list[tuple[float, float]]:
    """(pts, duration) in seconds of the packets ffprobe read from stream `index`."""
    return [
        (float(p["pts_time"]), float(p["duration_time"]))
        for p in probe.get("packets", [])
        if p.get("stream_index") == index and "pts_time" in p and "duration_time" in p
    ]


def _params() -> list[object]:
    out: list[object] = []
    for name, case in {**MP4_CASES, **FLV_CASES}.items():
        marks = [pytest.mark.slow] if case.slow else []
        out.append(pytest.param(("case", name), id=name, marks=marks))
    for path in sorted(SHARED_MEDIA.glob("*")):
        if path.suffix in (".mp4", ".3gp", ".flv"):
            out.append(pytest.param(("shared", str(path)), id=path.name))
    return out


def _path(which: tuple[str, str]) -> Path:
    kind, name = which
    return media(name) if kind == "case" else Path(name)


@pytest.mark.parametrize("which", _params())
def test_inspect_durations_agree_with_ffprobe(which: tuple[str, str]) -> None:
    """Every track ffprobe gives a duration agrees with ours within one sample."""
    path = _path(which)
    data = path.read_bytes()
    probe = _ffprobe(
        "-show_streams", "-show_format",
        "-show_entries", "packet=stream_index,pts_time,duration_time", str(path),
    )  # fmt: skip
    if not probe:
        pytest.skip("ffprobe cannot read it")
    if looks_like_flv(data[:16]):
        flv = run_bytes(flv_summary(len(data)), data)
        want = float(probe["format"]["duration"])
        # An FLV's duration is a single figure (onMetaData, else the tag timestamps).
        longest = max(
            (d for s in probe["streams"] for _, d in _packets(probe, int(s["index"]))), default=0.0
        )
        assert flv.duration is not None
        assert abs(flv.duration - want) <= longest + 1e-6, (flv.duration, want)
        return
    try:
        summary: Mp4Summary = run_bytes(mp4_summary(len(data)), data)
    except MediaError as exc:  # a file inspect refuses: nothing to compare, said clearly
        cli = run_cli("inspect", path)
        assert cli.returncode == 2 and "Traceback" not in cli.stderr, cli.stderr
        pytest.skip(f"inspect refuses it: {exc}")
    ours = {t.id: t for t in summary.tracks}
    compared = 0
    streams = [
        s
        for s in probe.get("streams", [])
        # Cover art is an attached picture, not a track.
        if "duration" in s and "id" in s and not s.get("disposition", {}).get("attached_pic")
    ]
    if not streams:
        pytest.skip("ffprobe gives no track a duration")
    for stream in streams:
        track = ours.get(int(stream["id"], 16))
        assert track is not None, f"ffprobe's stream {stream['id']} is no track of ours"
        packets = _packets(probe, int(stream["index"]))
        want = float(stream["duration"])
        start = float(stream.get("start_time", 0))
        if packets and start + want < max(pts for pts, _ in packets):
            want = max(pts + duration for pts, duration in packets) - start
        # ffprobe lists no packets of some broken files: then the mean sample.
        mean = want / int(stream["nb_frames"]) if int(stream.get("nb_frames", 0)) else 0.0
        one_sample = max((duration for _, duration in packets), default=mean)
        assert track.duration is not None, f"track {track.id}: no duration, ffprobe says {want}"
        assert abs(track.duration - want) <= one_sample + 1e-6, (
            f"track {track.id} ({track.kind}): {track.duration:.6f} s, ffprobe {want:.6f} s "
            f"(one sample is {one_sample:.6f} s)"
        )
        compared += 1
    assert compared == len(streams)


@pytest.mark.parametrize(
    ("name", "want"),
    [("talk.mp4", "8.000 s"), ("tail-moov.mp4", "8.000 s")],
)
def test_inspect_prints_what_browsers_play(name: str, want: str) -> None:
    """The README's samples: the audio track lasts what the edit list presents."""
    samples = Path(__file__).resolve().parent.parent / "samples"
    proc = run_cli("inspect", samples / name)
    assert proc.returncode == 0, proc.stderr
    audio = [line for line in proc.stdout.splitlines() if " audio " in line]
    assert audio and all(want in line for line in audio), proc.stdout
