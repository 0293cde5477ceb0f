"""The request target in one canonical spelling: what chooses the domain and the cache
key is exactly what is sent to the origin (RFC 3986 normalisation, RFC 9112 forms)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from vodedge.config import normalize_host

_HEX = frozenset(b"0123456789abcdefABCDEF")
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# pchar's sub-delims, ":" and "@", and the "/" between segments stay as they are.
_RAW = _UNRESERVED | frozenset(b"!$&'()*+,;=:@/")
# A path of these characters only (no escapes) is its own normal form.
_PLAIN = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")


class BadTarget(ValueError):
    """The request target or Host cannot be read as one host and path."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Target:
    """A request's host and path, canonical."""

    host: str  # lower-case ASCII, IDNA, no trailing dot, no port; IPv6 without brackets
    raw_path: str  # percent-encoded; unreserved characters decoded, hex upper-case
    path: str  # raw_path decoded (what path rules and suffixes are matched against)
    sent: str  # the path and query as the client wrote them (what a URL signature signs)

    @property
    def host_header(self) -> str:
        """The host as a Host header spells it."""
        return f"[{self.host}]" if ":" in self.host else self.host


def normalize_path(raw: str) -> str:
    """`raw` (a path as sent, without its query) in RFC 3986's normal form: escapes of
    unreserved characters decoded, other escapes upper-case, and every byte that may
    not appear raw (non-ASCII included) escaped. BadTarget for a stray `%`."""
    if _PLAIN.fullmatch(raw):
        return raw  # most requests: nothing to decode or escape
    data = raw.encode("utf-8", "surrogateescape")
    out: list[str] = []
    at = 0
    while at < len(data):
        byte = data[at]
        if byte == 0x25:  # "%"
            pair = data[at + 1 : at + 3]
            if len(pair) != 2 or not all(c in _HEX for c in pair):
                raise BadTarget("bad_path", "the path has a malformed percent-escape")
            value = int(pair, 16)
            out.append(chr(value) if value in _UNRESERVED else "%" + pair.decode().upper())
            at += 3
            continue
        out.append(chr(byte) if byte in _RAW else f"%{byte:02X}")
        at += 1
    return "".join(out)


def read_target(raw_target: str, host_header: str | None) -> Target:
    """The canonical host and path of a request line's target and its Host header.

    An absolute-form target (`GET http://host/x HTTP/1.1`) names the host itself and
    the Host header is ignored, as RFC 9112 (3.2.2) says. A Host that is not plain
    ASCII (full-width or other Unicode letters, which IDNA would fold onto another
    name) is refused rather than guessed at.
    """
    path_and_query = raw_target
    authority = host_header
    if not raw_target.startswith("/"):
        parts = urlsplit(raw_target)
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
            raise BadTarget("bad_path", "the request target is not a path or an http URL")
        if "@" in parts.netloc:
            raise BadTarget("bad_host", "the request target carries credentials")
        authority = parts.netloc
        path_and_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not authority:
        raise BadTarget("bad_host", "the request has no Host")
    if not authority.isascii():
        raise BadTarget("bad_host", "the Host is not an ASCII host name")
    host = normalize_host(authority)
    if host is None:
        raise BadTarget("bad_host", "the Host is not a host name")
    raw_path = normalize_path(path_and_query.split("?", 1)[0].split("#", 1)[0])
    return Target(host, raw_path, unquote(raw_path, errors="replace"), path_and_query)
