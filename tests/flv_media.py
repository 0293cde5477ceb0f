"""FLV test media built byte by byte: the layouts ffmpeg never writes.

Enhanced-FLV codecs, extended timestamps, wrong back-pointers, big headers,
metadata as an AMF object: `flv(...)` assembles a file from `tag(...)`s, and
`synthetic(...)` makes a plausible interleaved audio/video file with options.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Protocol

from vodedge.media.flv import amf0
from vodedge.media.flv.amf0 import AmfValue, EcmaArray

AUDIO, VIDEO, SCRIPT = 8, 9, 18


def tag(kind: int, data: bytes, ts: int = 0, back: int | None = None, type_bits: int = 0) -> bytes:
    """One tag and its PreviousTagSize (`back` overrides the right value)."""
    head = bytes([kind | type_bits]) + len(data).to_bytes(3, "big")
    head += (ts & 0xFFFFFF).to_bytes(3, "big") + bytes([(ts >> 24) & 0xFF]) + b"\0\0\0"
    return head + data + struct.pack(">I", len(data) + 11 if back is None else back)


def flv(tags: list[bytes], flags: int = 0x05, version: int = 1, extra_header: bytes = b"") -> bytes:
    """A file: header (with optional extra header bytes), PreviousTagSize0, tags."""
    header = b"FLV" + bytes([version, flags]) + struct.pack(">I", 9 + len(extra_header))
    return header + extra_header + b"\0\0\0\0" + b"".join(tags)


def metadata(value: dict[str, AmfValue]) -> bytes:
    """The data of an onMetaData script tag."""
    return amf0.encode("onMetaData") + amf0.encode(value)


# Audio tag data: SoundFormat<<4 | rate/size/type bits, then the payload.
def aac_config() -> bytes:
    return b"\xaf\x00\x12\x10"


def aac_frame(n: int) -> bytes:
    return b"\xaf\x01" + bytes([n & 0xFF]) * 20


def mp3_frame(n: int) -> bytes:
    return b"\x2f" + bytes([n & 0xFF]) * 30


def ex_audio(packet_type: int, fourcc: bytes, payload: bytes) -> bytes:
    """Enhanced audio: SoundFormat 9, the packet type, a FourCC."""
    return bytes([0x90 | packet_type]) + fourcc + payload


# Video tag data: FrameType<<4 | CodecID, then for AVC a packet type and a CTS.
def avc_config() -> bytes:
    return b"\x17\x00\x00\x00\x00\x01\x64\x00\x1f\xff\xe1\x00\x04spsx"


def avc_frame(key: bool, n: int) -> bytes:
    return bytes([0x17 if key else 0x27]) + b"\x01\x00\x00\x00" + bytes([n & 0xFF]) * 40


def ex_video(key: bool, packet_type: int, fourcc: bytes, payload: bytes) -> bytes:
    """Enhanced video: IsExHeader bit, frame type, packet type, a FourCC."""
    return bytes([0x80 | (0x10 if key else 0x20) | packet_type]) + fourcc + payload


@dataclass(frozen=True)
class Synthetic:
    """Options of `synthetic`: what the made-up file looks like."""

    seconds: float = 3.0
    fps: int = 10
    gop: int = 5
    audio_ms: int = 40
    start_ms: int = 0
    enhanced: bool = False
    keyframe_index: bool = True
    metadata_object: bool = False
    bad_back_pointers: bool = False
    extra_header: bytes = b""
    with_video: bool = True
    with_audio: bool = True
    flags: int = 0x05


def synthetic(options: Synthetic | None = None) -> bytes:
    """An interleaved audio/video FLV with onMetaData, sequence headers and a keyframes index."""
    o = options or Synthetic()
    body: list[tuple[int, int, bytes, bool]] = []  # (ts, kind, data, keyframe), file order
    if o.with_video:
        config = ex_video(True, 0, b"hvc1", b"hvcC-config") if o.enhanced else avc_config()
        body.append((o.start_ms, VIDEO, config, False))
    if o.with_audio:
        config = ex_audio(0, b"Opus", b"OpusHead") if o.enhanced else aac_config()
        body.append((o.start_ms, AUDIO, config, False))
    frames: list[tuple[int, int, bytes, bool]] = []
    end_ms = o.start_ms + int(o.seconds * 1000)
    if o.with_video:
        step = 1000 // o.fps
        for n, ts in enumerate(range(o.start_ms, end_ms, step)):
            key = n % o.gop == 0
            if o.enhanced:
                data = ex_video(key, 1, b"hvc1", b"\0\0\0" + bytes([n & 0xFF]) * 30)
            else:
                data = avc_frame(key, n)
            frames.append((ts, VIDEO, data, key))
    if o.with_audio:
        for n, ts in enumerate(range(o.start_ms, end_ms, o.audio_ms)):
            data = ex_audio(1, b"Opus", bytes([n & 0xFF]) * 12) if o.enhanced else aac_frame(n)
            frames.append((ts, AUDIO, data, False))
    frames.sort(key=lambda f: (f[0], f[1]))
    body += frames

    def build(meta: dict[str, AmfValue]) -> tuple[bytes, list[int]]:
        tags = [tag(SCRIPT, metadata(meta))]
        offsets = []
        position = 13 + len(tags[0])
        for n, (ts, kind, data, _) in enumerate(body):
            back = 7 if o.bad_back_pointers and n % 3 == 1 else None
            t = tag(kind, data, ts, back)
            offsets.append(position + len(o.extra_header))
            position += len(t)
            tags.append(t)
        return flv(tags, o.flags, extra_header=o.extra_header), offsets

    meta: dict[str, AmfValue] = EcmaArray() if not o.metadata_object else {}
    meta.update({"duration": o.seconds, "width": 320.0, "height": 240.0, "videocodecid": 7.0})
    meta.update({"audiocodecid": 10.0, "stereo": True, "filesize": 0.0})
    if o.keyframe_index:
        keys = [n for n, entry in enumerate(body) if entry[3]]
        placeholder = {"filepositions": [0.0] * len(keys), "times": [0.0] * len(keys)}
        meta["keyframes"] = placeholder
        _, offsets = build(meta)
        meta["keyframes"] = {
            "filepositions": [float(offsets[n]) for n in keys],
            "times": [body[n][0] / 1000.0 for n in keys],
        }
    data, _ = build(meta)
    meta["filesize"] = float(len(data))
    data, _ = build(meta)
    return data


# --- reading outputs back (independently of the code under test) ---------------------


@dataclass(frozen=True)
class Tag:
    """A tag as found in a file: where, its type byte, timestamp, data, back-pointer."""

    offset: int
    type_byte: int
    ts: int
    data: bytes
    back: int | None

    @property
    def kind(self) -> int:
        return self.type_byte & 0x1F

    @property
    def raw(self) -> bytes:
        """The tag's bytes without its back-pointer."""
        head = bytes([self.type_byte]) + len(self.data).to_bytes(3, "big")
        head += (self.ts & 0xFFFFFF).to_bytes(3, "big") + bytes([self.ts >> 24]) + b"\0\0\0"
        return head + self.data

    @property
    def is_metadata(self) -> bool:
        return self.kind == SCRIPT and self.data.startswith(b"\x02\x00\x0aonMetaData")


def parse(data: bytes) -> tuple[bytes, list[Tag]]:
    """The header and tags of a well-formed FLV; AssertionError on anything else."""
    assert data[:3] == b"FLV", "no signature"
    offset = int.from_bytes(data[5:9], "big")
    assert offset >= 9, "header too small"
    assert len(data) >= offset + 4, "no PreviousTagSize0"
    position = offset + 4
    tags: list[Tag] = []
    while position < len(data):
        assert position + 11 <= len(data), f"cut tag header at {position}"
        size = int.from_bytes(data[position + 1 : position + 4], "big")
        ts = int.from_bytes(data[position + 4 : position + 7], "big") | data[position + 7] << 24
        end = position + 11 + size
        assert end <= len(data), f"cut tag at {position}"
        back = int.from_bytes(data[end : end + 4], "big") if end + 4 <= len(data) else None
        tags.append(Tag(position, data[position], ts, data[position + 11 : end], back))
        position = end + 4
    return data[:offset], tags


def check_output(data: bytes) -> list[Tag]:
    """Assert `data` is an FLV as our outputs are: 9-byte header, exact back-pointers."""
    header, tags = parse(data)
    assert len(header) == 9 and data[9:13] == b"\0\0\0\0"
    for t in tags:
        assert t.back == 11 + len(t.data), f"back-pointer of the tag at {t.offset}"
    return tags


def without_metadata(data: bytes) -> bytes:
    """The file minus its onMetaData tags (what plan and stream outputs must share)."""
    header, tags = parse(data)
    kept = [t.raw + struct.pack(">I", 11 + len(t.data)) for t in tags if not t.is_metadata]
    return header + data[len(header) : len(header) + 4] + b"".join(kept)


def metadata_of(data: bytes) -> dict[str, AmfValue] | None:
    """The first onMetaData value of a file."""
    for t in parse(data)[1]:
        if t.is_metadata:
            value, _ = amf0.decode(t.data, 13)
            assert isinstance(value, dict)
            return value
    return None


class Feedable(Protocol):
    """What the filters look like to a test."""

    def feed(self, data: bytes) -> list[bytes]: ...

    def close(self) -> list[bytes]: ...


def run_filter(flt: Feedable, data: bytes, chunks: list[int] | None = None) -> bytes:
    """Feed `data` in chunks of the given sizes (cycled; whole when None), then close."""
    out: list[bytes] = []
    if not chunks:
        out += flt.feed(data)
    else:
        position, n = 0, 0
        while position < len(data):
            size = max(1, chunks[n % len(chunks)])
            out += flt.feed(data[position : position + size])
            position += size
            n += 1
    out += flt.close()
    return b"".join(out)
