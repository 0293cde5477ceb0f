"""Parsers for single configuration values; each raises only ConfigError."""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from .errors import INVALID_PARAMETER, ConfigError, shown

# Byte-size units: SI for the decimal ones, IEC for "i" ones; bare K/M/G/T are
# binary as in nginx (and Tengine, which the CDN runs), the less surprising reading
# for cache and buffer sizes.
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 10**3,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 10**6,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 10**9,
    "gib": 1 << 30,
    "t": 1 << 40,
    "tb": 10**12,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,6})?) ?([A-Za-z]{0,3})")
MAX_SIZE = 1 << 60
# `ali_limit_rate` and friends: an integer and an optional k or m (the docs name no
# other unit), in bytes; k and m are 1024-based like nginx's limit_rate.
_RATE = re.compile(r"([0-9]{1,12})([kKmM]?)")
_RATE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20}
_DIGITS = re.compile(r"[0-9]{1,18}")
# The console's rule for custom seek parameter names: letters, digits, underscores.
_PARAM_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def bad(message: str) -> ConfigError:
    """A ConfigError for a malformed value outside any function."""
    return ConfigError(INVALID_PARAMETER, message)


def parse_switch(text: str, allowed: tuple[str, ...] = ("on", "off")) -> str:
    """One of `allowed` (the API's switches are lower-case words)."""
    if text not in allowed:
        raise bad(f"must be {' or '.join(allowed)}, got {shown(text)}")
    return text


def parse_int(text: str, low: int, high: int) -> int:
    """A decimal integer in `low..high` written with ASCII digits only."""
    if not _DIGITS.fullmatch(text):
        raise bad(f"must be an integer from {low} to {high}, got {shown(text)}")
    value = int(text)
    if not low <= value <= high:
        raise bad(f"must be an integer from {low} to {high}, got {shown(text)}")
    return value


def parse_size(text: str) -> int:
    """A byte count such as `10GiB`, `500MB`, `64k` or `1048576`."""
    match = _SIZE.fullmatch(text.strip()) if isinstance(text, str) else None
    unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise bad(f"must be a size such as 10GiB, 500MB or 1048576, got {shown(text)}")
    try:
        value = int(Decimal(match.group(1)) * unit)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise bad(f"must be a size such as 10GiB, got {shown(text)}") from None
    if value > MAX_SIZE:
        raise bad(f"must be at most 1 EiB, got {shown(text)}")
    return value


def parse_rate(text: str) -> int:
    """A byte count in the CDN's rate syntax: digits and an optional k or m."""
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise bad(f"must be digits with an optional k or m (like 1m or 100k), got {shown(text)}")
    return int(match.group(1)) * _RATE_UNITS[match.group(2).lower()]


def parse_param_name(text: str) -> str:
    """A query parameter name of letters, digits and underscores."""
    if not _PARAM_NAME.fullmatch(text):
        raise bad(f"must be 1-64 letters, digits or underscores, got {shown(text)}")
    if text == "ali_audio_only":
        raise bad("must not be ali_audio_only, which audio extraction reserves")
    return text


def to_ascii_host(text: str) -> str:
    """`text` lower-cased and IDNA-encoded, without a trailing dot; ConfigError if invalid."""
    host = text.strip().rstrip(".").lower() if isinstance(text, str) else ""
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise bad(f"is not a valid internationalised domain name: {shown(text)}") from None
    return host


def parse_hostname(text: str, *, wildcard: bool = False) -> str:
    """A DNS name (ASCII or IDNA), optionally `*.`-prefixed, normalised to lower-case ASCII."""
    host = to_ascii_host(text)
    labels = host.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    if (
        not host
        or len(host) > 253
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        form = "a domain name like video.example.com" + (" or *.example.com" if wildcard else "")
        raise bad(f"must be {form}, got {shown(text)}")
    return host


def parse_host(text: str) -> str:
    """A domain name or an IP address literal (IPv6 in brackets or bare)."""
    literal = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return ipaddress.ip_address(literal).compressed
    except ValueError:
        return parse_hostname(text)


def parse_host_header(text: str) -> str:
    """A Host header value: a host and an optional `:port`, normalised."""
    host, port = _split_port(text)
    name = parse_host(host)
    if ":" in name:
        name = f"[{name}]"
    return name if port is None else f"{name}:{port}"


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise bad(f"has an unclosed '[': {shown(text)}")
        host, rest = text[: end + 1], text[end + 1 :]
    elif text.count(":") == 1:
        host, _, rest = text.partition(":")
        rest = ":" + rest
    else:
        host, rest = text, ""
    if not rest:
        return host, None
    if not rest.startswith(":"):
        raise bad(f"must be host or host:port, got {shown(text)}")
    return host, parse_int(rest[1:], 1, 65535)


def parse_http_url(text: str) -> str:
    """An absolute http:// or https:// URL with a host, on one line."""
    problem = f"must be an http:// or https:// URL, got {shown(text)}"
    if any(ch.isspace() or ord(ch) < 32 for ch in text):
        raise bad(problem)
    try:
        parts = urlsplit(text)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise bad(problem) from None
    if parts.scheme not in ("http", "https") or not host:
        raise bad(problem)
    return text


def parse_text(text: str, limit: int = 1024) -> str:
    """Free text on one line, at most `limit` characters."""
    if len(text) > limit or any(ord(ch) < 32 for ch in text):
        raise bad(f"must be one line of at most {limit} characters")
    return text
