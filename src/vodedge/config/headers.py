"""set_resp_header: response headers a domain adds, changes or removes, and CORS.

Alibaba Cloud CDN's set_resp_header takes `key` (the header's name), `value`,
`header_operation_type` (add, delete, modify, rewrite; a delete's value is
ignored) and
`access_origin_control` (on: the Origin of the request is checked against the
Access-Control-Allow-Origin list and echoed when it matches; off: the value is
sent as it is). `rewrite` (regular-expression replacement of an origin's value)
is refused: vodedge has no origin headers to rewrite on most responses.

What is vodedge's own: names that would break the response's framing or lie
about its body (Content-Length, Content-Range, Transfer-Encoding...) are
refused, and a domain with an Access-Control-Allow-Origin rule answers preflight
`OPTIONS` requests and gets defaults for the CORS headers it does not set itself,
so that players on other sites can `fetch()` ranges of its media.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import DUPLICATE_FUNCTION, ConfigError, shown
from .values import bad

ALLOW_ORIGIN = "access-control-allow-origin"
# RFC 9110 5.6.2 token characters.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Headers the edge owns: framing, hop-by-hop, range and validator answers, its own codes.
RESERVED = frozenset(
    {
        "content-length",
        "content-range",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "proxy-connection",
        "proxy-authenticate",
        "accept-ranges",
        "etag",
        "last-modified",
        "date",
        "location",
        "x-vodedge-error",
        "x-cache",
    }
)
MAX_NAME = 128
MAX_VALUE = 2048
# The defaults vodedge gives a CORS domain for what it does not configure itself.
DEFAULT_METHODS = "GET, HEAD, OPTIONS"
DEFAULT_REQUEST_HEADERS = "Range, If-Range, If-None-Match, If-Modified-Since"
DEFAULT_EXPOSED = "Content-Range, Content-Length, Accept-Ranges, ETag, X-Cache, X-Vodedge-Error"
DEFAULT_MAX_AGE = "86400"

Operation = Literal["add", "delete", "modify"]


def parse_header_name(text: str) -> str:
    """A response header's name: an HTTP token, not one the edge owns."""
    if not text or len(text) > MAX_NAME or not set(text) <= _TCHAR:
        raise bad(f"must be an HTTP header name (letters, digits, -), got {shown(text)}")
    if text.lower() in RESERVED:
        raise bad(f"names {text}, which vodedge sets itself")
    return text


def parse_header_value(text: str) -> str:
    """A header value: visible ASCII and inner spaces, at most MAX_VALUE characters."""
    if len(text) > MAX_VALUE:
        raise bad(f"must be at most {MAX_VALUE} characters")
    if not all(32 <= ord(c) < 127 or c == "\t" for c in text) or text != text.strip(" \t"):
        raise bad(f"must be visible ASCII on one line without outer blanks, got {shown(text)}")
    return text


def parse_operation(text: str) -> str:
    """header_operation_type; rewrite is not supported."""
    if text == "rewrite":
        raise bad("rewrite is not supported by vodedge (add, delete, modify are)")
    if text not in ("add", "delete", "modify"):
        raise bad(f"must be add, delete or modify, got {shown(text)}")
    return text


@dataclass(frozen=True)
class HeaderRule:
    """One set_resp_header rule."""

    name: str
    value: str
    operation: Operation = "add"


@dataclass(frozen=True)
class Cors:
    """The CORS answer of a domain: allowed origins and the preflight's headers."""

    origins: tuple[str, ...]  # as configured: "*", or origins like https://a.example
    check_origin: bool  # access_origin_control
    methods: str = DEFAULT_METHODS
    request_headers: str = DEFAULT_REQUEST_HEADERS
    exposed: str = DEFAULT_EXPOSED
    max_age: str = DEFAULT_MAX_AGE

    def allow_origin(self, origin: str | None) -> str | None:
        """The Access-Control-Allow-Origin to answer a request from `origin` (None: none)."""
        if not self.check_origin:
            return ", ".join(self.origins)
        if origin is None:
            return None
        if "*" in self.origins:
            return origin
        return origin if origin in self.origins else None


@dataclass(frozen=True)
class ResponseHeaders:
    """A domain's set_resp_header rules: the plain ones, and its CORS answer if any."""

    rules: tuple[HeaderRule, ...] = ()
    cors: Cors | None = None


def response_headers(
    entries: Sequence[tuple[int, Mapping[str, object]]],
) -> ResponseHeaders:
    """The rules of a domain's set_resp_header functions, given as (index, values)."""
    rules: list[HeaderRule] = []
    seen: set[str] = set()
    for index, values in entries:
        name = str(values["key"])
        if name.lower() in seen:
            raise ConfigError(
                DUPLICATE_FUNCTION,
                f"set_resp_header: header {name} is configured more than once",
                index=index,
                arg="key",
            )
        seen.add(name.lower())
        kind = str(values["header_operation_type"])
        operation: Operation = (
            "delete" if kind == "delete" else "modify" if kind == "modify" else "add"
        )
        rules.append(HeaderRule(name, str(values["value"]), operation))
    return ResponseHeaders(tuple(rules), _cors(rules, entries))


def _cors(
    rules: list[HeaderRule], entries: Sequence[tuple[int, Mapping[str, object]]]
) -> Cors | None:
    by_name = {
        rule.name.lower(): (rule, values) for rule, (_, values) in zip(rules, entries, strict=True)
    }
    found = by_name.get(ALLOW_ORIGIN)
    if found is None or found[0].operation == "delete":
        return None
    rule, values = found
    origins = tuple(part.strip() for part in rule.value.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not origin.startswith(("http://", "https://")):
            index = next(i for i, v in entries if v is values)
            raise ConfigError(
                "InvalidArgValue.Malformed",
                f"set_resp_header: Access-Control-Allow-Origin must be * or origins like "
                f"https://a.example separated by commas, got {shown(origin)}",
                index=index,
                arg="value",
            )

    def configured(name: str, default: str) -> str:
        other = by_name.get(name)
        return other[0].value if other is not None and other[0].operation != "delete" else default

    return Cors(
        origins=origins,
        check_origin=values.get("access_origin_control") == "on",
        methods=configured("access-control-allow-methods", DEFAULT_METHODS),
        request_headers=configured("access-control-allow-headers", DEFAULT_REQUEST_HEADERS),
        exposed=configured("access-control-expose-headers", DEFAULT_EXPOSED),
        max_age=configured("access-control-max-age", DEFAULT_MAX_AGE),
    )
