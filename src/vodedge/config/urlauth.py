"""Signed URLs (the `aliauth` function): types A, B, C and F as Alibaba Cloud CDN documents them.

Sources (read 2026): "Type A/B/C/F signing" and "URL signing examples" under
https://help.aliyun.com/zh/cdn/user-guide/url-signing/ (English pages under
https://www.alibabacloud.com/help/en/cdn/user-guide/), and the `aliauth` rows of
"Domain configuration functions":

- A: `/Path?auth_key=<timestamp>-<rand>-<uid>-<md5hash>`,
  md5hash = md5("<Path>-<timestamp>-<rand>-<uid>-<key>"); timestamp in decimal.
- B: `/<timestamp>/<md5hash>/Path`, md5hash = md5("<key><timestamp><Path>");
  timestamp `YYYYMMDDHHMM` in UTC+8.
- C: `/<md5hash>/<timestamp>/Path` or `/Path?KEY1=<md5hash>&KEY2=<timestamp>`,
  md5hash = md5("<key><Path><timestamp>"); timestamp in hexadecimal.
- F: `/Path?sign=<md5hash>&time=<timestamp>` (names set by sign_param and
  time_param), md5hash = md5("<key><Path><timestamp>"); timestamp in hexadecimal
  unless time_format is dec.

The timestamp is the signing time: a URL is valid until timestamp +
ali_auth_delta (a URL whose expiry equals the current second is still valid;
the docs refuse "timestamp + delta < now"). Path is the path as the client
sent it, percent-encoding included, without the query. auth_key2 is accepted
beside auth_key1 (key rotation). Hashes are compared in constant time.

vodedge's own extension, off unless `vodedge_signed_args` names parameters:
the documented hashes cover the path only, so a client could edit any query
parameter of a signed URL (raise a preview's length, say). With the extension
the Path in every hash is followed by `?name=value&...` for each named
parameter, in the order named, with the value as sent (`name=` when absent),
so those parameters cannot be added, removed or changed. A name is matched as
the edge reads it (percent-decoded), so an escaped second copy is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Literal
from urllib.parse import unquote, unquote_plus

from .access import Network, client_address

AuthKind = Literal["type_a", "type_b", "type_c", "type_f"]
UTC8 = timezone(timedelta(hours=8))
A_PARAM = "auth_key"
C_SIGN, C_TIME = "KEY1", "KEY2"
_HASH = re.compile(r"[0-9a-f]{32}")
_DECIMAL = re.compile(r"[0-9]{1,12}")
_HEX = re.compile(r"[0-9a-fA-F]{1,10}")
_B_TIME = re.compile(r"[0-9]{12}")


class AuthDenied(Exception):
    """A request a signed-URL domain refuses (403): a stable code and a one-line reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class UrlAuth:
    """A domain's `aliauth` settings."""

    kind: AuthKind
    keys: tuple[str, ...]
    delta: int = 1800
    exempt: tuple[Network, ...] = ()
    xfwd: Literal["on", "off", "all"] = "on"
    sign_param: str = "sign"
    time_param: str = "time"
    time_format: Literal["hex", "dec"] = "hex"
    # path_encoding (type F): off hashes the path percent-decoded, on as sent.
    encoded_path: bool = True
    signed_args: tuple[str, ...] = field(default=())

    def hashed_path(self, path: str) -> str:
        """The path as it enters the hash."""
        return path if self.encoded_path or self.kind != "type_f" else unquote(path)

    @property
    def signature_args(self) -> frozenset[str]:
        """The query parameters that carry the signature (never part of a cache key)."""
        if self.kind == "type_a":
            return frozenset({A_PARAM})
        if self.kind == "type_c":
            return frozenset({C_SIGN, C_TIME})
        if self.kind == "type_f":
            return frozenset({self.sign_param, self.time_param})
        return frozenset()

    def exempts(self, remote: str, forwarded_for: str | None) -> bool:
        """Whether req_auth_ip_white lets this client in unsigned.

        The addresses checked follow req_auth_ip_acl_xfwd: the first
        X-Forwarded-For address (on, the default), the connection's (off), or
        both (all: both must be listed).
        """
        if not self.exempt:
            return False
        forwarded = [a.strip() for a in (forwarded_for or "").split(",") if a.strip()]
        if self.xfwd == "off" or not forwarded:
            addresses = [remote]
        elif self.xfwd == "on":
            addresses = forwarded[:1]
        else:
            addresses = [remote, forwarded[0]]
        for text in addresses:
            address = client_address(text)
            if address is None or not any(
                address.version == net.version and address in net for net in self.exempt
            ):
                return False
        return True


@dataclass(frozen=True)
class Authorized:
    """A verified request: its path and query with the signature taken out."""

    path: str
    query: str


def _split_query(raw_query: str) -> list[tuple[str, str | None, str]]:
    """(name, value or None without '=', the raw part) of each `&`-separated part."""
    parts = []
    for part in raw_query.split("&") if raw_query else []:
        name, eq, value = part.partition("=")
        parts.append((name, value if eq else None, part))
    return parts


def _signed_path(path: str, parts: list[tuple[str, str | None, str]], names: Sequence[str]) -> str:
    """`path` followed by the extension's signed parameters, when it names any."""
    if not names:
        return path
    pairs = []
    for name in names:
        # By name as the edge reads it (percent- and `+`-decoded): `free%5Ftime` is
        # free_time too, and a second copy must not pass beside the signed one.
        values = [value for key, value, _ in parts if unquote_plus(key) == name]
        if len(values) > 1:
            raise AuthDenied("auth_invalid", f"denied by req auth: {name} is given twice")
        value = (values[0] or "") if values else ""
        pairs.append(f"{name}={value}")
    return f"{path}?{'&'.join(pairs)}"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8", "surrogateescape"), usedforsecurity=False).hexdigest()


def _hash_input(kind: AuthKind, key: str, path: str, stamp: str, rand: str, uid: str) -> str:
    if kind == "type_a":
        return f"{path}-{stamp}-{rand}-{uid}-{key}"
    if kind == "type_b":
        return f"{key}{stamp}{path}"
    return f"{key}{path}{stamp}"


def _time_of(kind: AuthKind, stamp: str, time_format: str) -> int:
    """The UNIX time a timestamp field names; AuthDenied if it is malformed."""
    if kind == "type_b":
        if _B_TIME.fullmatch(stamp):
            try:
                when = datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC8)
            except ValueError:
                pass
            else:
                return int(when.timestamp())
    elif kind == "type_a" or (kind == "type_f" and time_format == "dec"):
        if _DECIMAL.fullmatch(stamp):
            return int(stamp)
    elif _HEX.fullmatch(stamp):
        return int(stamp, 16)
    raise AuthDenied("auth_malformed", f"denied by req auth: malformed timestamp={stamp[:40]}")


def verify(auth: UrlAuth, raw_path: str, raw_query: str, now: int) -> Authorized:
    """Check a request's signature at UNIX time `now`; AuthDenied (403) if it fails."""
    parts = _split_query(raw_query)
    rand = uid = ""
    path = raw_path
    taken = auth.signature_args
    if auth.kind == "type_a":
        given = [value for name, value, _ in parts if name == A_PARAM]
        if not given:
            raise AuthDenied("auth_missing", "denied by req auth: no auth_key")
        fields = (given[0] or "").split("-")
        if len(given) > 1 or len(fields) != 4:
            raise AuthDenied("auth_malformed", "denied by req auth: malformed auth_key")
        stamp, rand, uid, digest = fields
    elif auth.kind == "type_b" or (
        auth.kind == "type_c" and not any(name in taken for name, _, _ in parts)
    ):
        segments = raw_path.split("/", 3)
        if len(segments) < 4 or not segments[3]:
            raise AuthDenied("auth_missing", "denied by req auth: no signature in the path")
        first, second = segments[1], segments[2]
        stamp, digest = (first, second) if auth.kind == "type_b" else (second, first)
        path = "/" + segments[3]
        taken = frozenset()
    else:
        sign_name, time_name = (
            (C_SIGN, C_TIME) if auth.kind == "type_c" else (auth.sign_param, auth.time_param)
        )
        signs = [value for name, value, _ in parts if name == sign_name]
        times = [value for name, value, _ in parts if name == time_name]
        if not signs or not times:
            raise AuthDenied("auth_missing", f"denied by req auth: no {sign_name} or {time_name}")
        if len(signs) > 1 or len(times) > 1:
            raise AuthDenied("auth_malformed", "denied by req auth: a signature is given twice")
        digest, stamp = signs[0] or "", times[0] or ""
    if not _HASH.fullmatch(digest):
        raise AuthDenied("auth_malformed", "denied by req auth: malformed md5hash")
    signed_at = _time_of(auth.kind, stamp, auth.time_format)
    if signed_at + auth.delta < now:
        raise AuthDenied("auth_expired", f"denied by req auth: expired timestamp={stamp}")
    signed_path = _signed_path(auth.hashed_path(path), parts, auth.signed_args)
    matched = False
    for key in auth.keys:
        expected = _md5(_hash_input(auth.kind, key, signed_path, stamp, rand, uid))
        matched |= hmac.compare_digest(expected, digest)
    if not matched:
        raise AuthDenied("auth_invalid", f"denied by req auth: invalid md5hash={digest}")
    query = "&".join(raw for name, _, raw in parts if name not in taken)
    return Authorized(path, query)


def format_time(kind: AuthKind, when: int, time_format: str = "hex") -> str:
    """A timestamp field for UNIX time `when`, as type `kind` writes it."""
    if kind == "type_b":
        return datetime.fromtimestamp(when, UTC8).strftime("%Y%m%d%H%M")
    if kind == "type_a" or (kind == "type_f" and time_format == "dec"):
        return str(when)
    return f"{when:X}"


def sign(
    auth: UrlAuth,
    raw_path: str,
    raw_query: str,
    when: int,
    *,
    rand: str = "0",
    uid: str = "0",
    c_in_query: bool = False,
) -> tuple[str, str]:
    """The signed (path, query) of a URL, signed at UNIX time `when` with the first key."""
    stamp = format_time(auth.kind, when, auth.time_format)
    parts = _split_query(raw_query)
    signed_path = _signed_path(auth.hashed_path(raw_path), parts, auth.signed_args)
    digest = _md5(_hash_input(auth.kind, auth.keys[0], signed_path, stamp, rand, uid))
    extra: list[str] = []
    path = raw_path
    if auth.kind == "type_a":
        extra = [f"{A_PARAM}={stamp}-{rand}-{uid}-{digest}"]
    elif auth.kind == "type_b":
        path = f"/{stamp}/{digest}{raw_path}"
    elif auth.kind == "type_c" and not c_in_query:
        path = f"/{digest}/{stamp}{raw_path}"
    elif auth.kind == "type_c":
        extra = [f"{C_SIGN}={digest}", f"{C_TIME}={stamp}"]
    else:
        extra = [f"{auth.sign_param}={digest}", f"{auth.time_param}={stamp}"]
    return path, "&".join([*(raw for _, _, raw in parts), *extra])
