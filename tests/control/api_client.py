"""Hand-made API requests, signed by the SDKs' own signing functions, to be tampered with.

The bad-path tests need what no SDK sends (a stale timestamp, a replayed nonce, a
body changed after signing), so they build requests here: the string to sign and
the signature still come from `aliyun-python-sdk-core` (v1) and
`alibabacloud-tea-openapi` (ACS3), so the server is checked against them.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field, replace
from http.client import HTTPConnection
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

from alibabacloud_tea_openapi.utils import Utils
from aliyunsdkcore.auth.composer import rpc_signature_composer

VERSION = "2018-05-10"
ACS3 = "ACS3-HMAC-SHA256"
# What every error answer's Code is for a failed authentication.
AUTH_CODES = frozenset(
    {
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId.NotFound",
        "SignatureNonceUsed",
        "InvalidTimeStamp.Expired",
        "InvalidTimeStamp.Format",
        "IncompleteSignature",
        "MissingParameter",
        "Throttling.User",
        "Forbidden.RAM",
    }
)


@dataclass(frozen=True)
class Key:
    """An access key pair as a client holds it."""

    id: str
    secret: str


@dataclass(frozen=True)
class Prepared:
    """A request ready to send; `replace()` it to tamper after signing."""

    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    string_to_sign: str = ""


@dataclass
class Answer:
    """What the API answered."""

    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float

    @property
    def json(self) -> dict[str, Any]:
        """The body as JSON (a test fails if it is not)."""
        data = json.loads(self.body)
        assert isinstance(data, dict), self.body[:200]
        return data

    @property
    def code(self) -> str | None:
        """The error code, None on success."""
        code = self.json.get("Code")
        return None if code is None else str(code)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.body[:300]!r}>"


def timestamp(offset: float = 0.0) -> str:
    """ISO 8601 UTC time `offset` seconds from now, as the SDKs write it."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def send(port: int, prepared: Prepared, timeout: float = 30.0) -> Answer:
    """Send one request to 127.0.0.1:`port` on a fresh connection."""
    started = time.monotonic()
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.putrequest(
            prepared.method, prepared.target, skip_host=True, skip_accept_encoding=True
        )
        headers = dict(prepared.headers)
        if not any(name.lower() == "host" for name in headers):
            headers["Host"] = f"127.0.0.1:{port}"
        chunked = any(name.lower() == "transfer-encoding" for name in headers)
        if (prepared.body or prepared.method == "POST") and not chunked:
            headers.setdefault("Content-Length", str(len(prepared.body)))
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders(prepared.body or None)
        response = connection.getresponse()
        body = response.read()
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            body,
            time.monotonic() - started,
        )
    finally:
        connection.close()


def v1_envelope(
    key: Key,
    action: str,
    *,
    stamp: str | None = None,
    nonce: str | None = None,
    version: str = VERSION,
) -> dict[str, str]:
    """The common parameters the older SDK adds to every call."""
    return {
        "Action": action,
        "Version": version,
        "Format": "JSON",
        "AccessKeyId": key.id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureType": "",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or str(uuid.uuid4()),
        "Timestamp": stamp or timestamp(),
        "RegionId": "cn-hangzhou",
    }


def v1_sign(method: str, params: dict[str, str], secret: str) -> tuple[str, str]:
    """(Signature, string to sign) as aliyun-python-sdk-core computes them."""
    compose = getattr(rpc_signature_composer, "__compose_string_to_sign")
    sign = getattr(rpc_signature_composer, "__get_signature")
    string_to_sign = compose(method, params)
    return sign(string_to_sign, secret), string_to_sign


def _query(params: dict[str, str]) -> str:
    return urlencode(params, quote_via=quote, safe="~")


def v1_request(
    port: int,
    key: Key,
    action: str,
    params: dict[str, str] | None = None,
    *,
    method: str = "GET",
    form: dict[str, str] | None = None,
    stamp: str | None = None,
    nonce: str | None = None,
    version: str = VERSION,
) -> Prepared:
    """A signed v1 call: envelope and `params` in the query, `form` in a form body."""
    query = {**v1_envelope(key, action, stamp=stamp, nonce=nonce, version=version)}
    query.update(params or {})
    signature, string_to_sign = v1_sign(method, {**query, **(form or {})}, key.secret)
    query["Signature"] = signature
    headers = {"Accept": "application/json"}
    body = b""
    if form:
        body = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    return Prepared(method, "/?" + _query(query), headers, body, string_to_sign)


def acs3_request(
    port: int,
    key: Key,
    action: str,
    query: dict[str, str] | None = None,
    *,
    form: dict[str, str] | None = None,
    stamp: str | None = None,
    nonce: str | None = None,
    version: str = VERSION,
    host: str | None = None,
) -> Prepared:
    """A signed ACS3-HMAC-SHA256 call, headers as alibabacloud-tea-openapi sets them."""
    body = urlencode(form).encode() if form else b""
    payload = hashlib.sha256(body).hexdigest()
    headers = {
        "host": host or f"127.0.0.1:{port}",
        "x-acs-version": version,
        "x-acs-action": action,
        "user-agent": "vodedge-tests",
        "x-acs-date": stamp or timestamp(),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "accept": "application/json",
        "x-acs-content-sha256": payload,
    }
    if form:
        headers["content-type"] = "application/x-www-form-urlencoded"
    signed = SimpleNamespace(pathname="/", method="POST", query=dict(query or {}), headers=headers)
    authorization = Utils.get_authorization(signed, ACS3, payload, key.id, key.secret)
    target = "/?" + _query(query) if query else "/"
    out = {k: v for k, v in headers.items() if k != "host"}
    out["Host"] = headers["host"]
    out["Authorization"] = authorization
    return Prepared("POST", target, out, body)


def with_headers(prepared: Prepared, **changes: str) -> Prepared:
    """`prepared` with headers changed (underscores in names become dashes)."""
    headers = dict(prepared.headers)
    for name, value in changes.items():
        headers[name.replace("_", "-")] = value
    return replace(prepared, headers=headers)
