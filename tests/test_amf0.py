"""AMF0: every type round-trips; malformed input gives typed errors, bounded."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vodedge.media.errors import LimitExceeded, MalformedMedia, MediaError, TruncatedMedia
from vodedge.media.flv import amf0
from vodedge.media.flv.amf0 import (
    OBJECT_END,
    UNDEFINED,
    UNSUPPORTED,
    AmfDate,
    AmfValue,
    EcmaArray,
    LongString,
    Reference,
    TypedObject,
    XmlDocument,
)

# Surrogates (category Cs) cannot be UTF-8 encoded; surrogateescape is tested apart.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
KEYS = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8)

SCALARS: st.SearchStrategy[AmfValue] = st.one_of(
    st.floats(allow_nan=False),
    st.booleans(),
    TEXT,
    TEXT.map(LongString),
    st.none(),
    st.just(UNDEFINED),
    st.just(UNSUPPORTED),
    st.integers(0, 0xFFFF).map(Reference),
    st.builds(AmfDate, st.floats(allow_nan=False), st.integers(-32768, 32767)),
    TEXT.map(XmlDocument),
)


def _ecma(items: dict[str, AmfValue], declared: int | None) -> EcmaArray:
    array = EcmaArray(items)
    array.declared_count = declared
    return array


VALUES: st.SearchStrategy[AmfValue] = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(KEYS, inner, max_size=5),
        st.builds(
            _ecma, st.dictionaries(KEYS, inner, max_size=5), st.none() | st.integers(0, 2**32 - 1)
        ),
        st.builds(TypedObject, TEXT, st.dictionaries(KEYS, inner, max_size=5)),
    ),
    max_leaves=30,
)


def _same(a: AmfValue, b: AmfValue) -> bool:
    """Equality that also checks the Python types the mapping promises."""
    if type(a) is not type(b):
        return False
    if isinstance(a, EcmaArray):
        assert isinstance(b, EcmaArray)
        if (a.declared_count if a.declared_count is not None else len(a)) != b.declared_count:
            return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, TypedObject):
        assert isinstance(b, TypedObject)
        return a.class_name == b.class_name and _same(a.properties, b.properties)
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack(">d", a) == struct.pack(">d", b)
    if isinstance(a, AmfDate) and isinstance(b, AmfDate):
        return _same(a.millis, b.millis) and a.timezone == b.timezone
    return a == b


@given(VALUES)
@settings(max_examples=400)
def test_values_round_trip(value: AmfValue) -> None:
    encoded = amf0.encode(value)
    decoded, end = amf0.decode(encoded)
    assert end == len(encoded)
    assert _same(value, decoded)
    assert amf0.encode(decoded) == encoded


@given(st.lists(VALUES, max_size=4))
def test_sequences_round_trip(values: list[AmfValue]) -> None:
    encoded = amf0.encode_all(values)
    assert amf0.encode_all(amf0.decode_all(encoded)) == encoded


@given(st.binary(max_size=200))
@settings(max_examples=1000)
def test_arbitrary_bytes_decode_or_fail_typed(data: bytes) -> None:
    try:
        values = amf0.decode_all(data)
    except MediaError:
        return
    # Bytes need not survive (a dict keeps one of duplicate keys), values must.
    again = amf0.decode_all(amf0.encode_all(values))
    assert all(_same(x, y) for x, y in zip(values, again, strict=True))


@pytest.mark.parametrize(
    ("value", "raw"),
    [
        (1.5, b"\x00" + struct.pack(">d", 1.5)),
        (True, b"\x01\x01"),
        (False, b"\x01\x00"),
        ("hi", b"\x02\x00\x02hi"),
        ({"a": None}, b"\x03\x00\x01a\x05\x00\x00\x09"),
        (None, b"\x05"),
        (UNDEFINED, b"\x06"),
        (Reference(3), b"\x07\x00\x03"),
        (EcmaArray({"b": False}), b"\x08\x00\x00\x00\x01\x00\x01b\x01\x00\x00\x00\x09"),
        (OBJECT_END, b"\x09"),
        ([1.0], b"\x0a\x00\x00\x00\x01\x00" + struct.pack(">d", 1.0)),
        (AmfDate(1000.0, -60), b"\x0b" + struct.pack(">dh", 1000.0, -60)),
        (LongString("x"), b"\x0c\x00\x00\x00\x01x"),
        (UNSUPPORTED, b"\x0d"),
        (XmlDocument("<a/>"), b"\x0f\x00\x00\x00\x04<a/>"),
        (
            TypedObject("T", {"k": 1.0}),
            b"\x10\x00\x01T\x00\x01k\x00" + struct.pack(">d", 1.0) + b"\x00\x00\x09",
        ),
    ],
)
def test_wire_format_of_each_type(value: AmfValue, raw: bytes) -> None:
    assert amf0.encode(value) == raw
    decoded, end = amf0.decode(raw)
    assert end == len(raw)
    assert _same(value if not isinstance(value, EcmaArray) else _ecma(value, 1), decoded)


def test_long_strings_switch_marker_by_length() -> None:
    short = amf0.encode("a" * 0xFFFF)
    long = amf0.encode("a" * 0x10000)
    assert short[0] == amf0.STRING and long[0] == amf0.LONG_STRING
    decoded, _ = amf0.decode(long)
    assert isinstance(decoded, LongString)


def test_ecma_array_keeps_its_declared_count() -> None:
    raw = b"\x08\x00\x00\x00\x00\x00\x01a\x05\x00\x00\x09"  # count 0, one entry
    decoded, _ = amf0.decode(raw)
    assert isinstance(decoded, EcmaArray) and decoded == {"a": None}
    assert decoded.declared_count == 0
    assert amf0.encode(decoded) == raw
    assert amf0.encode(decoded.copy()) == b"\x08\x00\x00\x00\x01" + raw[5:]


def test_non_utf8_strings_survive() -> None:
    raw = b"\x02\x00\x04\xb2\xe2\xca\xd4"  # GBK, as some Chinese encoders write
    decoded, _ = amf0.decode(raw)
    assert isinstance(decoded, str)
    assert amf0.encode(decoded) == raw


def test_empty_key_with_another_marker_is_a_property() -> None:
    raw = b"\x03\x00\x00\x05\x00\x00\x09"
    decoded, end = amf0.decode(raw)
    assert decoded == {"": None} and end == len(raw)
    assert amf0.encode(decoded) == raw


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"", TruncatedMedia),
        (b"\x00\x01\x02", TruncatedMedia),
        (b"\x02\x00\x05ab", TruncatedMedia),
        (b"\x0c\xff\xff\xff\xffab", TruncatedMedia),
        (b"\x03\x00\x01a", TruncatedMedia),
        (b"\x03\x00\x01a\x05", TruncatedMedia),  # no object end
        (b"\x04", MalformedMedia),  # movieclip: reserved
        (b"\x0e", MalformedMedia),  # recordset: reserved
        (b"\x12", MalformedMedia),
        (b"\xff", MalformedMedia),
        (b"\x0a\xff\xff\xff\xff" + b"\x05" * 15, MalformedMedia),
        (b"\x08\xff\xff\xff\xff\x00\x00\x09", None),  # an ECMA count is only a hint
    ],
)
def test_malformed_input(raw: bytes, error: type[MediaError] | None) -> None:
    if error is None:
        amf0.decode(raw)
        return
    with pytest.raises(error):
        amf0.decode(raw)


def test_amf3_switch_is_unsupported_not_a_crash() -> None:
    with pytest.raises(MediaError) as caught:
        amf0.decode(b"\x11\x01")
    assert caught.value.code == "unsupported_media"


def test_nesting_is_bounded() -> None:
    deep = b"\x0a\x00\x00\x00\x01" * 10_000 + b"\x05"
    with pytest.raises(LimitExceeded):
        amf0.decode(deep)
    shallow = b"\x0a\x00\x00\x00\x01" * 10 + b"\x05"
    value, _ = amf0.decode(shallow)
    for _ in range(10):
        assert isinstance(value, list)
        value = value[0]
    assert value is None


def test_huge_claims_do_not_allocate() -> None:
    # A strict array of 2**32-1 nulls claimed in 20 bytes: refused before any list is built.
    with pytest.raises(MalformedMedia):
        amf0.decode(b"\x0a\xff\xff\xff\xff" + b"\x05" * 15)
    # As many entries as bytes is allowed (each null is one byte).
    value, _ = amf0.decode(b"\x0a\x00\x00\x00\x0f" + b"\x05" * 15)
    assert value == [None] * 15


def test_nan_numbers_keep_their_bits() -> None:
    raw = b"\x00\x7f\xf8\x00\x00\x00\x00\x00\x01"
    value, _ = amf0.decode(raw)
    assert isinstance(value, float) and math.isnan(value)
    assert amf0.encode(value) == raw


def test_encoder_refuses_what_amf0_cannot_say() -> None:
    with pytest.raises(TypeError):
        amf0.encode(object())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        amf0.encode({"": OBJECT_END})
    with pytest.raises(ValueError):
        amf0.encode({"k" * 0x10000: None})


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=40))
def test_a_list_of_numbers_is_each_number_in_turn(numbers: list[float]) -> None:
    """Long number lists (keyframes indexes) are packed at once, to the same bytes."""
    one_by_one = b"".join(amf0.encode(number) for number in numbers)
    assert amf0.encode(numbers) == b"\x0a" + len(numbers).to_bytes(4, "big") + one_by_one
    assert amf0.decode(amf0.encode(numbers), 0)[1] == 5 + 9 * len(numbers)
