"""The ffmpeg oracle: packet checksums and stream descriptions via ffmpeg/ffprobe."""

from __future__ import annotations

import copy
import functools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from media_matrix import FFMPEG, FFPROBE

# Comment lines of framemd5 output that may mention where the input came from;
# everything else (extradata hash, time base, codec, packets) is compared.
_VOLATILE_PREFIXES = ("#software",)


class OracleError(AssertionError):
    """ffmpeg or ffprobe could not read a file the test expected it to read."""


def _run(cmd: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def _memo_key(path: Path | str) -> tuple[str, int, int]:
    """Identity of a file's current contents, for memoising oracle answers."""
    st = os.stat(path)
    return (str(path), st.st_mtime_ns, st.st_size)


def framemd5(path: Path | str, selector: str = "0:a") -> str:
    """ffmpeg's framemd5 of `selector`'s packets (memoised per file version)."""
    return _framemd5(_memo_key(path), selector)


@functools.lru_cache(maxsize=512)
def _framemd5(key: tuple[str, int, int], selector: str) -> str:
    """ffmpeg's framemd5 of the packets of `selector`'s streams, stream-copied.

    `-copyts` keeps the demuxer's timestamps: without it ffmpeg shifts every
    packet by the file's start time, which is the minimum over *all* streams,
    so dropping a video track could change the audio timestamps printed here
    even when the audio track is byte-identical (and vice versa hide a lost
    edit list when every stream moves together).
    """
    path = key[0]
    proc = _run(
        [FFMPEG, "-nostdin", "-v", "error", "-copyts", "-i", path,
         "-map", selector, "-c", "copy", "-f", "framemd5", "-"]
    )  # fmt: skip
    if proc.returncode != 0:
        raise OracleError(f"ffmpeg framemd5 failed on {path}: {proc.stderr.strip()[-1500:]}")
    lines = [
        line
        for line in proc.stdout.splitlines()
        if not (line.startswith("#") and (path in line or line.startswith(_VOLATILE_PREFIXES)))
    ]
    if not any(line and not line.startswith("#") for line in lines):
        raise OracleError(f"ffmpeg found no packets for {selector} in {path}")
    return "\n".join(lines) + "\n"


def audio_framemd5(path: Path | str) -> str:
    """framemd5 of every audio packet of `path` (timestamps, sizes, hashes)."""
    return framemd5(path, "0:a")


def probe(path: Path | str) -> dict[str, Any]:
    """ffprobe's JSON view (`streams` and `format`) of `path`; raises if unreadable."""
    return copy.deepcopy(_probe(_memo_key(path)))


@functools.lru_cache(maxsize=512)
def _probe(key: tuple[str, int, int]) -> dict[str, Any]:
    path = key[0]
    proc = _run([FFPROBE, "-v", "error", "-of", "json", "-show_streams", "-show_format", path])
    if proc.returncode != 0:
        raise OracleError(f"ffprobe failed on {path}: {proc.stderr.strip()[-1500:]}")
    data: dict[str, Any] = json.loads(proc.stdout or "{}")
    data.setdefault("streams", [])
    data.setdefault("format", {})
    return data


def demux_errors(path: Path | str) -> str:
    """What ffmpeg complains about (at level error) while demuxing all of `path`."""
    return _demux_errors(_memo_key(path))


@functools.lru_cache(maxsize=512)
def _demux_errors(key: tuple[str, int, int]) -> str:
    proc = _run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", key[0], "-map", "0", "-c", "copy",
         "-f", "null", "-"]
    )  # fmt: skip
    return proc.stderr.strip() if proc.returncode == 0 else f"exit {proc.returncode}: {proc.stderr}"


# The earlier name (ffmpeg only demuxes here, `-c copy` decodes nothing); kept
# because the FLV tests import it.
decode_errors = demux_errors


def streams_of(info: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The ffprobe streams of one `codec_type` ("audio", "video", "subtitle", ...)."""
    return [s for s in info["streams"] if s.get("codec_type") == kind]


def audio_summary(info: dict[str, Any]) -> list[tuple[str, str, str, int, str]]:
    """Per audio stream: codec, codec tag, sample rate, channels, language."""
    return [
        (
            s.get("codec_name", "?"),
            s.get("codec_tag_string", "?"),
            str(s.get("sample_rate", "?")),
            int(s.get("channels", 0)),
            (s.get("tags") or {}).get("language", "und"),
        )
        for s in streams_of(info, "audio")
    ]


def first_diff(expected: str, actual: str, context: int = 2) -> str:
    """A short description of where two framemd5 listings first differ."""
    a, b = expected.splitlines(), actual.splitlines()
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            lo = max(0, i - context)
            return (
                f"first difference at line {i + 1} of {len(a)} (expected) / {len(b)} (actual):\n"
                + "\n".join(f"  expected: {line}" for line in a[lo : i + 1])
                + "\n"
                + "\n".join(f"  actual:   {line}" for line in b[lo : i + 1])
            )
    if len(a) != len(b):
        return f"expected {len(a)} lines, got {len(b)}; first extra: {(a + b)[min(len(a), len(b))]}"
    return "identical"


# --- driving the code under test ------------------------------------------------


def extract_mp4(data: bytes, **limits: int) -> bytes:
    """vodedge's audio-only rendition of the ISO BMFF file `data`, via its Plan."""
    from vodedge.media.mp4.audio import audio_plan
    from vodedge.media.reading import run_bytes

    plan = run_bytes(audio_plan(len(data), **limits), data)
    out = plan.render(data)
    # The plan's size is what the edge will send as Content-Length.
    assert plan.size == len(out), f"plan.size {plan.size} != rendered {len(out)}"
    return out


def vodedge_command() -> list[str]:
    """The `vodedge` console script beside this Python, or `python -m vodedge`."""
    script = Path(sys.executable).with_name("vodedge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "vodedge"]


def run_cli(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `vodedge ARGS...` as a user would, capturing its output."""
    return _run([*vodedge_command(), *map(str, args)], timeout=timeout)


def cli_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one stderr line of a failed run; asserts the error contract on the way."""
    assert proc.returncode == 2, f"exit {proc.returncode}, want 2; stderr: {proc.stderr[-800:]}"
    assert "Traceback" not in proc.stderr, f"traceback on bad input:\n{proc.stderr[-2000:]}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, f"want one stderr line, got {len(lines)}: {proc.stderr[-800:]!r}"
    assert lines[0].startswith("vodedge: error: "), f"stderr line {lines[0]!r}"
    assert len(lines[0]) > len("vodedge: error: "), "empty reason"
    return lines[0]
