"""What `vodedge inspect` shows of an FLV: header, tags by type, codecs, metadata."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from vodedge.media.errors import MediaError
from vodedge.media.flv.amf0 import AmfDate, AmfValue, Reference, TypedObject, XmlDocument
from vodedge.media.flv.metadata import decode_metadata, source_keyframes
from vodedge.media.flv.plan import build_plan
from vodedge.media.flv.scan import scan_tags
from vodedge.media.flv.tags import AUDIO, FRAME, SCRIPT, TAG_HEADER_SIZE, VIDEO
from vodedge.media.reading import Reading

_KIND_NAMES = {AUDIO: "audio", VIDEO: "video", SCRIPT: "script"}


@dataclass(slots=True)
class TagTally:
    """How many tags of one type, and their bytes (header, data and back-pointer)."""

    count: int = 0
    bytes: int = 0


@dataclass(slots=True)
class FlvSummary:
    """A JSON-ready description of an FLV file (see `to_dict`)."""

    size: int
    version: int
    header_has_audio: bool
    header_has_video: bool
    tags: dict[str, TagTally] = field(default_factory=dict)
    audio_codecs: list[str] = field(default_factory=list)
    video_codecs: list[str] = field(default_factory=list)
    duration: float | None = None
    first_timestamp_ms: int | None = None
    last_timestamp_ms: int | None = None
    keyframe_index_entries: int | None = None
    metadata: dict[str, Any] | None = None
    metadata_error: str | None = None
    audio_only_bytes: int | None = None
    audio_only_error: str | None = None
    truncated: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts, lists, numbers and strings, for `json.dumps`."""
        return asdict(self)


def flv_summary(size: int) -> Reading[FlvSummary]:
    """Describe an FLV source of `size` bytes; only a bad file header raises."""
    index = yield from scan_tags(size)
    header = index.header
    summary = FlvSummary(size, header.version, header.has_audio, header.has_video)
    summary.truncated = index.truncated
    summary.audio_codecs = index.audio_codecs
    summary.video_codecs = index.video_codecs
    frames: list[int] = []
    for i, kind in enumerate(index.kinds):
        tally = summary.tags.setdefault(_KIND_NAMES.get(kind, "other"), TagTally())
        tally.count += 1
        tally.bytes += index.unit_size(i)
        if kind in (AUDIO, VIDEO) and index.role(i) == FRAME:
            frames.append(index.stamps[i])
    if frames:
        summary.first_timestamp_ms, summary.last_timestamp_ms = min(frames), max(frames)
    if index.metadata:
        try:
            meta = decode_metadata(index.metadata[0][1][TAG_HEADER_SIZE:])
        except MediaError as error:
            summary.metadata_error = f"{error.code}: {error}"
        else:
            if meta is not None:
                table = source_keyframes(meta.value)
                summary.keyframe_index_entries = len(table[0]) if table else None
                summary.metadata = {
                    key: {"entries": len(table[0])} if key == "keyframes" and table else jsonable(v)
                    for key, v in meta.value.items()
                }
                duration = meta.value.get("duration")
                if isinstance(duration, float) and math.isfinite(duration):
                    summary.duration = duration
    if summary.duration is None and frames:
        summary.duration = (max(frames) - min(frames)) / 1000.0
    try:
        summary.audio_only_bytes = build_plan(index, audio_only=True).size
    except MediaError as error:
        summary.audio_only_error = f"{error.code}: {error}"
    return summary


def jsonable(value: AmfValue) -> Any:
    """An AMF0 value as JSON-compatible Python (non-finite numbers become strings)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float | int):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {jsonable(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [jsonable(item) for item in value]
    if isinstance(value, AmfDate):
        return {"date_ms": jsonable(value.millis), "timezone": value.timezone}
    if isinstance(value, Reference):
        return {"reference": value.index}
    if isinstance(value, XmlDocument):
        return {"xml": jsonable(value.text)}
    if isinstance(value, TypedObject):
        return {"class": jsonable(value.class_name), "properties": jsonable(value.properties)}
    return None  # undefined, unsupported, a bare object end
