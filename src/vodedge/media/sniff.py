"""Telling formats apart by their first bytes, without importing their parsers."""

from __future__ import annotations


def looks_like_flv(prefix: bytes | memoryview) -> bool:
    """Whether a source's first bytes are an FLV signature (for dispatching by content)."""
    return bytes(prefix[:3]) == b"FLV"
