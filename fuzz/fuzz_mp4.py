"""Atheris fuzz target: MP4 audio extraction (`audio_plan`) and the render of its plan.

Run by hand (see fuzz/README.md):

    .venv/bin/python fuzz/fuzz_mp4.py -atheris_runs=200000 fuzz/corpus_mp4

A `MediaError` with a code and a one-line message is the expected answer to bad input;
any other exception, an inconsistent plan, or a runaway allocation is a crash.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import traceback
from pathlib import Path

import atheris

from fuzzing import fuzz

with atheris.instrument_imports(include=["vodedge"]):
    from vodedge.media.errors import MediaError
    from vodedge.media.mp4.audio import audio_plan
    from vodedge.media.plan import Plan
    from vodedge.media.reading import run_bytes

REPO = Path(__file__).resolve().parent.parent
SHARED_MEDIA = REPO.parent / "shared" / "media"
# Seeds copied into an empty corpus directory: small, so that each run is fast.
SEED_MAX_BYTES = 400_000
# `file:line` sites (innermost vodedge frame) whose crashes are already reported, e.g.
# VODEDGE_FUZZ_KNOWN=media/mp4/tables.py:163,media/mp4/audio.py:53 to keep fuzzing past them.
KNOWN_CRASH_SITES = frozenset(filter(None, os.environ.get("VODEDGE_FUZZ_KNOWN", "").split(",")))


def check_output(out: bytes) -> None:
    """The output is a sequence of boxes that tiles it exactly and holds one moov."""
    pos, kinds = 0, []
    while pos < len(out):
        if len(out) - pos < 8:
            raise AssertionError(f"{len(out) - pos} stray bytes at output offset {pos}")
        size, kind = struct.unpack_from(">I4s", out, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", out, pos + 8)[0], 16
        elif size == 0:
            size = len(out) - pos
        if size < header or pos + size > len(out):
            raise AssertionError(f"output box {kind!r} at {pos} has bad size {size}")
        kinds.append(kind)
        pos += size
    if kinds.count(b"moov") != 1:
        raise AssertionError(f"output top level is {kinds}")


def crash_site(exc: BaseException) -> str:
    """`path:line` of the innermost vodedge frame, e.g. `media/mp4/tables.py:163`."""
    site = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if "/vodedge/" in frame.filename:
            site = f"{frame.filename.rpartition('/vodedge/')[2]}:{frame.lineno}"
    return site


def check_error(exc: MediaError) -> None:
    """A media error has a specific code and a non-empty one-line message."""
    message = str(exc)
    if not exc.code or exc.code == MediaError.code or not message.strip() or "\n" in message:
        raise AssertionError(f"bad error {type(exc).__name__}: {message!r}") from exc


def check_plan(plan: Plan, data: bytes) -> None:
    """The plan's spans lie in the source and its output is well-formed boxes."""
    if not isinstance(plan, Plan):
        raise AssertionError(f"audio_plan returned {type(plan).__name__}")
    for span in plan.spans():
        if span.offset < 0 or span.end > len(data):
            raise AssertionError(f"{span} outside a {len(data)}-byte source")
    out = plan.render(data)
    if len(out) != plan.size:
        raise AssertionError(f"plan size {plan.size} but {len(out)} bytes rendered")
    check_output(out)


def TestOneInput(data: bytes) -> None:
    """One input: a typed error, or a plan that renders to well-formed boxes."""
    try:
        plan = run_bytes(audio_plan(len(data)), data)
    except MediaError as exc:
        check_error(exc)
        return
    except Exception as exc:  # MemoryError included
        # Known crashes can be set aside to look for new ones (see README).
        if crash_site(exc) in KNOWN_CRASH_SITES:
            return
        raise
    check_plan(plan, data)


def make_tiny(directory: Path) -> list[Path]:
    """A few 1-second files made with ffmpeg, when it is installed."""
    if shutil.which("ffmpeg") is None:
        return []
    video = ["-f", "lavfi", "-i", "testsrc=size=64x64:rate=10:duration=1"]
    tone = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050:duration=1"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "5", "-c:a", "aac", "-b:a", "32k"]
    recipes = {
        "tiny-faststart.mp4": [*video, *tone, *codecs, "-movflags", "+faststart"],
        "tiny-tail.mp4": [*video, *tone, *codecs],
        "tiny-fragmented.mp4": [
            *video, *tone, *codecs, "-movflags", "frag_keyframe+empty_moov+default_base_moof",
        ],
        "tiny-audio.m4a": [*tone, "-c:a", "aac", "-b:a", "32k"],
    }  # fmt: skip
    made = []
    for name, args in recipes.items():
        path = directory / name
        command = ["ffmpeg", "-nostdin", "-v", "error", "-y", *args, str(path)]
        if subprocess.run(command, check=False, timeout=60).returncode == 0:
            made.append(path)
    return made


def seed_corpus(corpus: Path) -> None:
    """Fill an empty corpus directory with small seeds (not committed: media stays out)."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    candidates = [REPO / "samples" / "talk.mp4", REPO / "samples" / "tail-moov.mp4"]
    if SHARED_MEDIA.is_dir():
        candidates += sorted(
            p for p in SHARED_MEDIA.iterdir() if p.suffix in (".mp4", ".m4a", ".3gp", ".mov")
        )
    with tempfile.TemporaryDirectory() as scratch:
        candidates += make_tiny(Path(scratch))
        for path in candidates:
            if path.is_file() and path.stat().st_size <= SEED_MAX_BYTES:
                shutil.copyfile(path, corpus / path.name)


def main() -> None:
    """Seed the corpus directories named on the command line, then fuzz."""
    fuzz(TestOneInput, seed_corpus)


if __name__ == "__main__":
    main()
