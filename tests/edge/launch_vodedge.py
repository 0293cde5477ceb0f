"""`vodedge ...` with shorter timeouts: `python launch_vodedge.py READ SEND IDLE serve ...`.

vodedge's origin read timeout (30 s), client send timeout (60 s) and idle-connection
timeout (30 s) are constants no flag or TOML key exposes; the tests that wait for them
would take minutes. Only the values change, not the code that applies them. The worker
ones are set in each worker, after `serve` has pointed prometheus_client at its
directory (importing the delivery module any earlier would import prometheus_client
first).
"""

from __future__ import annotations

import sys

import vodedge.edge.origin as origin
import vodedge.edge.serve as serve
from vodedge.cli import main


def _patch(read_timeout: float, send_timeout: float, idle_timeout: float | None) -> None:
    origin.HttpOrigin.__init__.__kwdefaults__["read_timeout"] = read_timeout
    run_worker = serve._worker_main

    def worker_main(*args: object) -> None:
        import vodedge.edge.app as app
        import vodedge.edge.delivery as delivery

        delivery.SEND_TIMEOUT = app.SEND_TIMEOUT = send_timeout
        if idle_timeout is not None:
            serve.IDLE_TIMEOUT = idle_timeout
        run_worker(*args)  # type: ignore[arg-type]

    serve._worker_main = worker_main  # type: ignore[assignment]


def _numbers(args: list[str]) -> list[float]:
    out = []
    while args and args[0].replace(".", "", 1).isdigit():
        out.append(float(args.pop(0)))
    return out


if __name__ == "__main__":
    argv = sys.argv[1:]
    read, send, *idle = _numbers(argv)
    _patch(read, send, idle[0] if idle else None)
    raise SystemExit(main(argv))
