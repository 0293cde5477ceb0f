"""Start a test origin (`python -m origins.NAME`) and learn the port it printed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0  # a wait on a busy machine, never a measure


def start_origin(module: str, args: list[str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Run `python -m module *args` from tests/, its stderr to `log`; wait for `PORT <n>`.

    The origin binds port 0 itself, so no other process can take its port meanwhile.
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    stderr = open(log, "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=TESTS,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )
    stderr.close()
    assert proc.stdout is not None
    os.set_blocking(proc.stdout.fileno(), False)
    line = b""
    deadline = time.monotonic() + START_TIMEOUT
    while not line.endswith(b"\n") and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(BlockingIOError, TypeError):
            line += proc.stdout.read() or b""
        time.sleep(0.02)
    if not line.startswith(b"PORT "):
        stop_origin(proc)
        text = log.read_text(errors="replace").splitlines()[-40:]
        raise RuntimeError(f"{module} did not start:\n" + "\n".join(text))
    return proc, int(line.split()[1])


def stop_origin(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the origin we started and reap it; SIGKILL if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    if proc.stdout is not None:
        proc.stdout.close()
