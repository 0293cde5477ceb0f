"""The `onMetaData` script tag: finding it and rewriting it to describe our output.

- Audio-only outputs: `hasVideo` false (added if absent), `VIDEO_KEYS` removed.
- Every output: `LAYOUT_KEYS` removed. `filesize` and `keyframes` are removed
  where the layout is unknown when the metadata is written (a stream, and every
  plan a stream could also make: one URL, one body) and exact in a time-based
  clip's plan (`filesize` added if absent, `keyframes` rebuilt if the source had
  one); `hasKeyframes`, when present, says whether `keyframes` is.
- Clips: `audiosize`/`videosize` removed; `duration` removed where the layout
  is unknown, the clip's own in a time-based clip's plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from vodedge.media.errors import LimitExceeded
from vodedge.media.flv import amf0
from vodedge.media.flv.amf0 import AmfValue, EcmaArray
from vodedge.media.flv.tags import TAG_HEADER_SIZE, U32

ON_METADATA_PREFIX: Final = b"\x02\x00\x0aonMetaData"

VIDEO_KEYS: Final = frozenset(
    {
        "width",
        "height",
        "displaywidth",
        "displayheight",
        "videocodecid",
        "videodatarate",
        "framerate",
        "videoframerate",
        "fps",
        "videosize",
        "videodevice",
        "videokeyframe_frequency",
        "avcprofile",
        "avclevel",
        "videotrackidinfomap",
    }
)
# Keys that describe where bytes sit in the file; none survives a re-layout as is.
LAYOUT_KEYS: Final = frozenset(
    {"datasize", "canseektoend", "lasttimestamp", "lastkeyframetimestamp", "lastkeyframelocation"}
)
CLIP_KEYS: Final = frozenset({"audiosize", "videosize"})
MAX_TAG_DATA: Final = 0xFFFFFF


@dataclass(slots=True)
class MetadataRewrite:
    """What the rewrite knows of the output; None means unknown (the key is removed)."""

    audio_only: bool
    clipped: bool = False
    filesize: int | None = None
    keyframes: tuple[list[float], list[float]] | None = None
    duration: float | None = None


@dataclass(frozen=True, slots=True)
class Metadata:
    """A decoded `onMetaData` tag: the value, and bytes after it kept verbatim."""

    value: dict[str, AmfValue]
    trailer: bytes


def is_onmetadata(data: bytes | memoryview) -> bool:
    """Whether a script tag's data starts with the `onMetaData` name."""
    return bytes(data[: len(ON_METADATA_PREFIX)]) == ON_METADATA_PREFIX


def decode_metadata(data: bytes | memoryview) -> Metadata | None:
    """The metadata of an `onMetaData` tag's data; None if it is another script tag."""
    if not is_onmetadata(data):
        return None
    raw = bytes(data)
    value, end = amf0.decode(raw, len(ON_METADATA_PREFIX))
    if not isinstance(value, dict):
        return None
    return Metadata(value, raw[end:])


def source_keyframes(meta: dict[str, AmfValue]) -> tuple[list[float], list[float]] | None:
    """The `keyframes` index (times in seconds, file positions) if it is well formed."""
    index = meta.get("keyframes")
    if not isinstance(index, dict):
        return None
    times, positions = index.get("times"), index.get("filepositions")
    if not isinstance(times, list) or not isinstance(positions, list):
        return None
    if len(times) != len(positions):
        return None
    out_times: list[float] = []
    out_positions: list[float] = []
    for time, position in zip(times, positions, strict=True):
        if not _is_number(time) or not _is_number(position):
            return None
        assert isinstance(time, float) and isinstance(position, float)
        out_times.append(time)
        out_positions.append(position)
    return out_times, out_positions


def rewrite_metadata(meta: dict[str, AmfValue], rewrite: MetadataRewrite) -> dict[str, AmfValue]:
    """The metadata describing the output, keys in their source order."""
    out: dict[str, AmfValue] = EcmaArray() if isinstance(meta, EcmaArray) else {}
    for key, value in meta.items():
        lowered = key.lower()
        if lowered == "hasvideo" and rewrite.audio_only:
            out[key] = False
        elif lowered in VIDEO_KEYS and rewrite.audio_only:
            continue
        elif lowered == "filesize":
            if rewrite.filesize is not None:
                out[key] = float(rewrite.filesize)
        elif lowered == "keyframes":
            if rewrite.keyframes is not None:
                out[key] = _keyframes_like(value, *rewrite.keyframes)
        elif lowered == "haskeyframes":
            out[key] = rewrite.keyframes is not None
        elif lowered in LAYOUT_KEYS:
            continue
        elif lowered == "duration" and rewrite.clipped:
            if rewrite.duration is not None:
                out[key] = rewrite.duration
        elif lowered in CLIP_KEYS and rewrite.clipped:
            continue
        else:
            out[key] = value
    lowered_keys = {key.lower() for key in out}
    if rewrite.audio_only and "hasvideo" not in lowered_keys:
        out["hasVideo"] = False
    if rewrite.filesize is not None and "filesize" not in lowered_keys:
        out["filesize"] = float(rewrite.filesize)
    return out


def encode_script_tag(
    header: bytes | memoryview, meta: Metadata, value: dict[str, AmfValue]
) -> bytes:
    """A script tag with the source tag's type and timestamp, and its PreviousTagSize."""
    data = ON_METADATA_PREFIX + amf0.encode(value) + meta.trailer
    if len(data) > MAX_TAG_DATA:
        raise LimitExceeded("rewritten onMetaData does not fit in one FLV tag")
    head = bytes(header[:TAG_HEADER_SIZE])
    return b"".join(
        (
            head[:1],
            len(data).to_bytes(3, "big"),
            head[4:],
            data,
            U32.pack(TAG_HEADER_SIZE + len(data)),
        )
    )


def _keyframes_like(template: AmfValue, times: list[float], positions: list[float]) -> AmfValue:
    out: dict[str, AmfValue] = EcmaArray() if isinstance(template, EcmaArray) else {}
    keys = (
        [key for key in template if key in ("times", "filepositions")]
        if isinstance(template, dict)
        else []
    )
    for key in keys or ["filepositions", "times"]:
        numbers: list[AmfValue] = [*(times if key == "times" else positions)]
        out[key] = numbers
    return out


def _is_number(value: AmfValue) -> bool:
    return isinstance(value, float) and not isinstance(value, bool) and math.isfinite(value)
