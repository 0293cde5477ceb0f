"""Media for the edge tests: the origins' directory, extra generated files, CLI references."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from media_matrix import CACHE_DIR, FFMPEG, REPO, Case, ffmpeg_version
from oracle import run_cli

SAMPLES = REPO / "samples"
SHARED_MEDIA = REPO.parent / "shared" / "media"

# A tail-moov MP4 of several MB (noise keeps the video from compressing): bigger
# than the edge's FAR_READ (1 MiB) so its moov is read with a ranged request on a miss.
BIG_TAIL_MOOV = (
    "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration=4,noise=alls=30:allf=t",
    "-f", "lavfi", "-i", "sine=frequency=330:sample_rate=44100:duration=4",
    "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "14",
    "-g", "25", "-c:a", "aac", "-b:a", "64k", "-f", "mp4",
)  # fmt: skip


class MediaDir:
    """The directory nginx and the fault origin serve; files are published by name."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def add(self, source: Path, name: str | None = None) -> str:
        """Copy `source` in as `name` (once); the URL path that fetches it."""
        name = name or source.name
        target = self.root / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            staging = target.with_name(f".{target.name}.tmp")
            shutil.copyfile(source, staging)
            os.replace(staging, target)
        return "/" + name

    def write(self, name: str, data: bytes) -> str:
        """Publish `data` as `name` (replacing it); the URL path."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.tmp")
        staging.write_bytes(data)
        os.replace(staging, target)
        return "/" + name

    def file(self, url_path: str) -> Path:
        """The file behind a URL path."""
        return self.root / url_path.lstrip("/")


def url_name(case: Case) -> str:
    """The name a matrix case is published under: `.ismv` is MP4 to the edge, so say so."""
    ext = "mp4" if case.ext == "ismv" else case.ext
    return f"matrix/{case.name}.{ext}"


def generated(name: str, args: tuple[str, ...], ext: str) -> Path:
    """An ffmpeg-made file cached beside the matrix's (keyed by its command and ffmpeg)."""
    key = hashlib.sha256("\0".join([ffmpeg_version(), *args]).encode()).hexdigest()[:16]
    final = CACHE_DIR / f"edge-{name}-{key}.{ext}"
    if final.exists():
        return final
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    lock = os.open(final.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another xdist worker may be making it
        if not final.exists():
            staging = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            subprocess.run(
                [FFMPEG, "-nostdin", "-v", "error", "-y", *args, str(staging)],
                check=True, capture_output=True, timeout=120,
            )  # fmt: skip
            os.replace(staging, final)
    finally:
        os.close(lock)
    return final


def big_tail_moov() -> Path:
    """The several-MB tail-moov MP4."""
    return generated("big-tail-moov", BIG_TAIL_MOOV, "mp4")


@dataclass(frozen=True)
class CliResult:
    """What `vodedge extract`/`clip` made of a file: the output bytes, or its error line."""

    output: bytes | None
    error: str | None


# What the CLI made of a file, by command, file (path, size, mtime) and options: each
# answer is computed once per test process (a CLI run is a Python start).
_CLI_RESULTS: dict[tuple[str, ...], CliResult] = {}


def cli_output(command: str, source: Path, out_dir: Path, *options: str) -> CliResult:
    """Run `vodedge COMMAND SOURCE -o OUT [options]` as a user would (once per version of
    the file: the same run again would give the same bytes)."""
    info = source.stat()
    key = (command, str(source.resolve()), str(info.st_size), str(info.st_mtime_ns), *options)
    known = _CLI_RESULTS.get(key)
    if known is not None:
        return known
    tag = hashlib.sha1("\0".join([command, str(source), *options]).encode()).hexdigest()[:12]
    out = out_dir / f"{tag}{source.suffix}"
    proc = run_cli(command, source, "-o", out, *options)
    if proc.returncode != 0:
        result = CliResult(None, proc.stderr.strip())
    else:
        result = CliResult(out.read_bytes(), None)
    _CLI_RESULTS[key] = result
    return result
