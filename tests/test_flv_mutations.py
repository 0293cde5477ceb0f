"""Hostile FLV and AMF0 input: typed errors or valid output, never another exception.

Every example mutates a seed file (bit flips, corrupted tag sizes/types/back-pointers,
truncation, inserted or deleted bytes) and runs the plan builder, the streaming filter
(in a random chunking) and the summary over it. Accepted outcomes: a `MediaError`, or
an output that parses as an FLV with exact back-pointers. When both the plan and the
stream succeed their outputs must agree (but for onMetaData); the stream may succeed
where the plan, seeing the whole file, refuses one without audio tags.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, note
from hypothesis import strategies as st

from flv_media import Synthetic, check_output, parse, run_filter, synthetic, without_metadata
from mutation_harness import BYTE_MUTATIONS, bounded, examples, mutate_bytes
from vodedge.media.errors import MediaError, NoAudioTrack
from vodedge.media.flv import (
    FlvAudioFilter,
    FlvClipFilter,
    amf0,
    flv_audio_plan,
    flv_clip_plan,
    flv_summary,
)
from vodedge.media.plan import Plan
from vodedge.media.reading import run_bytes

REPO = Path(__file__).resolve().parent.parent

SEEDS: dict[str, bytes] = {
    "plain": synthetic(Synthetic(seconds=1.5)),
    "enhanced": synthetic(Synthetic(seconds=1.0, enhanced=True, metadata_object=True)),
    "odd": synthetic(
        Synthetic(seconds=1.0, bad_back_pointers=True, extra_header=b"\x07" * 5, start_ms=2**24)
    ),
}


def _head(data: bytes, limit: int) -> bytes:
    """The whole tags of `data` that end before `limit`."""
    ends = [t.offset + 15 + len(t.data) for t in parse(data)[1]]
    return data[: max(e for e in ends if e <= limit)]


SEEDS["talk_head"] = _head((REPO / "samples" / "talk.flv").read_bytes(), 40_000)
SEED_TAGS = {name: parse(seed)[1] for name, seed in SEEDS.items()}


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed with a few mutations; each aims at a different part of the format."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    tags = SEED_TAGS[name]
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "size", "type", "back", "cut", "insert", "delete"]))
        if not data:
            break
        if kind in BYTE_MUTATIONS:
            mutate_bytes(draw, data, kind)
        elif kind in ("size", "type", "back") and tags:
            t = draw(st.sampled_from(tags))
            if kind == "size":
                at, width = t.offset + 1, 3
            elif kind == "type":
                at, width = t.offset, 1
            else:
                at, width = t.offset + 11 + len(t.data), 4
            value = draw(st.integers(0, (1 << (8 * width)) - 1))
            data[at : at + width] = value.to_bytes(width, "big")[: max(0, len(data) - at)]
    note(f"{len(data)} bytes")
    return bytes(data)


def _stream(flt: FlvAudioFilter | FlvClipFilter, data: bytes, chunks: list[int]) -> bytes:
    return run_filter(flt, data, chunks)


@given(data=mutated(), chunks=st.lists(st.integers(1, 5000), min_size=1, max_size=4))
@examples(400)
def test_mutated_audio_extraction(data: bytes, chunks: list[int]) -> None:
    planned = bounded(lambda: run_bytes(flv_audio_plan(len(data)), data))
    streamed = bounded(lambda: _stream(FlvAudioFilter(), data, chunks))
    if isinstance(planned, Plan):
        out = planned.render(data)
        assert len(out) == planned.size
        check_output(out)
        assert isinstance(streamed, bytes), f"the stream failed where the plan did not: {streamed}"
        assert without_metadata(streamed) == without_metadata(out)
    if isinstance(streamed, bytes):
        check_output(streamed)
        assert isinstance(planned, Plan | NoAudioTrack), planned


@given(
    data=mutated(),
    start=st.integers(0, 50_000),
    length=st.none() | st.integers(1, 50_000),
    audio_only=st.booleans(),
    chunk=st.integers(1, 5000),
)
@examples(200)
def test_mutated_byte_clips(
    data: bytes, start: int, length: int | None, audio_only: bool, chunk: int
) -> None:
    end = None if length is None else start + length
    planned = bounded(
        lambda: run_bytes(flv_clip_plan(len(data), start, end, audio_only=audio_only), data)
    )
    flt = (
        FlvAudioFilter(start=start, end=end) if audio_only else FlvClipFilter(start=start, end=end)
    )
    streamed = bounded(lambda: _stream(flt, data, [chunk]))
    if isinstance(planned, Plan):
        out = planned.render(data)
        check_output(out)
        assert isinstance(streamed, bytes), streamed
        assert without_metadata(streamed) == without_metadata(out)
    if isinstance(streamed, bytes):
        check_output(streamed)


@given(
    data=mutated(),
    start=st.floats(0, 3),
    length=st.none() | st.floats(0.01, 3),
    audio_only=st.booleans(),
)
@examples(200)
def test_mutated_time_clips(
    data: bytes, start: float, length: float | None, audio_only: bool
) -> None:
    end = None if length is None else start + length
    planned = bounded(
        lambda: run_bytes(
            flv_clip_plan(len(data), start, end, by_time=True, audio_only=audio_only), data
        )
    )
    if isinstance(planned, Plan):
        check_output(planned.render(data))


@given(data=mutated())
@examples(200)
def test_mutated_summary(data: bytes) -> None:
    summary = bounded(lambda: run_bytes(flv_summary(len(data)), data))
    if not isinstance(summary, MediaError):
        json.dumps(summary.to_dict(), allow_nan=False)


@given(st.binary(max_size=300))
@examples(300)
def test_random_bytes_after_a_header(tail: bytes) -> None:
    data = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00" + tail
    planned = bounded(lambda: run_bytes(flv_audio_plan(len(data)), data))
    streamed = bounded(lambda: _stream(FlvAudioFilter(), data, [7]))
    if isinstance(planned, Plan):
        check_output(planned.render(data))
        assert isinstance(streamed, bytes)
    if isinstance(streamed, bytes):
        check_output(streamed)


@given(st.binary(max_size=400))
@examples(500)
def test_random_amf0(data: bytes) -> None:
    bounded(lambda: amf0.decode_all(data))


@pytest.mark.parametrize("claim", [2**32 - 1, 2**31, 10**6])
def test_huge_claims_in_metadata_do_not_allocate(claim: int) -> None:
    from flv_media import AUDIO, SCRIPT, aac_frame, flv, tag

    meta = b"\x02\x00\x0aonMetaData\x03\x00\x01k\x0a" + claim.to_bytes(4, "big") + b"\x05" * 8
    data = flv([tag(SCRIPT, meta), tag(AUDIO, aac_frame(0))])
    assert isinstance(bounded(lambda: run_bytes(flv_audio_plan(len(data)), data)), MediaError)
    assert isinstance(bounded(lambda: run_filter(FlvAudioFilter(), data)), MediaError)


def test_metadata_nested_deeply_is_a_typed_error() -> None:
    from flv_media import AUDIO, SCRIPT, aac_frame, flv, tag

    meta = b"\x02\x00\x0aonMetaData" + b"\x0a\x00\x00\x00\x01" * 5000 + b"\x05"
    data = flv([tag(SCRIPT, meta), tag(AUDIO, aac_frame(0))])
    assert isinstance(bounded(lambda: run_bytes(flv_audio_plan(len(data)), data)), MediaError)
