"""One JSON line per request, written with a single write so workers never interleave."""

from __future__ import annotations

import json
import os
import time

_FD: int | None = None
_PID = 0
# json.dumps(fields, separators=(",", ":"), default=str), without a new encoder per line.
_ENCODE = json.JSONEncoder(separators=(",", ":"), default=str).encode


def configure(fd: int | None) -> None:
    """Send access-log lines to `fd`, or nowhere when None."""
    global _FD, _PID
    _FD = fd
    _PID = os.getpid()  # which worker answered: changes must reach every one


def enabled() -> bool:
    """Whether lines are written (a request's fields need not be gathered otherwise)."""
    return _FD is not None


def log_request(fields: dict[str, object]) -> None:
    """Write one access-log line of `fields` (time and pid added), when the log is on."""
    if _FD is None:
        return
    fields["time"] = round(time.time(), 3)
    fields["pid"] = _PID
    line = _ENCODE(fields) + "\n"
    try:  # noqa: SIM105 (contextlib.suppress costs more, once per request)
        os.write(_FD, line.encode())
    except OSError:  # a full disk or closed pipe must not fail requests
        pass
