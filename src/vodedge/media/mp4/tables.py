"""Sample tables (`stsz`/`stz2`, `stsc`, `stco`/`co64`): where each chunk lies and its size."""

from __future__ import annotations

import sys
from array import array
from itertools import accumulate
from operator import sub
from struct import Struct
from typing import NamedTuple

from vodedge.media.errors import MalformedMedia

_U32 = Struct(">I")
_VF_COUNT = Struct(">II")
_STSZ = Struct(">III")
_BIG_ENDIAN = sys.byteorder == "big"


def checked_entries(
    payload: memoryview, name: str, header: int, width: int, count: int
) -> memoryview:
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


class SampleSizes:
    """The `stsz`/`stz2` table: a constant size or one size per sample."""

    __slots__ = ("constant", "count", "sizes")

    def __init__(self, count: int, constant: int, sizes: array[int] | None) -> None:
        self.count = count
        self.constant = constant
        self.sizes = sizes

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
    return SampleSizes(count, 0, be_array("I", checked_entries(payload, "stsz", 12, 4, count)))


def parse_stz2(payload: memoryview) -> SampleSizes:
    """Parse a compact `stz2` payload (4-, 8- or 16-bit sample sizes)."""
    if len(payload) < 12:
        raise MalformedMedia("stz2 box is too short")
    field_size = payload[7]
    count = _U32.unpack_from(payload, 8)[0]
    if field_size == 16:
        sizes = array("I", be_array("H", checked_entries(payload, "stz2", 12, 2, count)))
    elif field_size == 8:
        sizes = array("I", checked_entries(payload, "stz2", 12, 1, count))
    elif field_size == 4:
        raw = checked_entries(payload, "stz2", 12, 1, (count + 1) // 2)
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
    flat = be_array("I", checked_entries(payload, "stsc", 8, 12, count))
    return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]


def parse_chunk_offsets(kind: bytes, payload: memoryview) -> array[int]:
    """Parse `stco` (32-bit) or `co64` (64-bit) chunk offsets."""
    if len(payload) < 8:
        raise MalformedMedia(f"{kind.decode('latin-1')} box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    if kind == b"stco":
        return array("Q", be_array("I", checked_entries(payload, "stco", 8, 4, count)))
    return be_array("Q", checked_entries(payload, "co64", 8, 8, count))


def chunk_offsets_box(offsets: array[int] | list[int]) -> bytes:
    """A `stco` box when every offset fits 32 bits, else a `co64` box."""
    count = len(offsets)
    if not offsets or max(offsets) <= 0xFFFFFFFF:
        payload = _VF_COUNT.pack(0, count) + to_be_bytes("I", offsets)
        return _U32.pack(8 + len(payload)) + b"stco" + payload
    payload = _VF_COUNT.pack(0, count) + to_be_bytes("Q", offsets)
    return _U32.pack(8 + len(payload)) + b"co64" + payload


class ChunkMap(NamedTuple):
    """For every chunk: its first sample, how many samples it holds, its description."""

    first_sample: list[int]
    samples: list[int]
    description: list[int]


def _samples_per_chunk(
    stsc: list[tuple[int, int, int]], chunk_count: int, sample_count: int
) -> list[int]:
    """How many samples each of `chunk_count` chunks holds: the `stsc` runs expanded,
    checked against the sample count."""
    if chunk_count == 0:
        if sample_count:
            raise MalformedMedia(f"{sample_count} samples but no chunk holds them")
        return []
    if not stsc:
        raise MalformedMedia(f"{chunk_count} chunks but stsc is empty")
    if stsc[0][0] != 1:
        raise MalformedMedia(f"stsc starts at chunk {stsc[0][0]}, not 1")
    samples = [0] * chunk_count
    sample = 0
    for index, (first, per_chunk, _description) in enumerate(stsc):
        if first > chunk_count:
            raise MalformedMedia(f"stsc refers to chunk {first}; stco has {chunk_count}")
        last = _run_end(stsc, index, chunk_count)
        if last < first - 1:  # equal first_chunk values are empty runs, which some writers emit
            raise MalformedMedia("stsc chunk numbers do not ascend")
        runs = last - first + 1
        if sample + runs * per_chunk > sample_count:
            raise MalformedMedia(
                f"stsc describes more samples than the {sample_count} of the size table"
            )
        samples[first - 1 : last] = [per_chunk] * runs
        sample += runs * per_chunk
    if sample != sample_count:
        raise MalformedMedia(f"stsc describes {sample} samples, the size table {sample_count}")
    return samples


def _run_end(stsc: list[tuple[int, int, int]], index: int, chunk_count: int) -> int:
    """The last chunk (1-based) of run `index`: a run never reaches past the last chunk;
    a later entry that starts past it is refused on its own turn."""
    return min(stsc[index + 1][0] - 1, chunk_count) if index + 1 < len(stsc) else chunk_count


def chunk_map(stsc: list[tuple[int, int, int]], chunk_count: int, sample_count: int) -> ChunkMap:
    """Expand the `stsc` runs over `chunk_count` chunks, checked against the sample count."""
    samples = _samples_per_chunk(stsc, chunk_count, sample_count)
    if not samples:
        return ChunkMap([], [], [])
    first_sample = list(accumulate(samples, initial=0))
    first_sample.pop()
    description = [0] * chunk_count
    for index, (first, _per_chunk, sdi) in enumerate(stsc):
        last = _run_end(stsc, index, chunk_count)
        description[first - 1 : last] = [sdi] * (last - first + 1)
    return ChunkMap(first_sample, samples, description)


def chunk_sizes(
    sizes: SampleSizes, stsc: list[tuple[int, int, int]], chunk_count: int
) -> list[int]:
    """The byte size of every chunk, from the sample sizes and the chunk runs."""
    samples = _samples_per_chunk(stsc, chunk_count, sizes.count)
    prefix = sizes.prefix()
    if prefix is None:
        return [count * sizes.constant for count in samples]
    # Bytes before each chunk's first sample, then their differences: C loops only
    # (an audio track is thousands of chunks, and extraction is timed against ffmpeg).
    before = list(map(prefix.__getitem__, accumulate(samples, initial=0)))
    return list(map(sub, before[1:], before))


def parse_runs(payload: memoryview, name: str) -> list[tuple[int, int]]:
    """Parse a run-length table of (count, value) pairs: `stts`, `ctts`."""
    if len(payload) < 8:
        raise MalformedMedia(f"{name} box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    flat = be_array("I", checked_entries(payload, name, 8, 8, count))
    return list(zip(flat[0::2], flat[1::2], strict=True))


def runs_box(kind: bytes, version: int, runs: list[tuple[int, int]]) -> bytes:
    """A run-length table box (`stts`, `ctts`) from (count, value) pairs."""
    flat = [value & 0xFFFFFFFF for run in runs for value in run]
    payload = bytes([version, 0, 0, 0]) + _U32.pack(len(runs)) + to_be_bytes("I", flat)
    return _U32.pack(8 + len(payload)) + kind + payload


def expand_runs(runs: list[tuple[int, int]], total: int, name: str) -> list[int]:
    """One value per sample from (count, value) runs, refused if they describe more
    than `total` samples (which bounds the allocation by the size table)."""
    out: list[int] = []
    for count, value in runs:
        if len(out) + count > total:
            raise MalformedMedia(f"{name} describes more samples than the {total} there are")
        out.extend([value] * count)
    return out


def compress_runs(values: list[int]) -> list[tuple[int, int]]:
    """(count, value) runs of a per-sample list."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value:
            runs[-1] = (runs[-1][0] + 1, value)
        else:
            runs.append((1, value))
    return runs


def parse_stss(payload: memoryview) -> array[int]:
    """Parse `stss`: the 1-based numbers of the sync samples."""
    if len(payload) < 8:
        raise MalformedMedia("stss box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    return be_array("I", checked_entries(payload, "stss", 8, 4, count))


def stss_box(numbers: list[int]) -> bytes:
    """An `stss` box from 1-based sync sample numbers."""
    payload = _VF_COUNT.pack(0, len(numbers)) + to_be_bytes("I", numbers)
    return _U32.pack(8 + len(payload)) + b"stss" + payload


def stsz_box(sizes: SampleSizes, first: int, stop: int) -> bytes:
    """An `stsz` box for samples `[first, stop)` of `sizes`."""
    count = stop - first
    if sizes.sizes is None:
        payload = _STSZ.pack(0, sizes.constant, count)
    else:
        payload = _STSZ.pack(0, 0, count) + to_be_bytes("I", sizes.sizes[first:stop])
    return _U32.pack(8 + len(payload)) + b"stsz" + payload


def stsc_box(runs: list[tuple[int, int, int]]) -> bytes:
    """An `stsc` box from (first_chunk, samples_per_chunk, description_index) runs."""
    flat = [value for run in runs for value in run]
    payload = _VF_COUNT.pack(0, len(runs)) + to_be_bytes("I", flat)
    return _U32.pack(8 + len(payload)) + b"stsc" + payload


# Tables copied untouched into outputs: (header bytes before the entries, entry size by
# version). Their counts are still checked so that no output carries a table claiming
# more entries than it holds.
_COUNTED_TABLES = {
    b"stts": (8, (8, 8)),
    b"ctts": (8, (8, 8)),
    b"stss": (8, (4, 4)),
    b"stps": (8, (4, 4)),
    b"elst": (8, (12, 20)),
}


def check_table_count(kind: bytes, payload: memoryview) -> None:
    """Refuse a counted table whose entry count exceeds what its box holds."""
    layout = _COUNTED_TABLES.get(kind)
    if layout is None:
        return
    header, sizes = layout
    if len(payload) < header:
        raise MalformedMedia(f"{kind.decode('latin-1')} box is too short")
    count = _VF_COUNT.unpack_from(payload, 0)[1]
    width = sizes[1] if payload[0] == 1 else sizes[0]
    if count > (len(payload) - header) // width:
        raise MalformedMedia(
            f"{kind.decode('latin-1')} claims {count} entries but its box holds only "
            f"{(len(payload) - header) // width}"
        )
