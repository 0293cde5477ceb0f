"""aiohttp's own answers (to requests it cannot parse) in the edge's style.

aiohttp answers a malformed request line or header itself, before any handler
or middleware runs, with `Server: Python/3.x aiohttp/x` and a body that quotes
the offending bytes back. Its `handle_error` is the one place those answers are
made, so the edge replaces it: same statuses, a fixed one-line reason and code.
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from vodedge import __version__
from vodedge.edge.refusal import VIA

SERVER = f"vodedge/{__version__}"


def _handle_error(
    self: RequestHandler,
    request: web.BaseRequest,
    status: int = 500,
    exc: BaseException | None = None,
    message: str | None = None,
) -> web.StreamResponse:
    del exc, message  # never echoed: they quote what the client sent
    if request.writer.output_size > 0:
        # Part of a response went out: only closing the connection can tell.
        raise ConnectionError("a response was already under way")
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "error"
    code = "internal_error" if status >= 500 else "bad_request"
    response = web.Response(
        status=status,
        text=f"{phrase}\n",
        headers={
            "Server": SERVER,
            "Via": VIA,
            "X-Vodedge-Error": code,
            "Cache-Control": "no-store",
        },
    )
    response.force_close()
    return response


def install() -> None:
    """Make aiohttp answer unparseable requests as above (idempotent)."""
    RequestHandler.handle_error = _handle_error  # type: ignore[method-assign]
