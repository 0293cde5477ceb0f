"""The console's HTTP handlers: its page, log on/off, and actions run as the session's key.

The page is static; everything it shows or changes goes through `/console/api/call`,
which runs the API's own action (`Api.run`) as the session's access key: the same
checks, the same errors, no second write path.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Awaitable, Callable
from importlib import resources
from urllib.parse import urlsplit

from aiohttp import web

from vodedge.config.keys import AccessKey

from ..api import Api, Throttled, read_form
from ..calls import COMMON_PARAMETERS
from ..errors import ApiError
from ..throttle import Throttle
from .sessions import Session, Sessions, csrf_matches

COOKIE = "vodedge_console"
# Wrong pairs, whatever their key id, across all callers: guessing stays slow, and a
# right pair is never held up by them.
FAILED_LOGONS_PER_SECOND = 10.0
CSRF_HEADER = "X-CSRF-Token"
STATIC = {
    "console.css": "text/css",
    "console.js": "text/javascript",
}
_SECURITY_HEADERS = {
    # Nothing from elsewhere: no CDN, no fonts, no framing by another site.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
# A handler's answer; a "_cookie" entry sets the session cookie ("" clears it).
Handler = Callable[[web.Request, str], Awaitable[dict[str, object]]]


def _static(name: str) -> bytes:
    return (resources.files(__package__) / "static" / name).read_bytes()


def _not_logged_on() -> ApiError:
    return ApiError(401, "Console.NotLoggedOn", "The session is missing or expired: log on again.")


class Console:
    """The console's routes over an `Api` (its keys, throttle, dispatch)."""

    def __init__(self, api: Api, sessions: Sessions | None = None) -> None:
        self.api = api
        self.sessions = sessions or Sessions()
        self.failed_logons = Throttle()

    def add_routes(self, app: web.Application) -> None:
        """Serve the console under `/console/` of `app`."""
        app.router.add_get("/console", self._to_page)
        app.router.add_get("/console/", self._page)
        app.router.add_get("/console/static/{name}", self._asset)
        app.router.add_get("/console/api/session", self._session)
        app.router.add_post("/console/api/logon", self._logon)
        app.router.add_post("/console/api/logoff", self._logoff)
        app.router.add_post("/console/api/call", self._call)

    async def _to_page(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/console/")

    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(
            body=_static("index.html"),
            content_type="text/html",
            charset="utf-8",
            headers=_SECURITY_HEADERS,
        )

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound(text="no such console file\n")
        return web.Response(
            body=_static(name),
            content_type=STATIC[name],
            charset="utf-8",
            headers=_SECURITY_HEADERS,
        )

    async def _session(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._describe_session)

    async def _logon(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._do_logon)

    async def _logoff(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._do_logoff)

    async def _call(self, request: web.Request) -> web.Response:
        return await self._answer(request, self._do_call)

    async def _answer(self, request: web.Request, handler: Handler) -> web.Response:
        request_id = str(uuid.uuid4()).upper()
        try:
            body = await handler(request, request_id)
        except ApiError as error:
            response = self.api.error_response(request, request_id, error)
            if error.status == 401:
                self._clear_cookie(request, response)
            response.headers.update(_SECURITY_HEADERS)
            return response
        cookie = body.pop("_cookie", None)
        answer: dict[str, object] = {"RequestId": request_id}
        answer.update((k, v) for k, v in body.items() if k != "RequestId")
        response = self.api.json_response(200, answer, request_id)
        response.headers.update(_SECURITY_HEADERS)
        if cookie == "":
            self._clear_cookie(request, response)
        elif isinstance(cookie, str):
            response.set_cookie(
                COOKIE,
                cookie,
                max_age=int(self.sessions.seconds),
                path="/console/",
                httponly=True,
                samesite="Strict",
                secure=request.secure,
            )
        return response

    def _clear_cookie(self, request: web.Request, response: web.StreamResponse) -> None:
        response.del_cookie(
            COOKIE, path="/console/", httponly=True, samesite="Strict", secure=request.secure
        )

    @staticmethod
    def _same_origin(request: web.Request) -> None:
        """Refuse a POST another site's page sent (the cookie is SameSite too)."""
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise ApiError(403, "Console.CrossOrigin", "The request came from another site.")

    def _live(self, request: web.Request) -> tuple[Session, AccessKey]:
        """The request's session and its key as configured now (removed keys log off)."""
        token = request.cookies.get(COOKIE)
        session = self.sessions.get(token, self.api.clock())
        if session is None:
            raise _not_logged_on()
        key = self.api.keys().get(session.key_id)
        if key is None:
            self.sessions.close(token)
            raise _not_logged_on()
        return session, key

    def _checked(self, request: web.Request) -> tuple[Session, AccessKey]:
        """A state-changing request's session, after its origin and CSRF token are checked."""
        self._same_origin(request)
        session, key = self._live(request)
        if not csrf_matches(session, request.headers.get(CSRF_HEADER)):
            raise ApiError(
                403,
                "Console.CsrfTokenInvalid",
                f"The request has no valid {CSRF_HEADER} header: reload the console.",
            )
        return session, key

    async def _describe_session(self, request: web.Request, request_id: str) -> dict[str, object]:
        session, key = self._live(request)
        return _session_fields(session, key)

    async def _do_logon(self, request: web.Request, request_id: str) -> dict[str, object]:
        self._same_origin(request)
        form = await read_form(request)
        key_id, secret = form.get("AccessKeyId", ""), form.get("AccessKeySecret", "")
        key = self.api.keys().get(key_id)
        now = self.api.clock()
        if key is not None:
            self.api.check_rate(key, now)  # guessing a secret costs the key's rate
        if key is None or not hmac.compare_digest(key.secret.encode(), secret.encode()):
            wait = self.failed_logons.wait("", FAILED_LOGONS_PER_SECOND, now)
            if wait > 0.0:
                raise Throttled(wait)
            raise ApiError(
                401, "InvalidAccessKey", "The AccessKey ID or AccessKey Secret is not valid."
            )
        self.sessions.close(request.cookies.get(COOKIE))
        token, session = self.sessions.open(key.id, now)
        return {**_session_fields(session, key), "_cookie": token}

    async def _do_logoff(self, request: web.Request, request_id: str) -> dict[str, object]:
        self._checked(request)
        self.sessions.close(request.cookies.get(COOKIE))
        return {"_cookie": ""}

    async def _do_call(self, request: web.Request, request_id: str) -> dict[str, object]:
        _session, key = self._checked(request)
        form = await read_form(request)
        action = form.pop("Action", "")
        params = {k: v for k, v in form.items() if k not in COMMON_PARAMETERS}
        self.api.check_rate(key, self.api.clock())
        return await self.api.run(action, params, key, request_id)


def _session_fields(session: Session, key: AccessKey) -> dict[str, object]:
    return {
        "AccessKeyId": key.id,
        "ReadOnly": key.read_only,
        "CsrfToken": session.csrf,
        "Expires": session.expires,
    }
