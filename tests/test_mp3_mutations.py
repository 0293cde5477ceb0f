"""Hostile MPEG audio: mutated files give a typed error or a sound preview plan, quickly.

Each example mutates a seed (bit flips, frame headers, Xing/VBRI fields, ID3 sizes,
truncation, inserted or deleted bytes) and builds a preview plan over it. Accepted:
a `MediaError` with a code and a one-line message, or a plan whose spans lie in the
source, that starts with the source's first bytes and is no larger than the source
(a preview only ever drops frames). Anything else, more than two seconds of CPU time, or
a peak allocation over `FIXED_MEMORY` plus four times the input fails.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, note
from hypothesis import strategies as st

from media_matrix import SHARED_MEDIA, media
from mutation_harness import BYTE_MUTATIONS, bounded, examples, mutate_bytes, peak_allocation
from vodedge.media.errors import MediaError
from vodedge.media.mp3 import mp3_preview_plan
from vodedge.media.mp3.header import parse_header
from vodedge.media.plan import Plan, Span
from vodedge.media.reading import run_bytes

FIXED_MEMORY = 8 << 20
MEMORY_PER_INPUT_BYTE = 4
SEED_CASES = ("mp3_vbr_xing", "mp3_cbr_info_id3v1", "mp3_mpeg25_8000", "mp2_layer2_mpeg2_24000")
PREVIEW_MEDIA = SHARED_MEDIA.parent / "preview-media"


def _seeds() -> dict[str, bytes]:
    seeds = {name: media(name).read_bytes()[:40_000] for name in SEED_CASES}
    for path in sorted(PREVIEW_MEDIA.glob("*.mp3")):
        data = path.read_bytes()
        if len(data) <= 60_000:
            seeds[path.name] = data
    return seeds


def _frame_offsets(data: bytes) -> list[int]:
    offsets, at = [], 0
    while at + 4 <= len(data) and len(offsets) < 400:
        header = parse_header(data, at)
        if header is not None and header.bitrate:
            offsets.append(at)
            at += header.size()
        else:
            at += 1
    return offsets


SEEDS = _seeds()
FRAMES = {name: _frame_offsets(data) for name, data in SEEDS.items()}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with one to four mutations."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    frames = FRAMES[name]
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(
            st.sampled_from(["flip", "header", "info", "id3", "cut", "insert", "delete", "tail"])
        )
        if kind in BYTE_MUTATIONS:
            mutate_bytes(draw, data, kind)
        elif kind == "header" and frames:
            at = draw(st.sampled_from(frames)) + draw(st.integers(1, 3))
            if at < len(data):
                data[at] = draw(st.integers(0, 255))
        elif kind == "info" and frames:
            # Xing/Info/VBRI fields sit in the first frame's first 200 bytes.
            at = frames[0] + draw(st.integers(4, 200))
            value = draw(st.sampled_from([0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF]))
            data[at : at + 4] = value.to_bytes(4, "big")[: max(0, len(data) - at)]
        elif kind == "id3" and data[:3] == b"ID3":
            data[6:10] = bytes(draw(st.integers(0, 127)) for _ in range(4))
        elif kind == "tail":
            data += draw(st.sampled_from([b"TAG" + b"\0" * 125, b"APETAGEX" + b"\xff" * 24]))
    note(f"{name}: {len(data)} bytes")
    return bytes(data)


def _bounded(data: bytes, seconds: float) -> Plan | MediaError:
    """The plan or the typed error, in bounded CPU time (without tracemalloc, which slows
    int-heavy code)."""
    return bounded(lambda: run_bytes(mp3_preview_plan(len(data), seconds), data))


def check(data: bytes, seconds: float) -> None:
    """One preview over hostile `data`: a typed error or a sound plan, in bounds."""
    plan = _bounded(data, seconds)
    peak = peak_allocation(lambda: run_bytes(mp3_preview_plan(len(data), seconds), data))
    assert peak < FIXED_MEMORY + MEMORY_PER_INPUT_BYTE * len(data), f"peak allocation {peak}"
    if isinstance(plan, MediaError):
        return
    assert 0 < plan.size <= len(data)
    for span in plan.spans():
        assert span.offset >= 0 and span.end <= len(data)
    out = plan.render(data)
    first = plan.pieces[0]
    if isinstance(first, Span):
        assert first.offset == 0 and out[: first.length] == data[: first.length]


@given(data=mutated(), seconds=st.sampled_from([0.01, 0.5, 2.0, 1e9]))
@examples(300)
def test_mutated_previews(data: bytes, seconds: float) -> None:
    """Mutated seeds at several preview lengths."""
    check(data, seconds)


@given(data=st.binary(max_size=3000), seconds=st.sampled_from([0.5, 1e9]))
@examples(200)
def test_random_bytes(data: bytes, seconds: float) -> None:
    """Random bytes, with or without an ID3v2 header or a sync word in front."""
    check(data, seconds)
    check(b"\xff\xfb\x90\x00" + data, seconds)
    check(b"ID3\x04\x00\x00\x00\x00\x00\x10" + data, seconds)


def test_sync_words_everywhere_do_not_take_long() -> None:
    """A megabyte of bytes that all look like frame starts but never chain."""
    check(b"\xff\xfb\x90" * 350_000, 1.0)
    check(b"\xff" * 1_000_000, 1.0)


def test_tiny_frames_for_a_long_preview() -> None:
    """The smallest frames there are, many of them: bounded time and memory."""
    frame = b"\xff\xe3\x18\x00" + b"\x00" * 68  # MPEG-2.5 layer III 8k: 72 bytes
    check(frame * 20_000, 1e9)


def test_seeds_are_frames() -> None:
    """The seeds hold frames, so header mutations hit something."""
    assert all(FRAMES[name] for name in SEEDS), {n: len(f) for n, f in FRAMES.items()}
    assert Path(media(SEED_CASES[0])).exists()


def test_free_format_lookalikes_do_not_take_long() -> None:
    """Junk full of free-format headers that never chain."""
    check(b"\xff\xfb\x00" * 40_000 + b"\x00" * 100_000, 1.0)
