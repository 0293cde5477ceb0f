"""Byte-level rewriters of ISO BMFF files, for tests only.

A deliberately small and independent box walker (it shares no code with
`vodedge.media`, so a bug there cannot hide itself here). A file is parsed
into a tree of `Box`es, reshaped (64-bit headers, `co64`, extra boxes,
split `mdat`, size-0 last box), laid out again, and every absolute or
relative data pointer is remapped so the media still plays: `stco`/`co64`,
`tfhd` base offsets, `trun` data offsets, `tfra` moof offsets, `sidx`
reference sizes and `mfro`.
"""

from __future__ import annotations

import bisect
import itertools
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

# Boxes whose payload is only child boxes. `udta`, `meta` and `stsd` are left
# opaque on purpose: their layout varies (QuickTime vs ISO, full-box prefixes).
CONTAINERS = frozenset(
    {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"mvex", b"moof",
     b"traf", b"mfra", b"tref"}
)  # fmt: skip

UUID_TYPE = bytes.fromhex("7665646765746573742d66696c6c6572")  # "vodgetest-filler"


@dataclass(eq=False)
class Box:
    """One box: a leaf with a payload, or a container with children."""

    type: bytes
    payload: bytes = b""
    children: list[Box] | None = None
    usertype: bytes = b""
    large: bool = False
    to_eof: bool = False
    # Where the box and its payload were in the source (None for inserted boxes).
    src_start: int | None = None
    src_end: int | None = None
    src_payload: int | None = None
    # Set by `layout`.
    start: int = 0
    size: int = 0
    header_size: int = 0
    # Original 32-bit size field, to tell size==0 and size==1 apart in checks.
    size_field: int = field(default=8, repr=False)

    @property
    def name(self) -> str:
        """The four-character type as text."""
        return self.type.decode("latin-1")

    def header_len(self) -> int:
        """Bytes of the header this box will be written with."""
        return (16 if self.large and not self.to_eof else 8) + len(self.usertype)


def parse(data: bytes, start: int = 0, end: int | None = None) -> list[Box]:
    """The boxes of `data[start:end]`, containers parsed recursively."""
    end = len(data) if end is None else end
    boxes: list[Box] = []
    pos = start
    while pos < end:
        if end - pos < 8:
            raise ValueError(f"{end - pos} stray bytes at {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        usertype = b""
        if kind == b"uuid":
            usertype = data[pos + header : pos + header + 16]
            header += 16
        if size < header or pos + size > end:
            raise ValueError(f"box {kind!r} at {pos} has bad size {size}")
        (size_field,) = struct.unpack_from(">I", data, pos)
        box = Box(
            kind,
            usertype=usertype,
            large=size_field == 1,
            to_eof=size_field == 0,
            src_start=pos,
            src_end=pos + size,
            src_payload=pos + header,
            size_field=size_field,
        )
        if kind in CONTAINERS:
            box.children = parse(data, pos + header, pos + size)
        else:
            box.payload = data[pos + header : pos + size]
        boxes.append(box)
        pos += size
    return boxes


def walk(boxes: list[Box], prefix: str = "") -> Iterator[tuple[str, Box]]:
    """Every box depth-first, with its slash-separated path ("moov/trak/tkhd")."""
    for box in boxes:
        path = f"{prefix}{box.name}"
        yield path, box
        if box.children is not None:
            yield from walk(box.children, path + "/")


def find_all(boxes: list[Box], path: str) -> list[Box]:
    """Every box at `path` (e.g. "moov/trak/mdia/hdlr")."""
    return [box for p, box in walk(boxes) if p == path]


def child(box: Box, kind: bytes) -> Box | None:
    """The first child of `box` of type `kind`."""
    return next((c for c in box.children or [] if c.type == kind), None)


def serialize(boxes: list[Box]) -> bytes:
    """Lay the tree out, fix every data pointer, and return the file's bytes."""
    _layout(boxes, 0)
    _fix_pointers(boxes)
    out = bytearray()
    _write(boxes, out)
    return bytes(out)


def _layout(boxes: list[Box], pos: int) -> int:
    for box in boxes:
        box.start = pos
        box.header_size = box.header_len()
        if box.children is not None:
            box.size = _layout(box.children, pos + box.header_size) - pos
        else:
            box.size = box.header_size + len(box.payload)
        pos += box.size
    return pos


def _write(boxes: list[Box], out: bytearray) -> None:
    for box in boxes:
        assert len(out) == box.start, (box.name, len(out), box.start)
        if box.to_eof:
            out += struct.pack(">I4s", 0, box.type)
        elif box.large:
            out += struct.pack(">I4sQ", 1, box.type, box.size)
        else:
            if box.size >= 1 << 32:
                raise ValueError(f"{box.name} needs a 64-bit size")
            out += struct.pack(">I4s", box.size, box.type)
        out += box.usertype
        if box.children is not None:
            _write(box.children, out)
        else:
            out += box.payload


# --- pointer fixing ------------------------------------------------------------


class _Remap:
    """Maps source offsets (box starts, bytes inside top-level leaves) to new ones."""

    def __init__(self, top: list[Box]) -> None:
        self.box_starts = {b.src_start: b for b in top if b.src_start is not None}
        leaves = sorted(
            (b for b in top if b.children is None and b.src_payload is not None),
            key=lambda b: b.src_payload or 0,
        )
        self.leaves = leaves
        self.keys = [b.src_payload for b in leaves]
        self.old_end = max((b.src_end or 0 for b in top), default=0)
        self.new_end = top[-1].start + top[-1].size if top else 0

    def box_start(self, old: int) -> int:
        """New position of the top-level box (or end of file) that began at `old`."""
        if old == self.old_end:
            return self.new_end
        box = self.box_starts.get(old)
        if box is None:
            raise ValueError(f"offset {old} is not the start of a top-level box")
        return box.start

    def data(self, old: int) -> int:
        """New position of the media byte that was at `old` (inside an mdat)."""
        # Box starts first: a moof right after an mdat starts where that
        # mdat's payload ends, and fillers may now sit between the two.
        if old in self.box_starts or old == self.old_end:
            return self.box_start(old)
        i = bisect.bisect_right(self.keys, old) - 1
        if i >= 0:
            leaf = self.leaves[i]
            assert leaf.src_payload is not None
            if old <= leaf.src_payload + len(leaf.payload):
                return leaf.start + leaf.header_size + old - leaf.src_payload
        return self.box_start(old)


def _fix_pointers(top: list[Box]) -> None:
    remap = _Remap(top)
    for path, box in walk(top):
        if box.type == b"stco":
            box.payload = _remap_table(box.payload, ">I", remap.data)
        elif box.type == b"co64":
            box.payload = _remap_table(box.payload, ">Q", remap.data)
        elif box.type == b"tfra":
            box.payload = _fix_tfra(box.payload, remap)
        elif box.type == b"mfra":
            mfro = box.children[-1] if box.children else None
            if mfro is not None and mfro.type == b"mfro":
                mfro.payload = mfro.payload[:4] + struct.pack(">I", box.size)
        elif box.type == b"sidx" and "/" not in path:
            box.payload = _fix_sidx(box, remap)
        elif box.type == b"moof":
            _fix_moof(box, remap)


def _remap_table(payload: bytes, fmt: str, fn: Callable[[int], int]) -> bytes:
    (count,) = struct.unpack_from(">I", payload, 4)
    width = struct.calcsize(fmt)
    values = [v for (v,) in struct.iter_unpack(fmt, payload[8 : 8 + count * width])]
    return payload[:8] + b"".join(struct.pack(fmt, fn(v)) for v in values)


def _fix_moof(moof: Box, remap: _Remap) -> None:
    assert moof.src_start is not None
    for index, traf in enumerate(c for c in moof.children or [] if c.type == b"traf"):
        tfhd = child(traf, b"tfhd")
        assert tfhd is not None, "traf without tfhd"
        flags = int.from_bytes(tfhd.payload[1:4], "big")
        if flags & 0x1:  # absolute base_data_offset
            (old_base,) = struct.unpack_from(">Q", tfhd.payload, 8)
            new_base = remap.data(old_base)
            tfhd.payload = tfhd.payload[:8] + struct.pack(">Q", new_base) + tfhd.payload[16:]
        elif flags & 0x20000 or index == 0:  # relative to the moof
            old_base, new_base = moof.src_start, moof.start
        else:
            # The base is where the previous traf's data ended; that data moves
            # with ours (split_mdat never cuts between them), so the relative
            # offsets stay right as they are.
            continue
        for trun in (c for c in traf.children or [] if c.type == b"trun"):
            tflags = int.from_bytes(trun.payload[1:4], "big")
            if not tflags & 0x1:
                raise NotImplementedError("trun without data_offset")
            (offset,) = struct.unpack_from(">i", trun.payload, 8)
            new = remap.data(old_base + offset) - new_base
            trun.payload = trun.payload[:8] + struct.pack(">i", new) + trun.payload[12:]


def _fix_tfra(payload: bytes, remap: _Remap) -> bytes:
    version = payload[0]
    sizes = int.from_bytes(payload[8:12], "big")
    traf_len, trun_len, sample_len = ((sizes >> 4) & 3) + 1, ((sizes >> 2) & 3) + 1, (sizes & 3) + 1
    (count,) = struct.unpack_from(">I", payload, 12)
    out = bytearray(payload[:16])
    pos = 16
    fmt = ">QQ" if version == 1 else ">II"
    for _ in range(count):
        time, moof = struct.unpack_from(fmt, payload, pos)
        pos += struct.calcsize(fmt)
        out += struct.pack(fmt, time, remap.box_start(moof))
        rest = traf_len + trun_len + sample_len
        out += payload[pos : pos + rest]
        pos += rest
    return bytes(out + payload[pos:])


def _fix_sidx(sidx: Box, remap: _Remap) -> bytes:
    p = sidx.payload
    version = p[0]
    head = 12  # version/flags, reference_ID, timescale
    times = ">QQ" if version else ">II"
    ept, first = struct.unpack_from(times, p, head)
    after = head + struct.calcsize(times)
    (count,) = struct.unpack_from(">H", p, after + 2)
    assert sidx.src_end is not None
    old_pos = sidx.src_end + first
    new_anchor = sidx.start + sidx.size
    new_pos = remap.box_start(old_pos)
    out = bytearray(p[:head])
    out += struct.pack(times, ept, new_pos - new_anchor)
    out += p[after : after + 4]
    entry = after + 4
    for _ in range(count):
        word, rest = struct.unpack_from(">I8s", p, entry)
        kind, size = word >> 31, word & 0x7FFFFFFF
        old_next = old_pos + size
        new_next = remap.box_start(old_next)
        out += struct.pack(">I8s", (kind << 31) | (new_next - new_pos), rest)
        old_pos, new_pos = old_next, new_next
        entry += 12
    return bytes(out + p[entry:])


# --- the rewrites ----------------------------------------------------------------


def to_largesize(top: list[Box]) -> list[Box]:
    """Every box header becomes a 64-bit `largesize` header (size field 1), but `moof`'s."""
    for _, box in walk(top):
        # ffmpeg's mov demuxer takes a moof's start to be 8 bytes before its
        # payload, so with a 64-bit moof header it misplaces every moof-relative
        # sample and the oracle itself would be wrong; every box inside is done.
        box.large = box.type != b"moof"
        box.to_eof = False
    return top


def to_co64(top: list[Box]) -> list[Box]:
    """Every `stco` becomes a `co64` with the same offsets (fixed after layout)."""
    for _, box in walk(top):
        if box.type == b"stco":
            (count,) = struct.unpack_from(">I", box.payload, 4)
            values = struct.unpack_from(f">{count}I", box.payload, 8)
            box.type = b"co64"
            box.payload = box.payload[:8] + struct.pack(f">{count}Q", *values)
    return top


def _filler(kind: bytes, size: int = 8) -> Box:
    if kind == b"uuid":
        return Box(b"uuid", usertype=UUID_TYPE, payload=b"vodedge" * (size // 7))
    if kind == b"wide":
        return Box(b"wide")  # QuickTime's placeholder: always empty
    return Box(kind, payload=bytes(size))


def _insert_after(parent: list[Box], kinds: tuple[bytes, ...], filler: Box) -> None:
    """Put `filler` after the first child of one of `kinds` (or first, if none)."""
    index = next((i + 1 for i, b in enumerate(parent) if b.type in kinds), 0)
    parent.insert(index, filler)


def insert_fillers(top: list[Box]) -> list[Box]:
    """`free`/`skip`/`uuid`/`wide` boxes between and inside boxes where allowed."""
    new_top: list[Box] = []
    for i, box in enumerate(top):
        if box.type == b"mdat":
            new_top.append(_filler(b"wide"))
        new_top.append(box)
        if i == 0:
            new_top.append(_filler(b"free", 13))
        elif box.type == b"moov":
            new_top.append(_filler(b"skip", 5))
    new_top.append(_filler(b"free", 3))
    for path, box in walk(new_top):
        kids = box.children
        if kids is None:
            continue
        if path == "moov":
            _insert_after(kids, (b"mvhd",), _filler(b"uuid", 14))
            traks = [i for i, b in enumerate(kids) if b.type == b"trak"]
            for i in reversed(traks[1:]):
                kids.insert(i, _filler(b"free", 2))
            kids.append(_filler(b"skip"))
        elif path == "moov/trak":
            _insert_after(kids, (b"tkhd",), _filler(b"free", 6))
            kids.append(_filler(b"uuid", 7))
        elif path == "moov/trak/mdia":
            _insert_after(kids, (b"mdhd",), _filler(b"skip", 1))
        elif path == "moov/trak/mdia/minf":
            _insert_after(kids, (b"vmhd", b"smhd", b"nmhd", b"gmhd"), _filler(b"free"))
        elif path == "moov/trak/mdia/minf/stbl":
            _insert_after(kids, (b"stsd",), _filler(b"free", 4))
            kids.append(_filler(b"uuid", 21))
        elif path == "moof":
            _insert_after(kids, (b"mfhd",), _filler(b"free", 9))
        elif path == "moof/traf":
            kids.append(_filler(b"skip", 3))
    return new_top


def split_mdat(top: list[Box], pieces: int = 3) -> list[Box]:
    """Cut every `mdat` into up to `pieces` `mdat`s, at chunk/run boundaries only."""
    starts = sorted(_data_run_starts(top))
    new_top: list[Box] = []
    for box in top:
        if box.type != b"mdat" or box.src_payload is None or not box.payload:
            new_top.append(box)
            continue
        lo, hi = box.src_payload, box.src_payload + len(box.payload)
        inside = [s for s in starts if lo < s < hi]
        # Cut near 1/pieces, 2/pieces ... of the runs inside this mdat.
        cuts = sorted({inside[len(inside) * k // pieces] for k in range(1, pieces) if inside})
        edges = [lo, *cuts, hi]
        for a, b in itertools.pairwise(edges):
            new_top.append(
                Box(
                    b"mdat",
                    payload=box.payload[a - lo : b - lo],
                    large=box.large,
                    src_start=box.src_start if a == lo else None,
                    src_end=box.src_end if b == hi else None,
                    src_payload=a,
                )
            )
    return new_top


def _data_run_starts(top: list[Box]) -> set[int]:
    """Source offsets where a chunk or a fragment's sample run begins."""
    found: set[int] = set()
    for _, box in walk(top):
        if box.type in (b"stco", b"co64"):
            fmt = ">I" if box.type == b"stco" else ">Q"
            (count,) = struct.unpack_from(">I", box.payload, 4)
            width = struct.calcsize(fmt)
            found.update(v for (v,) in struct.iter_unpack(fmt, box.payload[8 : 8 + count * width]))
    for moof in (b for b in top if b.type == b"moof"):
        assert moof.src_start is not None
        for traf in (c for c in moof.children or [] if c.type == b"traf"):
            tfhd = child(traf, b"tfhd")
            assert tfhd is not None
            flags = int.from_bytes(tfhd.payload[1:4], "big")
            if flags & 1:
                base = struct.unpack_from(">Q", tfhd.payload, 8)[0]
            elif flags & 0x20000 or _first_traf(moof) is traf:
                base = moof.src_start
            else:
                continue  # implicit base: the end of the previous traf's data
            for trun in (c for c in traf.children or [] if c.type == b"trun"):
                if int.from_bytes(trun.payload[1:4], "big") & 1:
                    found.add(base + struct.unpack_from(">i", trun.payload, 8)[0])
    return found


def _first_traf(moof: Box) -> Box | None:
    return next((c for c in moof.children or [] if c.type == b"traf"), None)


def last_to_eof(top: list[Box]) -> list[Box]:
    """The last top-level box gets size 0: "extends to the end of the file"."""
    top[-1].to_eof = True
    top[-1].large = False
    return top


def _all(top: list[Box]) -> list[Box]:
    return last_to_eof(to_largesize(to_co64(split_mdat(insert_fillers(top)))))


REWRITES: dict[str, Callable[[list[Box]], list[Box]]] = {
    "largesize": to_largesize,
    "co64": to_co64,
    "fillers": insert_fillers,
    "split_mdat": split_mdat,
    "size0_last": last_to_eof,
    "all": _all,
}


def rewrite(data: bytes, name: str) -> bytes:
    """`data` rewritten by the rewrite called `name` (a key of `REWRITES`)."""
    return serialize(REWRITES[name](parse(data)))


# --- small readers used by the tests' structural checks ------------------------


def full_box(box: Box) -> tuple[int, int, bytes]:
    """(version, flags, rest) of a full box's payload."""
    return box.payload[0], int.from_bytes(box.payload[1:4], "big"), box.payload[4:]


def mvhd_fields(moov: Box) -> tuple[int, int, int]:
    """(timescale, duration, next_track_ID) of a movie."""
    mvhd = child(moov, b"mvhd")
    assert mvhd is not None, "moov without mvhd"
    version, _, rest = full_box(mvhd)
    if version == 1:
        timescale, duration = struct.unpack_from(">IQ", rest, 16)
    else:
        timescale, duration = struct.unpack_from(">II", rest, 8)
    (next_id,) = struct.unpack_from(">I", mvhd.payload, len(mvhd.payload) - 4)
    return timescale, duration, next_id


def trak_fields(trak: Box) -> tuple[int, bytes, int]:
    """(track_ID, handler type, tkhd duration) of a track."""
    tkhd = child(trak, b"tkhd")
    mdia = child(trak, b"mdia")
    hdlr = child(mdia, b"hdlr") if mdia else None
    assert tkhd is not None and hdlr is not None, "trak without tkhd or hdlr"
    version, _, rest = full_box(tkhd)
    if version == 1:
        track_id, duration = struct.unpack_from(">I4xQ", rest, 16)
    else:
        track_id, duration = struct.unpack_from(">I4xI", rest, 8)
    return track_id, hdlr.payload[8:12], duration


def leaf_signature(box: Box, skip: frozenset[bytes]) -> list[tuple[str, bytes]]:
    """(path, payload) of every leaf under `box` except types in `skip`.

    Container headers are left out, so a tree rewritten with other header
    sizes or with filler boxes removed still compares equal.
    """
    out: list[tuple[str, bytes]] = []
    for path, leaf in walk(box.children or []):
        if leaf.children is None and leaf.type not in skip:
            out.append((path, leaf.usertype + leaf.payload))
    return out


def without_audio_stsd(data: bytes) -> bytes:
    """`data` with each sound track's `stsd` renamed `free`: samples no player can decode."""
    out = bytearray(data)
    for trak in find_all(parse(data), "moov/trak"):
        if trak_fields(trak)[1] != b"soun":
            continue
        for path, box in walk([trak]):
            if path.endswith("/stsd") and box.src_start is not None:
                out[box.src_start + 4 : box.src_start + 8] = b"free"
    return bytes(out)
