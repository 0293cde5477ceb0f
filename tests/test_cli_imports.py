"""What `vodedge extract` and `vodedge inspect` load: the media layer and the CLI, nothing else.

These commands are timed against ffmpeg as whole processes (bench/run.py extract, flv),
where start-up is a large share: numpy alone costs more than an FLV's whole scan and
starts BLAS threads, and the edge, control plane and API commands bring aiohttp,
prometheus_client and more. Each case runs the command in a fresh interpreter and
looks at `sys.modules` and the process's threads once it is done.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from flv_media import Synthetic, synthetic

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

# Runs one command through the CLI's own entry (`main`, as console_main but returning),
# then reports what the process holds.
DRIVER = """
import json, os, sys
from vodedge.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w") as report:
    json.dump({"code": code, "modules": sorted(sys.modules),
               "threads": len(os.listdir("/proc/self/task"))}, report)
"""

# Third-party and standard modules no media command needs (numpy: BLAS thread pools).
FORBIDDEN = {
    "numpy",
    "aiohttp",
    "prometheus_client",
    "uvloop",
    "redis",
    "cryptography",
    "asyncio",
    "concurrent",
    "multiprocessing",
    "sqlite3",
    "ssl",
}
# vodedge's own: the media layer, plus these.
ALLOWED_OWN = {"vodedge", "vodedge.cli", "vodedge.cli.parser", "vodedge.cli.commands"}
ALLOWED_OWN |= {"vodedge.cli.files", "vodedge.planfile", "vodedge.media"}
# A whole-file extraction needs its plan only: no seeking index, no streaming filter.
NOT_FOR_EXTRACT = {
    "vodedge.media.mp4.index",
    "vodedge.media.flv.index",
    "vodedge.media.flv.filters",
    "vodedge.media.flv.summary",
    "vodedge.media.seeking",
}


def _keyframed_flv(tmp_path: Path) -> Path:
    """An FLV whose onMetaData holds a keyframes index (long AMF0 number lists)."""
    path = tmp_path / "keyframed.flv"
    path.write_bytes(synthetic(Synthetic(seconds=20.0)))
    return path


def _loaded(tmp_path: Path, *argv: str) -> tuple[list[str], int]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(report), *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(report.read_text())
    assert result["code"] == 0, proc.stderr[-2000:]
    return result["modules"], result["threads"]


@pytest.mark.parametrize(
    ("command", "name", "planner"),
    [
        ("extract", "talk.mp4", "vodedge.media.mp4.audio"),
        ("extract", "tail-moov.mp4", "vodedge.media.mp4.audio"),
        ("extract", "talk.flv", "vodedge.media.flv.plan"),
        ("extract", "keyframed.flv", "vodedge.media.flv.plan"),
        ("inspect", "talk.mp4", "vodedge.media.mp4.summary"),
        ("inspect", "talk.flv", "vodedge.media.flv.summary"),
        ("inspect", "keyframed.flv", "vodedge.media.flv.summary"),
    ],
)
def test_media_commands_load_only_media_and_cli(
    command: str, name: str, planner: str, tmp_path: Path
) -> None:
    """No numpy, no edge/control/config, no API command modules, one thread."""
    source = _keyframed_flv(tmp_path) if name == "keyframed.flv" else SAMPLES / name
    args = [command, str(source)]
    if command == "extract":
        args += ["-o", str(tmp_path / f"out{source.suffix}")]
    modules, threads = _loaded(tmp_path, *args)
    assert planner in modules  # the report is of a run that did the work
    assert not sorted(m for m in modules if m.partition(".")[0] in FORBIDDEN)
    own = [m for m in modules if m.partition(".")[0] == "vodedge"]
    assert not [m for m in own if m not in ALLOWED_OWN and not m.startswith("vodedge.media.")]
    assert threads == 1
    if command == "extract":
        assert not NOT_FOR_EXTRACT & set(modules)
