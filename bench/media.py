"""Benchmark inputs, generated with ffmpeg and cached under `.cache/bench-media` by recipe."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench-media"

# A 2 s GOP without scene-cut keyframes, like most VOD encodes; B-frames on
# (superfast keeps them) so the video track has a `ctts` as real files do.
_GOP_2S = ("-g", "50", "-keyint_min", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p")
_AAC = ("-c:a", "aac", "-b:a", "128k", "-ac", "2")


@dataclass(frozen=True)
class Recipe:
    """How to make one input: ffmpeg arguments, optionally remuxing another recipe's output."""

    name: str
    suffix: str
    duration: float
    args: tuple[str, ...]
    source: Recipe | None = None
    note: str = ""

    def key(self) -> str:
        """A digest of everything that decides the output's bytes."""
        blob = json.dumps(
            {
                "args": self.args,
                "source": self.source.key() if self.source else None,
                "ffmpeg": ffmpeg_version(),
            }
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def path(self) -> Path:
        """Where the cached file lives."""
        return CACHE / f"{self.name}-{self.key()}{self.suffix}"


# (a) issue 2: 5-minute 720p25 H.264/AAC faststart, ~3 Mbit/s video (~117 MB).
# Mild temporal noise keeps x264 at its rate cap, as camera footage would.
MP4_720P = Recipe(
    name="720p-5min",
    suffix=".mp4",
    duration=300.0,
    args=(
        "-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25,noise=alls=8:allf=t",
        "-f", "lavfi", "-i", "anoisesrc=color=pink:sample_rate=48000:amplitude=0.2",
        "-t", "300", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "superfast",
        "-b:v", "3000k", "-maxrate", "3000k", "-bufsize", "6000k", *_GOP_2S,
        *_AAC, "-movflags", "+faststart", "-f", "mp4",
    ),
    note="5 min 1280x720 25 fps H.264 ~3 Mbit/s, AAC 128k 48 kHz stereo, moov at head",
)  # fmt: skip

# (b) issues 2 and 4: 30 minutes with a ~650 kB moov. 25 fps and 48 kHz AAC keep
# the sample tables full size; the tiny picture only makes it quick to encode.
# ffmpeg interleaves one frame per chunk by default, which would give a ~1 MB
# moov; 0.5 s chunks (MP4Box's default interleave) give the ~650 kB target.
MP4_LONG = Recipe(
    name="long-30min-head",
    suffix=".mp4",
    duration=1800.0,
    args=(
        "-f", "lavfi", "-i", "testsrc2=s=160x90:r=25",
        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "1800", "-map", "0:v", "-map", "1:a",
        "-c:v", "libx264", "-preset", "ultrafast", *_GOP_2S,
        *_AAC, "-chunk_duration", "500000", "-movflags", "+faststart", "-f", "mp4",
    ),
    note="30 min 160x90 25 fps H.264, AAC 128k 48 kHz stereo, 0.5 s chunks, moov at head",
)  # fmt: skip

# The same streams with `moov` at the tail (ffmpeg's default without faststart).
MP4_LONG_TAIL = Recipe(
    name="long-30min-tail",
    suffix=".mp4",
    duration=1800.0,
    args=("-map", "0", "-c", "copy", "-chunk_duration", "500000", "-f", "mp4"),
    source=MP4_LONG,
    note="remux of long-30min-head with moov at the tail",
)

# Issue 13: the 720p streams of (a) with `moov` at the tail (no +faststart).
MP4_720P_TAIL = Recipe(
    name="720p-5min-tail",
    suffix=".mp4",
    duration=300.0,
    args=("-map", "0", "-c", "copy", "-f", "mp4"),
    source=MP4_720P,
    note="remux of 720p-5min.mp4 with moov at the tail",
)

# (c) issue 3: the 720p streams of (a) in FLV, with an onMetaData keyframes index.
FLV_720P = Recipe(
    name="720p-5min",
    suffix=".flv",
    duration=300.0,
    args=("-map", "0", "-c", "copy", "-flvflags", "add_keyframe_index", "-f", "flv"),
    source=MP4_720P,
    note="remux of 720p-5min.mp4 to FLV with a keyframes index",
)

# Issue 15: the 30-minute file of (b) in FLV (122,000 tags), with a keyframes index.
FLV_LONG = Recipe(
    name="long-30min",
    suffix=".flv",
    duration=1800.0,
    args=("-map", "0", "-c", "copy", "-flvflags", "add_keyframe_index", "-f", "flv"),
    source=MP4_LONG,
    note="remux of long-30min-head.mp4 to FLV with a keyframes index",
)

RECIPES: dict[str, Recipe] = {
    "mp4-720p": MP4_720P,
    "mp4-720p-tail": MP4_720P_TAIL,
    "mp4-long": MP4_LONG,
    "mp4-long-tail": MP4_LONG_TAIL,
    "flv-720p": FLV_720P,
    "flv-long": FLV_LONG,
}


@cache
def ffmpeg_version() -> str:
    """The first line of `ffmpeg -version` (part of every cache key)."""
    out = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[0]


def _progress(label: str, fraction: float, started: float, done: bool = False) -> None:
    """One progress line on stderr, redrawn in place on a terminal."""
    elapsed = time.monotonic() - started
    text = f"  {label}: {fraction * 100:5.1f}%  {elapsed:6.1f} s"
    if sys.stderr.isatty():
        print("\r" + text, end="\n" if done else "", file=sys.stderr, flush=True)
    elif done:
        print(text, file=sys.stderr, flush=True)


def ensure(recipe: Recipe) -> Path:
    """The recipe's file, generated first if it is not cached yet."""
    target = recipe.path
    if target.exists():
        return target
    source = ensure(recipe.source) if recipe.source else None
    CACHE.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    inputs = ["-i", str(source)] if source else []
    argv = [
        "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-nostats",
        "-progress", "pipe:1", "-y", *inputs, *recipe.args, str(part),
    ]  # fmt: skip
    label = target.name
    print(f"generating {label} ({recipe.note})", file=sys.stderr, flush=True)
    started = time.monotonic()
    last_shown = -1.0
    # ffmpeg's -progress prints key=value blocks; out_time_us tells how far it is.
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            key, _, value = line.strip().partition("=")
            if key == "out_time_us" and value.isdigit():
                fraction = min(int(value) / 1e6 / recipe.duration, 1.0)
                # Redraw on a terminal often, in a log only every 10%.
                step = 0.005 if sys.stderr.isatty() else 0.1
                if fraction - last_shown >= step:
                    last_shown = fraction
                    _progress(label, fraction, started)
    if proc.returncode != 0:
        part.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(argv)}")
    _progress(label, 1.0, started, done=True)
    # Rename last, so an interrupted run never leaves a file that looks complete.
    os.replace(part, target)
    return target


def audio_digest(path: Path) -> str:
    """A digest of the audio packets (data and timestamps), ffmpeg as the oracle."""
    done = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy",
         "-f", "framemd5", "-"],
        capture_output=True,
    )  # fmt: skip
    if done.returncode != 0:
        return "unreadable"
    return hashlib.sha256(done.stdout).hexdigest()[:16]


def describe(path: Path) -> str:
    """Size and `moov` position/size of a file, for the benchmark headers."""
    size = path.stat().st_size
    text = f"{path.name}: {size / 1e6:.1f} MB"
    if path.suffix == ".mp4":
        where, moov_size = moov_location(path)
        text += f", moov {moov_size / 1e3:.0f} kB at {where}"
    return text


def moov_location(path: Path) -> tuple[str, int]:
    """Whether `moov` is at the head or tail of a plain MP4, and its size."""
    size = path.stat().st_size
    with path.open("rb") as f:
        offset = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            box_size = int.from_bytes(header[:4], "big")
            kind = header[4:8]
            if box_size == 1:
                box_size = int.from_bytes(header[8:16], "big")
            elif box_size == 0:
                box_size = size - offset
            if kind == b"moov":
                return ("tail" if offset + box_size >= size else "head"), box_size
            if box_size < 8:
                break
            offset += box_size
    return "nowhere", 0


def main(argv: list[str] | None = None) -> int:
    """Generate (or find) the named inputs and print their paths."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(RECIPES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(RECIPES)
    if unknown:
        parser.error(f"unknown input(s): {', '.join(sorted(unknown))}")
    if not shutil.which("ffmpeg"):
        print("ffmpeg not found (make system-deps installs it)", file=sys.stderr)
        return 1
    for name in args.names or RECIPES:
        path = ensure(RECIPES[name])
        print(f"{name}: {path}  ({describe(path)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
