"""AMF0, the value encoding of FLV script tags: bounded decoding and exact encoding.

Python mapping: number ↔ float, boolean ↔ bool, string ↔ str, long string ↔
`LongString` (a str that always encodes as a long string), object ↔ dict,
ECMA array ↔ `EcmaArray`, strict array ↔ list, date ↔ `AmfDate`, null ↔ None,
undefined ↔ `UNDEFINED`, unsupported ↔ `UNSUPPORTED`, a bare object-end
marker ↔ `OBJECT_END`, reference ↔ `Reference`, XML document ↔
`XmlDocument`, typed object ↔ `TypedObject`. Strings are UTF-8 with
`surrogateescape`, so metadata written in other encodings survives a round trip.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, TypeAlias, cast

from vodedge.media.errors import LimitExceeded, MalformedMedia, TruncatedMedia, UnsupportedMedia

NUMBER: Final = 0x00
BOOLEAN: Final = 0x01
STRING: Final = 0x02
OBJECT: Final = 0x03
MOVIECLIP: Final = 0x04
NULL: Final = 0x05
UNDEFINED_MARKER: Final = 0x06
REFERENCE: Final = 0x07
ECMA_ARRAY: Final = 0x08
OBJECT_END_MARKER: Final = 0x09
STRICT_ARRAY: Final = 0x0A
DATE: Final = 0x0B
LONG_STRING: Final = 0x0C
UNSUPPORTED_MARKER: Final = 0x0D
RECORDSET: Final = 0x0E
XML_DOCUMENT: Final = 0x0F
TYPED_OBJECT: Final = 0x10
AVMPLUS_OBJECT: Final = 0x11

MAX_DEPTH: Final = 64

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_DATE = struct.Struct(">dh")


class _Marker:
    """A value-less AMF0 type; one instance each, compared by identity."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self) -> str:
        return self.name


UNDEFINED: Final = _Marker("UNDEFINED")
UNSUPPORTED: Final = _Marker("UNSUPPORTED")
OBJECT_END: Final = _Marker("OBJECT_END")


class LongString(str):
    """A string that was (or must be) written with the long-string marker."""

    __slots__ = ()


class EcmaArray(dict[str, "AmfValue"]):
    """An AMF0 ECMA array: a dict whose 32-bit count is only a hint.

    `declared_count` is the count read from the input (writers often get it
    wrong); encoding writes it back when set, else `len(self)`.
    """

    declared_count: int | None = None

    def copy(self) -> EcmaArray:
        """A shallow copy that keeps nothing of the original's declared count."""
        return EcmaArray(self)


@dataclass(frozen=True, slots=True)
class AmfDate:
    """Milliseconds since the Unix epoch, plus AMF0's reserved time-zone field."""

    millis: float
    timezone: int = 0


@dataclass(frozen=True, slots=True)
class Reference:
    """A pointer to an earlier complex value, by index (not resolved here)."""

    index: int


@dataclass(frozen=True, slots=True)
class XmlDocument:
    """An AMF0 XML document, kept as text."""

    text: str


@dataclass(slots=True)
class TypedObject:
    """An object with a registered class name."""

    class_name: str
    properties: dict[str, AmfValue] = field(default_factory=dict)


AmfValue: TypeAlias = (
    float
    | bool
    | str
    | dict[str, "AmfValue"]
    | list["AmfValue"]
    | AmfDate
    | Reference
    | XmlDocument
    | TypedObject
    | _Marker
    | None
)


def decode(
    data: bytes | memoryview, offset: int = 0, max_depth: int = MAX_DEPTH
) -> tuple[AmfValue, int]:
    """Decode one value at `offset`; return it and the offset just past it."""
    decoder = _Decoder(data, offset, max_depth)
    value = decoder.value(0)
    return value, decoder.pos


def decode_all(data: bytes | memoryview, max_depth: int = MAX_DEPTH) -> list[AmfValue]:
    """Decode consecutive values until the data ends exactly."""
    decoder = _Decoder(data, 0, max_depth)
    values: list[AmfValue] = []
    while decoder.pos < decoder.end:
        values.append(decoder.value(0))
    return values


def encode(value: AmfValue) -> bytes:
    """Encode one value (ints encode as numbers)."""
    out = bytearray()
    _encode_into(out, value)
    return bytes(out)


def encode_all(values: Iterable[AmfValue]) -> bytes:
    """Encode consecutive values."""
    out = bytearray()
    for value in values:
        _encode_into(out, value)
    return bytes(out)


class _Decoder:
    __slots__ = ("buf", "end", "max_depth", "pos")

    def __init__(self, data: bytes | memoryview, offset: int, max_depth: int) -> None:
        self.buf = bytes(data) if isinstance(data, memoryview) else data
        self.end = len(self.buf)
        self.pos = offset
        self.max_depth = max_depth

    def _need(self, count: int, what: str) -> int:
        start = self.pos
        if start + count > self.end:
            raise TruncatedMedia(f"AMF0 {what} runs past the end of its data")
        self.pos = start + count
        return start

    def _text(self, length: int, what: str) -> str:
        start = self._need(length, what)
        return self.buf[start : start + length].decode("utf-8", "surrogateescape")

    def _u16(self, what: str) -> int:
        return int(_U16.unpack_from(self.buf, self._need(2, what))[0])

    def _u32(self, what: str) -> int:
        return int(_U32.unpack_from(self.buf, self._need(4, what))[0])

    def value(self, depth: int) -> AmfValue:
        marker = self.buf[self._need(1, "marker")]
        if marker == NUMBER:
            return float(_DOUBLE.unpack_from(self.buf, self._need(8, "number"))[0])
        if marker == BOOLEAN:
            return self.buf[self._need(1, "boolean")] != 0
        if marker == STRING:
            return self._text(self._u16("string length"), "string")
        if marker == LONG_STRING:
            return LongString(self._text(self._u32("long string length"), "long string"))
        if marker == NULL:
            return None
        if marker == UNDEFINED_MARKER:
            return UNDEFINED
        if marker == UNSUPPORTED_MARKER:
            return UNSUPPORTED
        if marker == OBJECT_END_MARKER:
            return OBJECT_END
        if marker == REFERENCE:
            return Reference(self._u16("reference"))
        if marker == DATE:
            millis, timezone = _DATE.unpack_from(self.buf, self._need(10, "date"))
            return AmfDate(float(millis), int(timezone))
        if marker == XML_DOCUMENT:
            return XmlDocument(self._text(self._u32("XML length"), "XML document"))
        if marker in (OBJECT, ECMA_ARRAY, STRICT_ARRAY, TYPED_OBJECT):
            if depth >= self.max_depth:
                raise LimitExceeded(f"AMF0 values nested deeper than {self.max_depth}")
            if marker == OBJECT:
                return self._properties({}, depth + 1)
            if marker == ECMA_ARRAY:
                array = EcmaArray()
                array.declared_count = self._u32("ECMA array count")
                return self._properties(array, depth + 1)
            if marker == TYPED_OBJECT:
                name = self._text(self._u16("class name length"), "class name")
                return TypedObject(name, self._properties({}, depth + 1))
            return self._strict_array(depth + 1)
        if marker == AVMPLUS_OBJECT:
            raise UnsupportedMedia("AMF3 values inside AMF0 are not supported")
        if marker in (MOVIECLIP, RECORDSET):
            raise MalformedMedia(f"AMF0 marker {marker:#04x} is reserved")
        raise MalformedMedia(f"unknown AMF0 marker {marker:#04x}")

    def _properties(self, target: dict[str, AmfValue], depth: int) -> dict[str, AmfValue]:
        buf = self.buf
        while True:
            key = self._text(self._u16("property name length"), "property name")
            if not key and self.pos < self.end and buf[self.pos] == OBJECT_END_MARKER:
                self.pos += 1
                return target
            target[key] = self.value(depth)

    def _strict_array(self, depth: int) -> list[AmfValue]:
        count = self._u32("strict array count")
        # Every value takes at least one byte: refuse counts the data cannot hold.
        if count > self.end - self.pos:
            raise MalformedMedia(
                f"AMF0 strict array claims {count} values in {self.end - self.pos} bytes"
            )
        return [self.value(depth) for _ in range(count)]


def _encode_key(out: bytearray, key: str) -> None:
    raw = key.encode("utf-8", "surrogateescape")
    if len(raw) > 0xFFFF:
        raise ValueError("AMF0 property names are limited to 65535 bytes")
    out += _U16.pack(len(raw))
    out += raw


def _encode_properties(out: bytearray, properties: dict[str, AmfValue]) -> None:
    for key, item in properties.items():
        if not key and item is OBJECT_END:
            raise ValueError("an empty property name cannot hold OBJECT_END")
        _encode_key(out, key)
        _encode_into(out, item)
    out += b"\x00\x00\x09"


def _encode_into(out: bytearray, value: AmfValue) -> None:
    if value is None:
        out.append(NULL)
    elif value is True or value is False:
        out.append(BOOLEAN)
        out.append(1 if value else 0)
    elif isinstance(value, float | int):
        out.append(NUMBER)
        out += _DOUBLE.pack(value)
    elif isinstance(value, str):
        raw = value.encode("utf-8", "surrogateescape")
        if isinstance(value, LongString) or len(raw) > 0xFFFF:
            out.append(LONG_STRING)
            out += _U32.pack(len(raw))
        else:
            out.append(STRING)
            out += _U16.pack(len(raw))
        out += raw
    elif isinstance(value, EcmaArray):
        out.append(ECMA_ARRAY)
        count = value.declared_count
        out += _U32.pack(len(value) if count is None else count)
        _encode_properties(out, value)
    elif isinstance(value, dict):
        out.append(OBJECT)
        _encode_properties(out, value)
    elif isinstance(value, list):
        out.append(STRICT_ARRAY)
        out += _U32.pack(len(value))
        if len(value) > 8 and all(type(item) is float for item in value):
            # A keyframes index: thousands of numbers, packed at once.
            out += _pack_numbers(cast("list[float]", value))  # all floats, checked above
            return
        for item in value:
            _encode_into(out, item)
    elif isinstance(value, AmfDate):
        out.append(DATE)
        out += _DATE.pack(value.millis, value.timezone)
    elif isinstance(value, Reference):
        out.append(REFERENCE)
        out += _U16.pack(value.index)
    elif isinstance(value, XmlDocument):
        raw = value.text.encode("utf-8", "surrogateescape")
        out.append(XML_DOCUMENT)
        out += _U32.pack(len(raw))
        out += raw
    elif isinstance(value, TypedObject):
        out.append(TYPED_OBJECT)
        _encode_key(out, value.class_name)
        _encode_properties(out, value.properties)
    elif value is UNDEFINED:
        out.append(UNDEFINED_MARKER)
    elif value is UNSUPPORTED:
        out.append(UNSUPPORTED_MARKER)
    elif value is OBJECT_END:
        out.append(OBJECT_END_MARKER)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


def _pack_numbers(values: list[float]) -> bytearray:
    """AMF0 numbers (a marker and a big-endian double each), packed at once.

    Slices of one array rather than numpy: importing numpy would cost the CLI's
    FLV extraction more than its whole scan.
    """
    doubles = array("d", values)
    if sys.byteorder == "little":
        doubles.byteswap()
    raw = doubles.tobytes()
    out = bytearray(9 * len(values))
    out[0::9] = bytes([NUMBER]) * len(values)
    for k in range(8):
        out[k + 1 :: 9] = raw[k::8]
    return out
