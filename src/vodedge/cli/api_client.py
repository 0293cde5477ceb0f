"""A client of the node's API that signs like the current SDK (ACS3-HMAC-SHA256), for
the CLI's `domain`, `config`, `purge URL` and `push` commands.

Parameters go in a form body (POST), as the API takes them; the signature covers
the method, path, the signed headers and the body's SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode, urlsplit

VERSION = "2018-05-10"
ALGORITHM = "ACS3-HMAC-SHA256"
TIMEOUT = 30.0
MAX_ANSWER = 16 << 20
JsonObject = dict[str, object]


class ApiCallError(Exception):
    """An API error answer (its `code`), or no answer at all (`code` None)."""

    def __init__(self, code: str | None, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = " ".join(message.split())

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.code else self.message


@dataclass(frozen=True)
class Endpoint:
    """Where the API is and the access key pair that signs calls."""

    url: str
    key_id: str
    secret: str = ""

    @classmethod
    def from_flags(cls, url: str | None, key_id: str | None, secret: str | None) -> Endpoint:
        """Flags first, then VODEDGE_ENDPOINT / VODEDGE_ACCESS_KEY_ID / _SECRET."""
        url = url or os.environ.get("VODEDGE_ENDPOINT", "")
        key_id = key_id or os.environ.get("VODEDGE_ACCESS_KEY_ID", "")
        secret = secret or os.environ.get("VODEDGE_ACCESS_KEY_SECRET", "")
        if not url:
            raise ValueError("no API endpoint: give --endpoint or set VODEDGE_ENDPOINT")
        if "://" not in url:
            url = f"http://{url}"
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the endpoint must be an http(s) URL, got {url!r}")
        if not key_id or not secret:
            raise ValueError(
                "no access key: give --access-key-id and --access-key-secret or set"
                " VODEDGE_ACCESS_KEY_ID and VODEDGE_ACCESS_KEY_SECRET"
            )
        return cls(url.rstrip("/") + "/", key_id, secret)

    def __repr__(self) -> str:  # the secret never reaches a log or a traceback
        return f"Endpoint(url={self.url!r}, key_id={self.key_id!r})"


def _encode(text: str) -> str:
    return quote(text, safe="~", encoding="utf-8")


def signed_request(
    endpoint: Endpoint, action: str, params: Mapping[str, str], *, nonce: str, date: str
) -> urllib.request.Request:
    """The POST that calls `action` with `params`, signed with ACS3-HMAC-SHA256."""
    body = urlencode(sorted(params.items()), quote_via=quote).encode()
    payload_hash = hashlib.sha256(body).hexdigest()
    parts = urlsplit(endpoint.url)
    headers = {
        "host": parts.netloc,
        "content-type": "application/x-www-form-urlencoded",
        "x-acs-action": action,
        "x-acs-content-sha256": payload_hash,
        "x-acs-date": date,
        "x-acs-signature-nonce": nonce,
        "x-acs-version": VERSION,
    }
    names = sorted(headers)
    canonical = "\n".join(
        (
            "POST",
            parts.path or "/",
            "",  # no query string
            "".join(f"{name}:{headers[name].strip()}\n" for name in names),
            ";".join(names),
            payload_hash,
        )
    )
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = hmac.new(endpoint.secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"{ALGORITHM} Credential={endpoint.key_id},SignedHeaders={';'.join(names)},"
        f"Signature={signature}"
    )
    headers["accept"] = "application/json"
    return urllib.request.Request(endpoint.url, data=body, headers=headers, method="POST")


def call(endpoint: Endpoint, action: str, params: Mapping[str, str]) -> JsonObject:
    """Call `action`; its JSON answer, or ApiCallError with the API's code."""
    request = signed_request(
        endpoint,
        action,
        params,
        nonce=secrets.token_hex(16),
        date=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return _json(response.read(MAX_ANSWER + 1), response.status)
    except urllib.error.HTTPError as error:
        with error:
            answer = _json(error.read(MAX_ANSWER + 1), error.code)
        code, message = answer.get("Code"), answer.get("Message")
        raise ApiCallError(
            str(code) if code else f"HTTP{error.code}",
            str(message) if message else f"the API answered {error.code}",
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise ApiCallError(None, f"cannot reach the API at {endpoint.url}: {reason}") from None


def _json(data: bytes, status: int) -> JsonObject:
    if len(data) > MAX_ANSWER:
        raise ApiCallError(None, f"the API's answer is over {MAX_ANSWER} bytes")
    try:
        answer = json.loads(data)
    except ValueError:
        raise ApiCallError(None, f"the API answered {status} with no JSON") from None
    if not isinstance(answer, dict):
        raise ApiCallError(None, f"the API answered {status} with JSON that is no object")
    return answer
