"""Answers that are not the object: errors with a code, redirects."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

VIA = "1.1 vodedge"


def error_response(status: int, code: str, message: str) -> web.Response:
    """A one-line plain-text error with a machine-readable code."""
    return web.Response(
        status=status,
        text=message.replace("\n", " ") + "\n",
        headers={"X-Vodedge-Error": code, "Via": VIA, "Cache-Control": "no-store"},
    )


class Refusal(Exception):
    """A request answered without the object: an error (with its code) or a redirect.

    Any stage may raise it before the response's headers are sent; the
    middleware turns it into the response. `domain` and `function` label it in
    the log and metrics when the stage knew them.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        domain: str | None = None,
        function: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.domain = domain
        self.function = function

    @classmethod
    def redirect(cls, location: str, status: int = 302, *, domain: str | None = None) -> Refusal:
        """A bare redirect to `location` (no error body)."""
        headers = {"Location": location}
        return cls(status, "redirect", location, headers=headers, domain=domain)

    @classmethod
    def answer(cls, status: int, headers: Mapping[str, str]) -> Refusal:
        """A bodiless answer that is no error (a preflight's 204)."""
        return cls(status, "answer", "", headers=headers)

    def response(self) -> web.Response:
        """The response that says it."""
        if self.code in ("redirect", "answer"):
            return web.Response(status=self.status, headers={**self.headers, "Via": VIA})
        response = error_response(self.status, self.code, self.message)
        response.headers.update(self.headers)
        return response
