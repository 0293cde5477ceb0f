"""Seek bounds shared by MP4 and FLV: parsing and validating `start`/`end`."""

from __future__ import annotations

import math
import re

from vodedge.media.errors import InvalidSeek

# Plain decimal seconds: "12", "12.5", ".5". No signs, exponents, "nan" or "inf",
# which float() would accept, and ASCII digits only (float() reads "٣" as 3).
_SECONDS = re.compile(r"(?:[0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})")


def parse_seconds(text: str, name: str) -> float:
    """A `start`/`end` value in seconds, from text as a URL or command line gives it."""
    if not _SECONDS.fullmatch(text.strip(" \t")):  # ASCII blanks only, like the digits
        raise InvalidSeek(f"{name} must be a number of seconds, not {text[:40]!r}")
    return float(text)


def check_seek(start: float | None, end: float | None) -> None:
    """Refuse seek bounds that are not finite, negative, or out of order."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise InvalidSeek(f"{name} must be a finite number of seconds >= 0, not {value}")
    if end is not None and end <= 0:
        raise InvalidSeek(f"end must be more than 0, not {end}")  # an empty clip
    if start is not None and end is not None and end <= start:
        raise InvalidSeek(f"end ({end}) must be after start ({start})")
