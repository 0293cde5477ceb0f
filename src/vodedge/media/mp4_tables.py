"""Sample tables (`stsz`/`stz2`, `stsc`, `stco`/`co64`): where each chunk lies and its size."""

from __future__ import annotations

import sys
from array import array
from dataclasses import dataclass
from itertools import accumulate
from struct import Struct

from vodedge.media.errors import MalformedMedia

_U32 = Struct(">I")
_VF_COUNT = Struct(">II")
_STSZ = Struct(">III")
_BIG_ENDIAN = sys.byteorder == "big"


def _entries(payload: memoryview, name: str, header: int, width: int, count: int) -> memoryview:
    """The table bytes after `header`, checked to hold `count` entries of `width` bytes."""
    need = header + count * width
    if need > len(payload):
        raise MalformedMedia(
            f"{name} claims {count} entries but its box holds only "
            f"{max(len(payload) - header, 0) // width}"
        )
    return payload[header:need]


def be_array(kind: str, raw: memoryview | bytes) -> array[int]:
    """Big-endian unsigned integers to a native array ('I' 32-bit, 'Q' 64-bit)."""
    values = array(kind)
    values.frombytes(raw)
    if not _BIG_ENDIAN:
        values.byteswap()
    return values


def to_be_bytes(kind: str, values: array[int] | list[int]) -> bytes:
    """A native sequence of unsigned integers to big-endian bytes."""
    out = values if isinstance(values, array) else array(kind, values)
    if out.typecode != kind:
        out = array(kind, out)
    if _BIG_ENDIAN:
        return out.tobytes()
    swapped = array(kind, out)
    swapped.byteswap()
    return swapped.tobytes()


@dataclass(frozen=True, slots=True)
class SampleSizes:
    """The `stsz`/`stz2` table: a constant size or one size per sample."""

    count: int
    constant: int
    sizes: array[int] | None

    def prefix(self) -> list[int] | None:
        """Cumulative sizes (`prefix[i]`: bytes before sample i), None for constant sizes."""
        return None if self.sizes is None else [0, *accumulate(self.sizes)]

    def total(self) -> int:
        """The byte total of all samples."""
        return self.constant * self.count if self.sizes is None else sum(self.sizes)


def parse_stsz(payload: memoryview) -> SampleSizes:
    """Parse an `stsz` payload (after the box header)."""
    if len(payload) < 12:
        raise MalformedMedia("stsz box is too short")
    _vf, constant, count = _STSZ.unpack_from(payload, 0)
    if constant:
        return SampleSizes(count, constant, None)
    return SampleSizes(count, 0, be_array("I", _entries(payload, "stsz", 12, 4, count)))


def parse_stz2(payload: memoryview) -> SampleSizes:
    """Parse a compact `stz2` payload (4-, 8- or 16-bit sample sizes)."""
    if len(payload) < 12:
        raise MalformedMedia("stz2 box is too short")
    field_size = payload[7]
    count = _U32.unpack_from(payload, 8)[0]
    if field_size == 16:
        sizes = array("I", be_array("H", _entries(payload, "stz2", 12, 2, count)))
    elif field_size == 8:
        sizes = array("I", _entries(payload, "stz2", 12, 1, count))
    elif field_size == 4:
        raw = _entries(payload, "stz2", 12, 1, (count + 1) // 2)
        nibbles = array("I")
        for byte in raw:
            nibbles.append(byte >> 4)
            nibbles.append(byte & 0x0F)
        sizes = nibbles[:count]
    else:
        raise MalformedMedia(f"stz2 field size {field_size} is not 4, 8 or 16")
    return SampleSizes(count, 0, sizes)


def parse_stsc(payload: memoryview) -> list[tuple[int, int, int]]:
    """Parse `stsc`: (first_chunk, samples_per_chunk, sample_description_index) runs."""
    if len(payload) < 8:
        raise MalformedMedia("stsc box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    flat = be_array("I", _entries(payload, "stsc", 8, 12, count))
    return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]


def parse_chunk_offsets(kind: bytes, payload: memoryview) -> array[int]:
    """Parse `stco` (32-bit) or `co64` (64-bit) chunk offsets."""
    if len(payload) < 8:
        raise MalformedMedia(f"{kind.decode('latin-1')} box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    if kind == b"stco":
        return array("Q", be_array("I", _entries(payload, "stco", 8, 4, count)))
    return be_array("Q", _entries(payload, "co64", 8, 8, count))


def chunk_offsets_box(offsets: array[int] | list[int]) -> bytes:
    """A `stco` box when every offset fits 32 bits, else a `co64` box."""
    count = len(offsets)
    if not offsets or max(offsets) <= 0xFFFFFFFF:
        payload = _VF_COUNT.pack(0, count) + to_be_bytes("I", offsets)
        return _U32.pack(8 + len(payload)) + b"stco" + payload
    payload = _VF_COUNT.pack(0, count) + to_be_bytes("Q", offsets)
    return _U32.pack(8 + len(payload)) + b"co64" + payload


def chunk_sizes(
    sizes: SampleSizes, stsc: list[tuple[int, int, int]], chunk_count: int
) -> list[int]:
    """The byte size of every chunk, from the sample sizes and the chunk runs."""
    if chunk_count == 0:
        if sizes.count:
            raise MalformedMedia(f"{sizes.count} samples but no chunk holds them")
        return []
    if not stsc:
        raise MalformedMedia(f"{chunk_count} chunks but stsc is empty")
    if stsc[0][0] != 1:
        raise MalformedMedia(f"stsc starts at chunk {stsc[0][0]}, not 1")
    prefix = sizes.prefix()
    out = [0] * chunk_count
    sample = 0
    for index, (first, per_chunk, _sdi) in enumerate(stsc):
        if first > chunk_count:
            raise MalformedMedia(f"stsc refers to chunk {first}; stco has {chunk_count}")
        last = stsc[index + 1][0] - 1 if index + 1 < len(stsc) else chunk_count
        if last < first - 1:  # equal first_chunk values are empty runs, which some writers emit
            raise MalformedMedia("stsc chunk numbers do not ascend")
        runs = last - first + 1
        if sample + runs * per_chunk > sizes.count:
            raise MalformedMedia(
                f"stsc describes more samples than the {sizes.count} of the size table"
            )
        if prefix is None:
            out[first - 1 : last] = [per_chunk * sizes.constant] * runs
            sample += runs * per_chunk
            continue
        for chunk in range(first - 1, last):
            end = sample + per_chunk
            out[chunk] = prefix[end] - prefix[sample]
            sample = end
    if sample != sizes.count:
        raise MalformedMedia(f"stsc describes {sample} samples, the size table {sizes.count}")
    return out
