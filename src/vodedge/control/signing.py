"""Verifying a call's signature exactly as each SDK generation computes it.

- RPC signature version 1.0 (`aliyun-python-sdk-core`): HMAC-SHA1, keyed with
  `secret + "&"`, over `METHOD&%2F&` + the percent-encoded, sorted query of every
  parameter (query string and form body) but `Signature`; base64 in `Signature`.
- ACS3-HMAC-SHA256 (`alibabacloud-tea-openapi`): a canonical request (method,
  path, sorted query, the signed headers, the body's SHA-256) hashed and
  HMAC-SHA256'd; hex in the `Authorization` header.

Sans-IO: the caller hands over what it read; the clock is a parameter.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from vodedge.config.keys import AccessKey

from .errors import ApiError, missing

MAX_SKEW = 15 * 60  # seconds between the caller's clock and ours, either way
ACS3 = "ACS3-HMAC-SHA256"
V1_METHOD = "HMAC-SHA1"
V1_VERSION = "1.0"
MAX_NONCE = 128
MAX_SHOWN = 256 << 10  # of a string to sign in an error message (a certificate call fits)
# Headers an ACS3 signature must cover: unsigned, they could be changed in transit.
ACS3_REQUIRED_SIGNED = (
    "host",
    "x-acs-action",
    "x-acs-content-sha256",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-version",
)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z")
_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SignedRequest:
    """What verification reads of an HTTP request (header names in lower case)."""

    method: str
    path: str
    query: Mapping[str, str]
    form: Mapping[str, str]
    headers: Mapping[str, Sequence[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value (several joined by ','), None when absent."""
        values = self.headers.get(name)
        return None if not values else ",".join(values)


@dataclass(frozen=True)
class Verified:
    """A call whose signature holds: who signed it, and what it asks."""

    key: AccessKey
    action: str
    version: str
    nonce: str
    timestamp: float
    params: Mapping[str, str]


Lookup = Callable[[str], AccessKey | None]


def percent_encode(text: str) -> str:
    """RFC 3986 encoding of UTF-8 (only A-Z a-z 0-9 - _ . ~ left as they are)."""
    return quote(text, safe="~", encoding="utf-8")


def _incomplete(reason: str) -> ApiError:
    return ApiError(
        400,
        "IncompleteSignature",
        f"The request signature does not conform to Aliyun standards: {reason}",
    )


def _mismatch(string_to_sign: str) -> ApiError:
    # The older SDK compares what follows the colon with its own string to sign, to tell a
    # wrong secret from a wrong computation; ACS3's has a line break, shown as `\n`.
    shown = string_to_sign.replace("\n", "\\n")
    if len(shown) > MAX_SHOWN:  # a huge call must not make a larger answer
        shown = shown[:MAX_SHOWN] + "..."
    return ApiError(
        400,
        "SignatureDoesNotMatch",
        "Specified signature is not matched with our calculation."
        f" server string to sign is:{shown}",
    )


def parse_timestamp(text: str, now: float) -> float:
    """Seconds since the epoch of an ISO 8601 UTC time, within MAX_SKEW of `now`."""
    if not _TIMESTAMP.fullmatch(text):
        raise ApiError(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        )
    try:
        when = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        raise ApiError(
            400,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        ) from None
    seconds = when.timestamp()
    if abs(seconds - now) > MAX_SKEW:
        raise ApiError(
            400,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired: it must be within 15 minutes of"
            f" the server's time, {datetime.fromtimestamp(now, UTC):%Y-%m-%dT%H:%M:%SZ}.",
        )
    return seconds


def _nonce(text: str | None, name: str) -> str:
    if not text:
        raise missing(name)
    if len(text) > MAX_NONCE:
        raise ApiError(400, "InvalidParameter", f"{name} is longer than {MAX_NONCE} characters.")
    return text


def _key(lookup: Lookup, key_id: str) -> AccessKey:
    key = lookup(key_id)
    if key is None:
        raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
    return key


def verify(request: SignedRequest, lookup: Lookup, now: float) -> Verified:
    """The verified call, or ApiError with the documented code of what is wrong."""
    authorization = request.header("authorization")
    if authorization is not None and authorization.startswith("ACS3-"):
        return _verify_acs3(request, authorization, lookup, now)
    return _verify_v1(request, lookup, now)


def v1_string_to_sign(method: str, params: Mapping[str, str]) -> str:
    """The older SDK's string to sign: every parameter but Signature, sorted by name."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in pairs)
    return f"{method}&%2F&{percent_encode(query)}"


def v1_signature(secret: str, string_to_sign: str) -> str:
    """Base64 of HMAC-SHA1 keyed with the secret and '&'."""
    digest = hmac.new((secret + "&").encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _verify_v1(request: SignedRequest, lookup: Lookup, now: float) -> Verified:
    params = {**request.query, **request.form}  # the caller refused names given twice
    required = (
        "Action",
        "Version",
        "AccessKeyId",
        "Signature",
        "SignatureMethod",
        "SignatureVersion",
        "SignatureNonce",
        "Timestamp",
    )
    for name in required:
        if not params.get(name):
            raise missing(name)
    if params["SignatureMethod"] != V1_METHOD:
        raise ApiError(400, "InvalidSignatureMethod", "Specified signature method is not valid.")
    if params["SignatureVersion"] != V1_VERSION:
        raise ApiError(400, "InvalidSignatureVersion", "Specified signature version is not valid.")
    nonce = _nonce(params["SignatureNonce"], "SignatureNonce")
    timestamp = parse_timestamp(params["Timestamp"], now)
    key = _key(lookup, params["AccessKeyId"])
    string_to_sign = v1_string_to_sign(request.method, params)
    expected = v1_signature(key.secret, string_to_sign)
    if not hmac.compare_digest(params["Signature"].encode(), expected.encode()):
        raise _mismatch(string_to_sign)
    return Verified(key, params["Action"], params["Version"], nonce, timestamp, params)


def _authorization(value: str) -> tuple[str, str, list[str], str]:
    algorithm, _, rest = value.partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if not sep or name in fields:
            raise _incomplete("the Authorization header is malformed.")
        fields[name] = field_value
    if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
        raise _incomplete("Authorization needs Credential, SignedHeaders and Signature.")
    signed = fields["SignedHeaders"].split(";")
    return algorithm, fields["Credential"], signed, fields["Signature"]


def acs3_canonical_request(
    request: SignedRequest, signed_headers: Sequence[str], payload_hash: str
) -> str:
    """The canonical request: method, path, sorted query, signed headers, body hash."""
    query = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(request.query.items())
    )
    headers = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in request.headers[name]))}\n"
        for name in signed_headers
    )
    return "\n".join(
        (request.method, request.path, query, headers, ";".join(signed_headers), payload_hash)
    )


def acs3_string_to_sign(canonical_request: str) -> str:
    """The algorithm's name and the hex SHA-256 of the canonical request."""
    return f"{ACS3}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"


def acs3_signature(secret: str, string_to_sign: str) -> str:
    """Hex HMAC-SHA256 keyed with the secret."""
    return hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def _verify_acs3(
    request: SignedRequest, authorization: str, lookup: Lookup, now: float
) -> Verified:
    algorithm, key_id, signed, signature = _authorization(authorization)
    if algorithm != ACS3:
        raise ApiError(400, "InvalidSignatureMethod", "Specified signature method is not valid.")
    for name in ("x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce"):
        if not request.header(name):
            raise missing(name)
    # The SDK signs every header it sets, sorted and in lower case.
    signed_headers = sorted(set(signed))
    for name in ACS3_REQUIRED_SIGNED:
        if name not in signed_headers:
            raise _incomplete(f"SignedHeaders must include {name}.")
    if request.body and "content-type" not in signed_headers:
        raise _incomplete("SignedHeaders must include content-type when there is a body.")
    for name in signed_headers:
        if name not in request.headers:
            raise _incomplete(f"the signed header {name} is not in the request.")
    nonce = _nonce(request.header("x-acs-signature-nonce"), "x-acs-signature-nonce")
    timestamp = parse_timestamp(request.header("x-acs-date") or "", now)
    key = _key(lookup, key_id)
    # The body's own hash, not the header's claim: a changed body changes the signature.
    payload_hash = hashlib.sha256(request.body).hexdigest()
    canonical = acs3_canonical_request(request, signed_headers, payload_hash)
    string_to_sign = acs3_string_to_sign(canonical)
    expected = acs3_signature(key.secret, string_to_sign)
    if not _HEX.fullmatch(signature) or not hmac.compare_digest(
        signature.encode(), expected.encode()
    ):
        raise _mismatch(string_to_sign)
    params = {**request.query, **request.form}
    action = request.header("x-acs-action") or ""
    version = request.header("x-acs-version") or ""
    return Verified(key, action, version, nonce, timestamp, params)
