"""Hostile MPEG-TS: mutated streams give a typed error or a sound preview plan, quickly.

Each example mutates a seed (bit flips, packet headers, PES headers and their PTS,
truncation, inserted or deleted bytes) and builds a preview plan over it. Accepted: a
`MediaError` with a code and a one-line message, or a plan whose spans lie in the
source, ascend, and are no larger than it. Anything else, more than two seconds of CPU
time, or a peak allocation over `FIXED_MEMORY` plus four times the input fails.
"""

from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st

from media_matrix import SHARED_MEDIA, media
from mutation_harness import BYTE_MUTATIONS, bounded, examples, mutate_bytes, peak_allocation
from vodedge.media.errors import MediaError
from vodedge.media.plan import Plan
from vodedge.media.reading import run_bytes
from vodedge.media.ts import ts_preview_plan

FIXED_MEMORY = 8 << 20
MEMORY_PER_INPUT_BYTE = 4
PREVIEW_MEDIA = SHARED_MEDIA.parent / "preview-media"


def _seeds() -> dict[str, bytes]:
    seeds = {
        name: media(name).read_bytes()[: 188 * 400] for name in ("ts_h264_aac", "m2ts_h264_aac")
    }
    for path in sorted(PREVIEW_MEDIA.glob("*.ts")):
        seeds[path.name] = path.read_bytes()
    return seeds


SEEDS = _seeds()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with one to four mutations."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    size = 192 if name.startswith("m2ts") else 188
    sync = 4 if size == 192 else 0
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        kind = draw(st.sampled_from(["flip", "header", "pes", "cut", "insert", "delete"]))
        packets = max(1, len(data) // size)
        if kind in BYTE_MUTATIONS:
            mutate_bytes(draw, data, kind, most=200)
        elif kind == "header":
            at = draw(st.integers(0, packets - 1)) * size + sync + draw(st.integers(0, 5))
            if at < len(data):
                data[at] = draw(st.integers(0, 255))
        elif kind == "pes":
            # A PES header's length, flags, header length and PTS sit 4..22 bytes in.
            at = draw(st.integers(0, packets - 1)) * size + sync + draw(st.integers(4, 22))
            if at < len(data):
                data[at] = draw(st.sampled_from([0x00, 0x01, 0x80, 0xFF, 0xC0, 0x21]))
    note(f"{name}: {len(data)} bytes")
    return bytes(data)


def _bounded(data: bytes, seconds: float) -> Plan | MediaError:
    """The plan or the typed error, in bounded CPU time (without tracemalloc, which slows
    int-heavy code)."""
    return bounded(lambda: run_bytes(ts_preview_plan(len(data), seconds), data))


def check(data: bytes, seconds: float) -> None:
    """One preview over hostile `data`: a typed error or a sound plan, in bounds."""
    plan = _bounded(data, seconds)
    peak = peak_allocation(lambda: run_bytes(ts_preview_plan(len(data), seconds), data))
    assert peak < FIXED_MEMORY + MEMORY_PER_INPUT_BYTE * len(data), f"peak allocation {peak}"
    if isinstance(plan, MediaError):
        return
    assert plan.size <= len(data)
    last = 0
    for span in plan.spans():
        assert span.offset >= last and span.end <= len(data)
        last = span.end
    plan.render(data)


@given(data=mutated(), seconds=st.sampled_from([0.01, 0.5, 2.0, 1e9]))
@examples(300)
def test_mutated_previews(data: bytes, seconds: float) -> None:
    """Mutated seeds at several preview lengths."""
    check(data, seconds)


@given(data=st.binary(max_size=3000), seconds=st.sampled_from([0.5, 1e9]))
@examples(100)
def test_random_bytes(data: bytes, seconds: float) -> None:
    """Random bytes, alone and behind four sync bytes at packet distance."""
    check(data, seconds)
    check(b"".join(b"\x47" + data[:187].ljust(187, b"\xff") for _ in range(4)) + data, seconds)


def test_sync_bytes_everywhere_do_not_take_long() -> None:
    """A stream of sync bytes, and packets that all start PES packets without end."""
    check(b"\x47" * 2_000_000, 1.0)
    pes = b"\x47\x41\x00\x10" + b"\x00\x00\x01\xe0\x00\x00\x80\x80\x05\x21\x00\x01\x00\x01"
    check((pes + b"\xff" * (188 - len(pes))) * 20_000, 1e9)
