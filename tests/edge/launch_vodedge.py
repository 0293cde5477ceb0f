"""`vodedge ...` with shorter timeouts: `python launch_vodedge.py READ SEND serve ...`.

vodedge's origin read timeout (30 s) and client send timeout (60 s) are constants no
flag or TOML key exposes; the tests that wait for them would take minutes. Only the
values change, not the code that applies them. The send timeout is set in each worker,
after `serve` has pointed prometheus_client at its directory (importing the delivery
module any earlier would import prometheus_client first).
"""

from __future__ import annotations

import sys

import vodedge.edge.origin as origin
import vodedge.edge.serve as serve
from vodedge.cli import main


def _patch(read_timeout: float, send_timeout: float) -> None:
    origin.HttpOrigin.__init__.__kwdefaults__["read_timeout"] = read_timeout
    run_worker = serve._worker_main

    def worker_main(*args: object) -> None:
        import vodedge.edge.app as app
        import vodedge.edge.delivery as delivery

        delivery.SEND_TIMEOUT = app.SEND_TIMEOUT = send_timeout
        run_worker(*args)  # type: ignore[arg-type]

    serve._worker_main = worker_main  # type: ignore[assignment]


if __name__ == "__main__":
    _patch(float(sys.argv[1]), float(sys.argv[2]))
    raise SystemExit(main(sys.argv[3:]))
