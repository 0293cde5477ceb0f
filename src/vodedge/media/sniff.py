"""Telling formats apart by their first bytes, without importing their parsers."""

from __future__ import annotations


def looks_like_flv(prefix: bytes | memoryview) -> bool:
    """Whether a source's first bytes are an FLV signature (for dispatching by content)."""
    return bytes(prefix[:3]) == b"FLV"


def looks_like_mpeg_ts(prefix: bytes | memoryview) -> bool:
    """Whether a source starts with MPEG-TS packets (188 bytes) or M2TS ones (192 bytes)."""
    data = bytes(prefix[:400])
    return (len(data) >= 189 and data[0] == 0x47 and data[188] == 0x47) or (
        len(data) >= 197 and data[4] == 0x47 and data[196] == 0x47
    )


def looks_like_mpeg_audio(prefix: bytes | memoryview) -> bool:
    """Whether a source starts with an ID3v2 tag or an MPEG audio frame sync."""
    data = bytes(prefix[:4])
    if data[:3] == b"ID3":
        return True
    # Sync, a version that is not reserved, a layer that is not reserved.
    return (
        len(data) >= 2
        and data[0] == 0xFF
        and data[1] & 0xE0 == 0xE0
        and (data[1] >> 3) & 3 != 1
        and (data[1] >> 1) & 3 != 0
    )
