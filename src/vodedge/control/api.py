"""The API's front door: HTTP requests in, authenticated Calls out, JSON answers back.

RPC style as the CDN OpenAPI (version 2018-05-10) is called by both SDK
generations: action and parameters in the query string and/or a form body,
signed (see signing.py), answered with `{"RequestId", ...}` or
`{"RequestId", "HostId", "Code", "Message"}`.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import parse_qsl

from aiohttp import web

from vodedge.config.keys import AccessKey

from .calls import COMMON_PARAMETERS, Call, Caller, Dispatch, JsonObject
from .errors import ApiError
from .keys import KeyRing
from .nonces import NonceStore
from .signing import MAX_SKEW, SignedRequest, verify
from .throttle import Throttle

VERSION = "2018-05-10"
MAX_BODY = 1 << 20
BODY_SECONDS = 30.0
# Far above what any action takes; a flood of them is refused before it is parsed.
MAX_PARAMETERS = 500
# The request line may carry a whole call (the older SDK puts everything in the query).
MAX_REQUEST_LINE = MAX_BODY + 8192
FORM = "application/x-www-form-urlencoded"
_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


class Throttled(ApiError):
    """The key's rate is spent: retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(400, "Throttling.User", "Request was denied due to user flow control.")
        self.retry_after = retry_after


def _invalid(message: str) -> ApiError:
    return ApiError(400, "InvalidParameter", message)


def _parameters(text: str, where: str) -> dict[str, str]:
    """Name/value pairs of a query or form; a name given twice is refused."""
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, errors="strict", max_num_fields=MAX_PARAMETERS
        )
    except UnicodeDecodeError:
        raise _invalid(f"The {where} is not percent-encoded UTF-8.") from None
    except ValueError:
        raise _too_many() from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise _invalid(f"The parameter {name[:64]} is given more than once.")
        out[name] = value
    return out


def _too_many() -> ApiError:
    return _invalid(f"The request has more than {MAX_PARAMETERS} parameters.")


def _too_large() -> ApiError:
    return ApiError(
        413, "RequestEntityTooLarge", f"The request body is larger than {MAX_BODY} bytes."
    )


async def _read_body(request: web.Request) -> bytes:
    """The body, refused past MAX_BODY without reading further, or after BODY_SECONDS."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_SECONDS):
            while chunk := await request.content.read(65536):
                size += len(chunk)
                if size > MAX_BODY:
                    raise _too_large()
                chunks.append(chunk)
    except TimeoutError:
        raise ApiError(
            408, "RequestTimeout", f"The request body did not arrive within {BODY_SECONDS:g} s."
        ) from None
    return b"".join(chunks)


async def read_form(request: web.Request) -> dict[str, str]:
    """A form body's parameters (none for an empty body), within the bounds every call's
    body has; InvalidParameter when it is not a UTF-8 form or names a parameter twice."""
    body = await _read_body(request)
    if not body:
        return {}
    if request.content_type != FORM:
        raise _invalid(f"The body must be {FORM}.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("The form body is not UTF-8.") from None
    return _parameters(text, "form body")


async def no_actions(call: Call) -> JsonObject:
    """A dispatch that knows no action (until the store's actions are wired in)."""
    raise not_found()


def not_found() -> ApiError:
    """The documented error for an action this API does not have."""
    return ApiError(
        404, "InvalidApi.NotFound", "Specified api is not found, please check your url and method."
    )


class Api:
    """Authenticates calls and hands them to `dispatch`."""

    def __init__(
        self,
        dispatch: Dispatch,
        keys: Callable[[], KeyRing],
        nonces: NonceStore,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.dispatch = dispatch
        self.keys = keys
        self.nonces = nonces
        self.clock = clock
        self.throttle = Throttle()

    def add_routes(self, app: web.Application) -> None:
        """Serve the API at `/` of `app`, where the SDKs send their calls."""
        app.router.add_route("*", "/", self.handle)

    async def handle(self, request: web.Request) -> web.Response:
        """One call, answered in JSON whatever happens."""
        request_id = str(uuid.uuid4()).upper()
        try:
            answer = await self._call(request, request_id)
        except ApiError as error:
            return self.error_response(request, request_id, error)
        except ConnectionError:  # the caller left mid-request: nobody to answer, no bug
            return self.error_response(request, request_id, _invalid("The connection was lost."))
        except Exception as exc:  # a bug must not answer with a traceback
            # Where, not what: an exception's text may quote a call's parameters (a key).
            frames = traceback.extract_tb(exc.__traceback__)
            where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
            sys.stderr.write(
                f"vodedge: api: request {request_id} failed: {type(exc).__name__}{where}\n"
            )
            return self.error_response(
                request,
                request_id,
                ApiError(
                    500,
                    "InternalError",
                    "The request processing has failed due to some unknown error.",
                ),
            )
        body: JsonObject = {"RequestId": request_id}
        body.update((k, v) for k, v in answer.items() if k != "RequestId")
        return self.json_response(200, body, request_id)

    async def _call(self, request: web.Request, request_id: str) -> JsonObject:
        if request.method not in ("GET", "POST"):
            raise ApiError(400, "UnsupportedHTTPMethod", "This http method is not supported.")
        body = await _read_body(request)
        query = request.raw_path.partition("?")[2]
        if query.count("&") + body.count(b"&") + 2 > MAX_PARAMETERS:
            raise _too_many()
        params = _parameters(query, "query string")
        form: dict[str, str] = {}
        if body and request.content_type == FORM:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise _invalid("The form body is not UTF-8.") from None
            form = _parameters(text, "form body")
        for name in form:
            if name in params:
                raise _invalid(f"The parameter {name[:64]} is given more than once.")
        headers: dict[str, list[str]] = {}
        for name, value in request.headers.items():
            headers.setdefault(name.lower(), []).append(value)
        signed = SignedRequest(
            request.method, request.raw_path.partition("?")[0], params, form, headers, body
        )
        now = self.clock()
        verified = verify(signed, self.keys().get, now)
        key = verified.key
        self.check_rate(key, now)
        if not self.nonces.use(key.id, verified.nonce, verified.timestamp + MAX_SKEW + 1, now):
            raise ApiError(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        if verified.version != VERSION:
            raise not_found()
        action_params = {k: v for k, v in verified.params.items() if k not in COMMON_PARAMETERS}
        return await self.run(verified.action, action_params, key, request_id)

    def check_rate(self, key: AccessKey, now: float) -> None:
        """Raise Throttled when `key` has spent its rate."""
        wait = self.throttle.wait(key.id, key.rate, now)
        if wait > 0.0:
            raise Throttled(wait)

    async def run(
        self, action: str, params: Mapping[str, str], key: AccessKey, request_id: str
    ) -> JsonObject:
        """An authenticated caller's action, as the SDKs' calls and the console's run."""
        if not _ACTION.fullmatch(action):
            raise not_found()
        if key.read_only and not action.startswith("Describe"):
            raise ApiError(
                403,
                "Forbidden.RAM",
                "User not authorized to operate on the specified resource: the access key"
                " is read-only (Describe* actions only).",
            )
        return await self.dispatch(Call(action, params, Caller(key.id, key.read_only), request_id))

    def error_response(
        self, request: web.Request, request_id: str, error: ApiError
    ) -> web.Response:
        """The JSON answer of a failed call (`Retry-After` with a throttled one)."""
        body: Mapping[str, object] = {
            "RequestId": request_id,
            "HostId": request.host[:255],
            "Code": error.code,
            "Message": error.message,
        }
        response = self.json_response(error.status, body, request_id)
        if isinstance(error, Throttled):
            # The current SDK reads milliseconds here (and raises ThrottlingException).
            response.headers["x-acs-retry-after"] = str(max(1, math.ceil(error.retry_after * 1000)))
            response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
        return response

    @staticmethod
    def json_response(status: int, body: Mapping[str, object], request_id: str) -> web.Response:
        """A JSON answer with the request id header."""
        return web.Response(
            status=status,
            body=json.dumps(body, ensure_ascii=False).encode(),
            headers={
                "Content-Type": "application/json;charset=utf-8",
                "x-acs-request-id": request_id,
            },
        )
