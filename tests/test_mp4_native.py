"""The compiled clip planner (`clipper`, its tables packed by `packing`) against the mypyc
fast path and the general path: the same plan byte for byte or the same error, on every
MP4 we have, for any bounds and track selection; and it does run (a planner that always
declined would pass the comparisons) for the shapes the edge serves most."""

from __future__ import annotations

import functools
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_matrix import SHARED_MEDIA
from test_mp4_index import SOURCES, Outcome, bounds, flipped, moov_flips, outcome_of, source
from test_mp4_mutations import CONTAINERS as MUTATION_CONTAINERS
from test_mp4_mutations import extreme_values, fields, put, walk
from vodedge.media.errors import MediaError
from vodedge.media.mp4 import packing
from vodedge.media.mp4.index import Mp4Index, TrackIndex, read_index
from vodedge.media.plan import Plan
from vodedge.media.reading import run_bytes

compiled = pytest.mark.skipif(not packing.COMPILED, reason="a pure Python build has no clipper")

# Sources every warm clip of which the compiled planner plans (none declined), full and
# audio-only where they have audio: H.264/AAC with and without B-frames, several audio
# tracks, delayed and trimmed edit lists, sdtp, sbgp, co64, audio-only files.
PLANNED = [
    "case:mp4_long_30min",
    "case:mp4_h264_bframes_aac",
    "case:mp4_two_languages",
    "case:mp4_trimmed_elst",
    "case:m4a_aac",
    "shared:mp4ff__bbb_prog_10s.mp4",
    "shared:mp4ff__prog_8s.mp4",
    "shared:gomp4__sample.mp4",
    "shared:mp4parse__white.mp4",
    "rewrite:mp4_two_languages:co64",
]


def finished(spec: str) -> Mp4Index | None:
    """A fresh index of the source, finished (so warm clips may take the planner)."""
    data = source(spec)
    try:
        index = run_bytes(read_index(len(data)), data)
    except MediaError:
        return None
    index.finish()
    return index


def audio_ids(index: Mp4Index) -> list[int]:
    """The ids of the indexed audio tracks."""
    return [t.track.track_id for t in index.tracks.values() if _audio(t)]


def _audio(track: object) -> bool:
    return isinstance(track, TrackIndex) and track.track.is_audio


def three_ways(
    index: Mp4Index,
    start: float | None,
    end: float | None,
    audio_only: bool,
    track_id: int | None = None,
) -> tuple[Outcome, bool]:
    """The clip's outcome, checked equal by the compiled planner, the fast path and the
    general path; and whether the compiled planner made it."""
    clip = functools.partial(index.clip, start, end, audio_only=audio_only, track_id=track_id)
    planner = index.planners.get((audio_only, track_id))
    before = planner.planned if planner is not None else 0
    native = outcome_of(clip)
    planner = index.planners.get((audio_only, track_id))
    ran = planner is not None and planner.planned > before
    fast = outcome_of(functools.partial(clip, native=False))
    general = outcome_of(functools.partial(clip, general=True))
    assert fast == general
    assert native == general, "the compiled planner's plan differs"
    if isinstance(native, Plan):
        assert isinstance(general, Plan)
        assert native.pieces[0] == general.pieces[0]  # the head, byte for byte
        assert native.size == general.size
        assert native.output_starts() == general.output_starts()
    return native, ran


@compiled
@pytest.mark.parametrize("spec", SOURCES)
@pytest.mark.parametrize("audio_only", [True, False], ids=["audio", "full"])
def test_native_equals_fast_and_general(spec: str, audio_only: bool) -> None:
    """Any bounds, any audio track kept: the three planners agree."""
    index = finished(spec)
    if index is None:
        pytest.skip("not indexable")
    choices: list[int | None] = [None, *audio_ids(index)]

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(bounds(spec), st.sampled_from(choices))
    def check(pair: tuple[float | None, float | None], track_id: int | None) -> None:
        three_ways(index, *pair, audio_only, track_id)

    check()


def _duration(index: Mp4Index) -> float:
    tracks = [t for t in index.tracks.values() if isinstance(t, TrackIndex)]
    return max(t.time(t.count - 1) for t in tracks)


@compiled
@pytest.mark.parametrize("spec", PLANNED)
def test_native_plans_the_common_shapes(spec: str) -> None:
    """Random 10-second clips (a tenth of the file for short ones), open-ended ones,
    clips at the very start and end, each audio track alone: every one that has a plan
    is the compiled planner's, and equal to the others'."""
    kind, _, name = spec.partition(":")
    if kind == "shared" and not (SHARED_MEDIA / name).is_file():
        pytest.skip(f"no {SHARED_MEDIA / name}")  # ../shared/media is not beside the repo
    index = finished(spec)
    assert index is not None
    duration = _duration(index)
    length = min(10.0, duration / 10)
    rng = random.Random(spec)
    starts = [rng.random() * (duration - length) for _ in range(25)]
    bounds_list: list[tuple[float | None, float | None]] = [(s, s + length) for s in starts]
    bounds_list += [(s, None) for s in starts[:4]]
    bounds_list += [(None, None), (None, length), (0.0, length), (0.0, None)]
    bounds_list += [(duration - length, None), (duration - length, duration + 1.0)]
    has_video = any(
        isinstance(t, TrackIndex) and t.track.handler == b"vide" for t in index.tracks.values()
    )
    selections: list[tuple[bool, int | None]] = [
        (True, None),
        *((True, i) for i in audio_ids(index)),
    ]
    if has_video:
        selections.append((False, None))
    if not audio_ids(index):
        selections = [(False, None)]
    for audio_only, track_id in selections:
        for start, end in bounds_list:
            outcome, ran = three_ways(index, start, end, audio_only, track_id)
            if isinstance(outcome, Plan):
                assert ran, f"declined {start}..{end} audio_only={audio_only} track={track_id}"


@compiled
def test_native_is_the_thirty_minute_files_planner() -> None:
    """The benchmark's shape (the 30-minute file, random 10-second clips and audio-only
    open-ended seeks): every plan is the compiled planner's, and the mypyc fast path's."""
    index = finished("case:mp4_long_30min")
    assert index is not None
    rng = random.Random(15)
    for _ in range(60):
        start = round(rng.random() * 1790, 3)
        _, ran = three_ways(index, start, start + 10, False)
        assert ran
    for _ in range(5):
        _, ran = three_ways(index, round(rng.random() * 1790, 3), None, True)
        assert ran
    assert index.planners[(False, None)] is not None
    # The planner makes its Plan itself: every slot as `Plan.head_and_spans` sets it.
    plan = index.clip(100.0, 110.0)
    assert type(plan) is Plan
    spans = list(plan.spans())
    made = Plan.head_and_spans(plan.pieces[0], spans)  # type: ignore[arg-type]
    for slot in Plan.__slots__:
        assert getattr(plan, slot) == getattr(made, slot), slot


def test_unfinished_index_has_no_planner() -> None:
    """Until `finish`, clips take the fast path (its tables are not packed yet)."""
    data = source("case:mp4_h264_bframes_aac")
    index = run_bytes(read_index(len(data)), data)
    index.clip(0.5, 1.5)
    assert index.planners == {}
    assert all(t.native is None for t in index.tracks.values() if isinstance(t, TrackIndex))


@compiled
def test_inconsistent_tables_are_declined() -> None:
    """Tables that disagree (as a bug or a hostile moov could make them) are refused
    when packed, or declined per clip, never read past their ends."""
    from vodedge.media.mp4 import clipper

    index = finished("case:mp4_h264_bframes_aac")
    assert index is not None
    video = next(t for t in index.tracks.values() if isinstance(t, TrackIndex))
    prepared = video.prepared
    assert prepared is not None and video.native is not None
    chunks = prepared.chunks
    columns = (chunks.first, chunks.end, chunks.samples, chunks.description, chunks.offsets)
    with pytest.raises(clipper.Decline):  # runs without their entries
        clipper.Runs(np.zeros(3, np.int64), np.zeros(8, np.uint8))
    assert packing.track(video) is not None
    _retrack(video)  # as packed: accepted
    with pytest.raises(clipper.Decline):  # a chunk column one short
        _retrack(video, chunks=(*columns[:-1], chunks.offsets[:-1], chunks.sizes))
    with pytest.raises(clipper.Decline):  # sizes that do not add up to the chunks'
        _retrack(video, prefix=np.zeros(video.count + 1, np.uint32))
    with pytest.raises(clipper.Decline):  # a sample count past the tables
        _retrack(video, count=video.count + 1)
    with pytest.raises(clipper.Decline):  # a step whose table the track has not
        _retrack(video, recipe=[clipper.Step(clipper.SDTP)])
    with pytest.raises(clipper.Decline):  # not a step
        _retrack(video, recipe=[None])


def _retrack(video: TrackIndex, **changes: object) -> object:
    """`packing.track`'s Track with some of its arguments changed."""
    from vodedge.media.mp4 import clipper

    prepared = video.prepared
    assert prepared is not None and video.stts_runs is not None and video.prefix is not None
    starts, ends, durations = video.stts_runs
    spans = (ends - starts) * durations
    chunks = prepared.chunks
    ctts = prepared.ctts
    arguments: dict[str, object] = {
        "video": True,
        "count": video.count,
        "timeline": (starts, ends, durations, np.cumsum(spans) - spans),
        "shift": video.shift,
        "timescale": video.track.timescale,
        "delay": video.delay,
        "stts": clipper.Runs(prepared.stts.ends, prepared.stts.entries.view(np.uint8)),
        "ctts": None if ctts is None else clipper.Runs(ctts.ends, ctts.entries.view(np.uint8)),
        "ctts_version": 0,
        "sync": video.sync,
        "sizes": prepared.sizes,
        "prefix": video.prefix,
        "chunks": (
            chunks.first,
            chunks.end,
            chunks.samples,
            chunks.description,
            chunks.offsets,
            chunks.sizes,
        ),
        "sdtp": None,
        "recipe": [],
        "tkhd": clipper.Duration(b"", False, b""),
        "mdhd": clipper.Duration(b"", False, b""),
        "edits": None,
    }
    arguments.update(changes)
    return clipper.Track(*arguments.values())  # type: ignore[arg-type]


MUTATED = ["mp4_h264_bframes_aac", "mp4_audio_delayed_elst", "m4a_aac", "mp4_two_languages"]


@compiled
@pytest.mark.parametrize("name", MUTATED)
def test_mutated_moov_native_answers_as_the_fast_path(name: str) -> None:
    """Bytes of the moov changed at random, the index finished: the compiled planner
    gives the fast path's plan, or declines to it (same error, or same crash), never
    reads or writes out of bounds."""
    data = source(f"case:{name}")

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        moov_flips(data),
        st.sampled_from([(0.5, 1.5), (1.0, None), (None, 0.7), (0.0, None), (1.3, 1.4)]),
        st.booleans(),
    )
    def check(
        flips: list[tuple[int, int]], pair: tuple[float | None, float | None], audio_only: bool
    ) -> None:
        blob = flipped(data, flips)
        try:
            index = run_bytes(read_index(len(blob)), blob)
            index.finish()
        except MediaError:
            return
        clip = functools.partial(index.clip, *pair, audio_only=audio_only)
        assert _caught(clip) == _caught(functools.partial(clip, native=False))

    check()


def _caught(thunk: functools.partial[Plan]) -> object:
    """A plan, or the type and message of whatever it raised."""
    try:
        return thunk()
    except Exception as exc:
        return (type(exc).__name__, str(exc))


def test_without_the_compiled_planner_the_fast_path_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in a pure Python build (no clipper): nothing is packed, and finished clips
    are the fast path's, equal to the general path's."""
    monkeypatch.setattr(packing, "COMPILED", False)
    index = finished("case:mp4_h264_bframes_aac")
    assert index is not None
    for start, end in [(0.5, 1.5), (None, None), (1.0, None)]:
        for audio_only in (False, True):
            _, ran = three_ways(index, start, end, audio_only)
            assert not ran
    assert set(index.planners.values()) == {None}


@pytest.mark.parametrize("name", ["mp4_h264_bframes_aac", "mp4_audio_delayed_elst", "m4a_aac"])
def test_every_field_extreme_native_answers_as_the_fast_path(name: str) -> None:
    """Exhaustively: every size and count field, and the first words of every leaf box
    (durations, timescales, edit lists, flags), set to extreme values: the index builds
    or refuses the file with a media error (an empty sbgp once raised IndexError), is
    finished, and the compiled planner gives the fast path's answer."""
    data = source(f"case:{name}")
    boxes = walk(data)
    blobs = [
        put(data, field.offset, field.width, value)
        for field in fields(data, boxes)
        for value in extreme_values(field, data)
    ]
    blobs += [
        put(data, at, 4, value)
        for box in boxes
        if box.type not in MUTATION_CONTAINERS and box.type != b"mdat"
        for at in range(box.body, min(box.end - 3, box.body + 64), 4)
        for value in (0, 2**31, 2**32 - 1)
    ]
    planned = 0
    for blob in blobs:
        try:
            index = run_bytes(read_index(len(blob)), blob)
            index.finish()
        except MediaError:
            continue
        for pair in [(0.5, 1.5), (1.0, None), (None, 0.7), (0.0, None)]:
            for audio_only in (False, True):
                clip = functools.partial(index.clip, *pair, audio_only=audio_only)
                assert _caught(clip) == _caught(functools.partial(clip, native=False)), pair
        planned += sum(p.planned for p in index.planners.values() if p is not None)
    assert planned or not packing.COMPILED  # most leave a file the compiled planner plans
