"""One JSON line per request, written with a single write so workers never interleave."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Any

_FD: int | None = None
_PID = 0


def configure(fd: int | None) -> None:
    """Send access-log lines to `fd`, or nowhere when None."""
    global _FD, _PID
    _FD = fd
    _PID = os.getpid()  # which worker answered: changes must reach every one


def log_request(**fields: Any) -> None:
    """Write one access-log line, when the log is on."""
    if _FD is None:
        return
    fields["time"] = round(time.time(), 3)
    fields["pid"] = _PID
    line = json.dumps(fields, separators=(",", ":"), default=str) + "\n"
    with contextlib.suppress(OSError):  # a full disk or closed pipe must not fail requests
        os.write(_FD, line.encode())
