"""MPEG-TS trial playback against the ffmpeg oracle and an independent packet walk.

A preview must decode without an error, last N seconds to within one PES packet
(ffprobe's duration), hold the source's first packets of every stream byte for
byte, and keep for every PID a prefix of that PID's TS packets: PAT and PMT
first, continuity counters untouched (nothing is renumbered).
"""

from __future__ import annotations

import itertools
import subprocess
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest

from media_matrix import FFMPEG, FFPROBE, SHARED_MEDIA, TS_CASES
from vodedge.media.errors import InvalidSeek, NotMpegTs, TruncatedMedia
from vodedge.media.plan import Plan
from vodedge.media.reading import run_bytes
from vodedge.media.ts import ts_preview_plan

PREVIEW_MEDIA = SHARED_MEDIA.parent / "preview-media"
SHARED_TS = sorted(PREVIEW_MEDIA.glob("*.ts"))
# This sample starts in the middle of an AC-3 frame, so every frame straddles two PES
# packets: a cut between PES packets leaves the last frame short, as its first one is.
STRADDLING = {"androidx-media__sample_ac3.ts"}


def plan_of(data: bytes, seconds: float) -> Plan:
    """The preview plan of `data` in memory."""
    return run_bytes(ts_preview_plan(len(data), seconds), data)


# --- an independent walk over TS packets (test-side, not the code under test) ----------


def packet_size(data: bytes) -> tuple[int, int]:
    """(packet size, offset of the sync byte in a packet): 188/0 or 192/4."""
    if all(data[i * 188] == 0x47 for i in range(min(4, len(data) // 188))):
        return 188, 0
    assert all(data[4 + i * 192] == 0x47 for i in range(min(4, len(data) // 192)))
    return 192, 4


def packets_by_pid(data: bytes) -> dict[int, list[bytes]]:
    """Every PID's TS packets, in order."""
    size, sync = packet_size(data)
    out: dict[int, list[bytes]] = defaultdict(list)
    for at in range(0, len(data) - size + 1, size):
        p = data[at : at + size]
        assert p[sync] == 0x47
        out[((p[sync + 1] & 0x1F) << 8) | p[sync + 2]].append(p)
    return out


def pes_pts(data: bytes) -> dict[int, list[int]]:
    """Per PID, the PTS of each PES packet that carries one, in file order."""
    _, sync = packet_size(data)
    out: dict[int, list[int]] = defaultdict(list)
    for pid, packets in packets_by_pid(data).items():
        for p in packets:
            h = p[sync:]
            if not h[1] & 0x40 or not (h[3] >> 4) & 1:
                continue
            off = 4 + (1 + h[4] if (h[3] >> 4) & 2 else 0)
            pes = h[off:]
            if pes[:3] != b"\0\0\1" or len(pes) < 14 or not pes[7] & 0x80:
                continue
            pts = (
                ((pes[9] >> 1) & 7) << 30 | pes[10] << 22 | (pes[11] >> 1) << 15
                | pes[12] << 7 | pes[13] >> 1
            )  # fmt: skip
            out[pid].append(pts)
    return out


def longest_pes(data: bytes) -> float:
    """The longest time between two PES packets of one stream, in presentation order."""
    longest = 0
    for values in pes_pts(data).values():
        first = values[0]
        unwrapped = sorted(first + (v - first + 2**32) % 2**33 - 2**32 for v in values)
        longest = max([longest, *(b - a for a, b in itertools.pairwise(unwrapped))])
    return longest / 90_000


def continuity_ok(packets: list[bytes], sync: int) -> bool:
    """Whether a PID's continuity counters run on without a gap (repeats allowed)."""
    last = None
    for p in packets:
        if not (p[sync + 3] >> 4) & 1:  # no payload: the counter does not move
            continue
        cc = p[sync + 3] & 0x0F
        if last is not None and cc not in ((last + 1) % 16, last) and not p[sync + 5] & 0x80:
            return False
        last = cc
    return True


# --- the ffmpeg side ------------------------------------------------------------------


def stream_packets(path: Path) -> dict[str, list[str]]:
    """Per stream, ffmpeg's framemd5 lines (dts, pts, duration, size, hash) of `path`."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-copyts", "-i", str(path), "-map", "0",
         "-c", "copy", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    out: dict[str, list[str]] = defaultdict(list)
    for line in proc.stdout.splitlines():
        if line and not line.startswith("#"):
            parts = [x.strip() for x in line.split(",")]
            out[parts[0]].append(",".join(parts[1:6]))
    return out


def duration(path: Path) -> float:
    """ffprobe's duration of `path`."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out.strip())


def decode_errors(path: Path) -> set[str]:
    """ffmpeg's complaints while decoding every stream of `path` (addresses stripped)."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0", "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    return {line.split("] ", 1)[-1] for line in proc.stderr.splitlines() if line.strip()}


def check_preview(source: Path, seconds: float, tmp_path: Path) -> bytes:
    """Cut `source` to `seconds` and hold the result against the oracle."""
    data = source.read_bytes()
    plan = plan_of(data, seconds)
    out = plan.render(data)
    assert len(out) == plan.size
    size, sync = packet_size(data)
    assert len(out) % size == 0, "whole packets only"
    target = tmp_path / f"{source.stem}-{seconds}{source.suffix}"
    target.write_bytes(out)
    # Every PID keeps a prefix of its packets: PAT/PMT first, counters as they were.
    source_pids, preview_pids = packets_by_pid(data), packets_by_pid(out)
    assert 0 in preview_pids, "the PAT is kept"
    for pid, packets in preview_pids.items():
        assert packets == source_pids[pid][: len(packets)], f"PID {pid} is not a prefix"
        assert continuity_ok(packets, sync), f"PID {pid} continuity"
    # Every stream's packets are the source's first ones.
    errors = decode_errors(target)
    source_streams, preview_streams = stream_packets(source), stream_packets(target)
    assert set(preview_streams) == set(source_streams), "every stream is in the preview"
    for stream, lines in preview_streams.items():
        if source.name in STRADDLING:
            assert lines[:-1] == source_streams[stream][: len(lines) - 1]
            assert errors <= decode_errors(source)
        else:
            assert lines == source_streams[stream][: len(lines)], f"stream {stream}"
            assert errors == set()
    whole = duration(source)
    tolerance = longest_pes(data) + 1e-3
    assert abs(duration(target) - min(seconds, whole)) <= tolerance, (duration(target), tolerance)
    return out


@pytest.mark.parametrize("seconds", [0.3, 1.5, 3.2, 60.0])
@pytest.mark.parametrize("name", sorted(TS_CASES))
def test_generated_preview_against_ffmpeg(
    name: str, seconds: float, media: Callable[[str], Path], tmp_path: Path
) -> None:
    """Every generated TS flavour, at several lengths."""
    source = media(name)
    out = check_preview(source, seconds, tmp_path)
    if seconds < 5:
        assert len(out) < source.stat().st_size


@pytest.mark.parametrize("seconds", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("source", SHARED_TS, ids=lambda p: p.name)
def test_shared_preview_against_ffmpeg(source: Path, seconds: float, tmp_path: Path) -> None:
    """The real files beside the repository (AC-3 audio only, H.264 video only)."""
    check_preview(source, seconds, tmp_path)


def test_the_cut_is_at_the_first_pes_past_n(media: Callable[[str], Path]) -> None:
    """The prefix ends right before the first PES whose PTS is N past the first PTS."""
    data = media("ts_mp2_audio_only").read_bytes()
    out = plan_of(data, 1.0).render(data)
    [pts] = [v for pid, v in pes_pts(data).items() if pid != 0]
    kept = pes_pts(out)
    [kept_pts] = list(kept.values())
    assert all((p - pts[0]) % (1 << 33) < 90_000 for p in kept_pts)
    assert (pts[len(kept_pts)] - pts[0]) % (1 << 33) >= 90_000
    assert data.startswith(out), "audio only: a pure prefix"


def test_pts_wrap_is_crossed(media: Callable[[str], Path]) -> None:
    """The wrap case's PTS really wrap, and a preview across the wrap is not cut short."""
    data = media("ts_h264_aac_pts_wrap").read_bytes()
    values = [v for vs in pes_pts(data).values() for v in vs]
    assert max(values) > (1 << 33) - 5 * 90_000 and min(values) < 5 * 90_000
    out = plan_of(data, 3.0).render(data)
    kept = [v for vs in pes_pts(out).values() for v in vs]
    assert min(kept) < 5 * 90_000, "the preview goes on past the wrap"


def test_not_ts_and_bad_lengths(media: Callable[[str], Path]) -> None:
    """Typed errors for input that is not TS, a short source and bad preview lengths."""
    data = media("ts_h264_aac").read_bytes()
    with pytest.raises(NotMpegTs):
        plan_of(b"\x00" * 4000, 1.0)
    with pytest.raises(NotMpegTs):
        plan_of(b"", 1.0)
    with pytest.raises(TruncatedMedia):
        run_bytes(ts_preview_plan(len(data) + 188 * 400, 5.0), data)
    for bad in (0.0, -2.0, float("nan")):
        with pytest.raises(InvalidSeek):
            plan_of(data, bad)


def test_trailing_partial_packet_and_junk(media: Callable[[str], Path]) -> None:
    """A partial last packet is dropped; junk between packets is skipped, not fatal."""
    data = media("ts_h264_aac").read_bytes()
    assert plan_of(data + b"\x47\x00", 60.0).render(data + b"\x47\x00") == data
    junky = data[: 188 * 50] + b"junk" * 10 + data[188 * 50 :]
    out = plan_of(junky, 60.0).render(junky)
    assert out == junky


def test_cli_clip_cuts_ts_and_mp3_and_refuses_what_they_cannot_do(
    media: Callable[[str], Path], tmp_path: Path
) -> None:
    """`vodedge clip --end N` writes the preview plan; --start and `extract` are one-line errors."""
    from oracle import cli_error_line, run_cli

    for name in ("ts_h264_aac", "mp3_vbr_xing"):
        source = media(name)
        out = tmp_path / f"{name}{source.suffix}"
        proc = run_cli("clip", source, "-o", out, "--end", "1.5")
        assert proc.returncode == 0, proc.stderr
        data = source.read_bytes()
        if name.startswith("ts"):
            assert out.read_bytes() == plan_of(data, 1.5).render(data)
        assert 0 < out.stat().st_size < len(data)
        for args in (("clip", "--start", "1", "--end", "2"), ("extract",), ("clip",)):
            line = cli_error_line(run_cli(args[0], source, "-o", tmp_path / "x", *args[1:]))
            assert "clip --end N" in line
        assert not (tmp_path / "x").exists()
