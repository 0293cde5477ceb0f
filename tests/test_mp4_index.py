"""The index-based clip planner against the planner it replaced (`mp4_seek_oracle`):
byte-identical plans, and the same errors, for any start and end on every MP4 we have."""

from __future__ import annotations

import functools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_matrix import MP4_CASES, SHARED_MEDIA, media
from mp4_rewrite import rewrite
from mp4_seek_oracle import clip_plan as oracle_clip_plan
from vodedge.media.errors import MalformedMedia, MediaError
from vodedge.media.mp4 import cuts
from vodedge.media.mp4.index import Mp4Index, TrackIndex, read_index
from vodedge.media.mp4.seek import clip_plan
from vodedge.media.plan import Plan
from vodedge.media.plan_columns import ColumnPlan, piece_count
from vodedge.media.reading import run_bytes

SHARED = sorted(
    p.name for p in SHARED_MEDIA.glob("*") if p.suffix in {".mp4", ".mov", ".3gp", ".m4a"}
)
REWRITTEN = [("mp4_h264_bframes_aac", "all"), ("mp4_two_languages", "co64")]
SOURCES = (
    [f"case:{name}" for name in MP4_CASES]
    + [f"shared:{name}" for name in SHARED]
    + [f"rewrite:{name}:{how}" for name, how in REWRITTEN]
)

Outcome = Plan | tuple[str, str]


@functools.cache
def source(spec: str) -> bytes:
    """The bytes of a test source named by its spec."""
    kind, _, rest = spec.partition(":")
    if kind == "case":
        return media(rest).read_bytes()
    if kind == "shared":
        return (SHARED_MEDIA / rest).read_bytes()
    name, _, how = rest.partition(":")
    return rewrite(media(name).read_bytes(), how)


@functools.cache
def indexed(spec: str) -> Mp4Index | MediaError:
    """The source's index, or the error that refuses it."""
    data = source(spec)
    try:
        return run_bytes(read_index(len(data)), data)
    except MediaError as exc:
        return exc


def outcome_of(thunk: functools.partial[Plan]) -> Outcome:
    """A plan, or the type and message of the media error raised instead."""
    try:
        return thunk()
    except MediaError as exc:
        return (type(exc).__name__, str(exc))


def anchors(index: Mp4Index | MediaError) -> list[float]:
    """Instants where clips change: every track's first, last and sync samples, and a
    spread of others, each also nudged by a hair either way."""
    if isinstance(index, MediaError):
        return [0.0, 1.0]
    out: list[float] = [0.0]
    for track in index.tracks.values():
        if not isinstance(track, TrackIndex):
            continue
        picks = {0, 1, track.count - 1, track.count // 2}
        picks.update(range(0, track.count, max(track.count // 40, 1)))
        if track.sync is not None:
            picks.update(int(n) - 1 for n in track.sync[:50] if 0 < n <= track.count)
        for i in sorted(p for p in picks if 0 <= p < track.count):
            moment = track.time(i)
            out += [moment, moment - 1e-9, moment + 1e-9]
        out.append(track.time(track.count - 1) + 10.0)
    return out


@st.composite
def bounds(draw: st.DrawFn, spec: str) -> tuple[float | None, float | None]:
    """A (start, end) pair: absent, on or beside a sample, anywhere, or out of order."""
    points = anchors(indexed(spec))
    top = max(points) + 1.0
    point = st.one_of(
        st.sampled_from(points).map(lambda p: max(p, 0.0)),
        st.floats(0.0, top, allow_nan=False),
        st.sampled_from([-1.0, float("inf")]),
    )
    start = draw(st.one_of(st.none(), point))
    end = draw(
        st.one_of(
            st.none(),
            point,
            st.floats(0.0, 12.0).map(lambda d: (start or 0.0) + d),
        )
    )
    return start, end


@pytest.mark.parametrize("spec", SOURCES)
@pytest.mark.parametrize("audio_only", [True, False], ids=["audio", "full"])
def test_index_plans_equal_the_oracle(spec: str, audio_only: bool) -> None:
    """For random bounds, the indexed planner returns the oracle's plan byte for byte,
    or the same error with the same message."""
    data = source(spec)
    index = indexed(spec)
    examples = 12 if len(data) > 20_000_000 else 40

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(bounds(spec))
    def check(pair: tuple[float | None, float | None]) -> None:
        start, end = pair
        expected = outcome_of(
            functools.partial(
                run_bytes,
                oracle_clip_plan(len(data), start=start, end=end, audio_only=audio_only),
                data,
            )
        )
        got = outcome_of(
            functools.partial(
                run_bytes,
                clip_plan(len(data), start=start, end=end, audio_only=audio_only),
                data,
            )
        )
        if isinstance(index, Mp4Index) and not (isinstance(got, tuple) and got[0] == "InvalidSeek"):
            # The warm path, as the edge uses it, answers the same as the cold one.
            warm = outcome_of(functools.partial(index.clip, start, end, audio_only=audio_only))
            assert warm == got
        assert got == expected
        if isinstance(got, Plan):
            assert got.render(data) == expected.render(data)  # type: ignore[union-attr]

    check()


def test_index_is_reused_across_clips() -> None:
    """One index answers many clips, each equal to a cold plan of the same bounds."""
    data = media("mp4_h264_bframes_aac").read_bytes()
    index = run_bytes(read_index(len(data)), data)
    for start, end in [(0.1, 0.9), (1.2, None), (None, 0.5), (0.5, 1.5)]:
        cold = run_bytes(clip_plan(len(data), start=start, end=end), data)
        assert index.clip(start, end) == cold


def test_broken_track_fails_only_the_clips_that_need_it() -> None:
    """A video track without `stts` fails full clips, each time with a new exception
    (no traceback chain grows on a long-lived index), while audio-only clips work."""
    data = media("mp4_h264_aac").read_bytes()
    at = data.index(b"stts")  # the first track's, the video
    broken = data[:at] + b"free" + data[at + 4 :]
    index = run_bytes(read_index(len(broken)), broken)
    raised = []
    for _ in range(2):
        with pytest.raises(MalformedMedia, match="has no stts") as caught:
            index.clip(0.5, None)
        raised.append(caught.value)
    assert raised[0] is not raised[1]
    assert raised[1].__traceback__ is not None
    assert index.clip(0.5, None, audio_only=True).size > 0


def moov_flips(data: bytes) -> st.SearchStrategy[list[tuple[int, int]]]:
    """One to three (offset, value) changes of bytes inside the file's moov."""
    at = data.index(b"moov") - 4
    length = int.from_bytes(data[at : at + 4], "big")
    change = st.tuples(st.integers(at + 8, at + length - 1), st.integers(0, 255))
    return st.lists(change, min_size=1, max_size=3)


def flipped(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    """`data` with the bytes at those offsets set to those values."""
    mutated = bytearray(data)
    for offset, value in flips:
        mutated[offset] = value
    return bytes(mutated)


MUTATED = ["mp4_h264_bframes_aac", "mp4_audio_delayed_elst", "mov_h264_pcm_s16le", "m4a_aac"]


@pytest.mark.parametrize("name", MUTATED)
def test_mutated_moov_answers_like_the_oracle(name: str) -> None:
    """Bytes of the moov changed at random: the same plan or the same error as the
    oracle; where the oracle crashed (not a media error), a media error or a plan."""
    data = media(name).read_bytes()

    @settings(
        max_examples=int(os.environ.get("MUT_N", "150")),
        deadline=None,
        database=None,
        # A loaded CI machine makes the oracle's runs slow, not wrong.
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        moov_flips(data),
        st.sampled_from([(0.5, 1.5), (1.0, None), (None, 0.7), (0.0, None)]),
        st.booleans(),
    )
    def check(
        flips: list[tuple[int, int]], pair: tuple[float | None, float | None], audio_only: bool
    ) -> None:
        blob = flipped(data, flips)
        start, end = pair
        try:
            expected: Outcome = outcome_of(
                functools.partial(
                    run_bytes,
                    oracle_clip_plan(len(blob), start=start, end=end, audio_only=audio_only),
                    blob,
                )
            )
        except Exception:  # the oracle's own crashes (IndexError, ...) are not the spec
            expected = ("crash", "")
        got = outcome_of(
            functools.partial(
                run_bytes, clip_plan(len(blob), start=start, end=end, audio_only=audio_only), blob
            )
        )
        # The oracle never checked that stss names samples of the track (it crashed or
        # planned from garbage); the index refuses such a file, whatever else is wrong.
        stss_refusal = (
            isinstance(got, tuple)
            and got[0] == "MalformedMedia"
            and (got[1].startswith("stss of track ") and " names sample " in got[1])
        )
        if expected != ("crash", "") and not stss_refusal:
            assert got == expected

    check()


@pytest.mark.parametrize("spec", SOURCES)
@pytest.mark.parametrize("audio_only", [True, False], ids=["audio", "full"])
def test_fast_path_equals_the_general_path(spec: str, audio_only: bool) -> None:
    """The fast path (tables sliced from runs and chunks prepared once, the moov rebuilt
    around places walked once) gives the general path's plan byte for byte, or the
    same error; both run on the same warm index, which also checks that neither
    leaves state that changes the other's answer."""
    index = indexed(spec)
    if not isinstance(index, Mp4Index):
        pytest.skip(f"not indexable: {index}")

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(bounds(spec), st.booleans())
    def check(pair: tuple[float | None, float | None], general_first: bool) -> None:
        start, end = pair
        fast = functools.partial(index.clip, start, end, audio_only=audio_only)
        general = functools.partial(fast, general=True)
        if general_first:
            expected, got = outcome_of(general), outcome_of(fast)
        else:
            got, expected = outcome_of(fast), outcome_of(general)
        assert got == expected

    check()


@pytest.mark.parametrize("spec", SOURCES)
@pytest.mark.parametrize("audio_only", [True, False], ids=["audio", "full"])
def test_finished_fast_path_equals_the_general_path(spec: str, audio_only: bool) -> None:
    """Once finished (the tables warm clips read: bytes before each sample, stsc rows
    renumbered at once, stco entries shifted at once, tracks of chunks apart laid out
    a span per chunk), the fast path still gives the general path's plan or error."""
    data = source(spec)
    try:
        index = run_bytes(read_index(len(data)), data)
    except MediaError:
        pytest.skip("not indexable")
    index.finish()

    @settings(
        max_examples=40,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(bounds(spec))
    def check(pair: tuple[float | None, float | None]) -> None:
        start, end = pair
        fast = functools.partial(index.clip, start, end, audio_only=audio_only)
        assert outcome_of(fast) == outcome_of(functools.partial(fast, general=True))

    check()


@pytest.mark.parametrize("name", ["mp4_h264_bframes_aac", "mp4_two_languages", "mp4_long_30min"])
def test_common_files_take_the_fast_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """H.264/AAC files (B-frames, several audio tracks, the 30-minute file) are clipped
    without the general path, full and audio-only, whatever the bounds."""
    data = source(f"case:{name}")
    index = run_bytes(read_index(len(data)), data)
    expected = {
        (start, end, audio_only): index.clip(start, end, audio_only=audio_only, general=True)
        for start in (None, 0.0, 0.3, 1.7)
        for end in (None, 0.9, 2.5)
        for audio_only in (False, True)
        if (end or 9e9) > (start or 0.0)
    }

    def refuse(self: Mp4Index, cuts: object) -> Plan:
        raise AssertionError("the general path was asked")

    monkeypatch.setattr(Mp4Index, "_plan", refuse)
    for (start, end, audio_only), plan in expected.items():
        assert index.clip(start, end, audio_only=audio_only) == plan
    # And once finished (the table of the bytes before each sample read instead of
    # sums of a few samples' sizes), the same plans.
    index.finish()
    for (start, end, audio_only), plan in expected.items():
        assert index.clip(start, end, audio_only=audio_only) == plan


@pytest.mark.parametrize("small", [0, 1 << 30], ids=["arrays", "lists"])
def test_fast_path_lists_and_arrays_agree(small: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cut of few chunks is handled as Python lists, of many as numpy arrays: forced
    either way, every clip is the general path's."""
    monkeypatch.setattr(cuts, "SMALL", small)
    for name in ("mp4_h264_bframes_aac", "mp4_two_languages", "mp4_long_30min"):
        data = source(f"case:{name}")
        index = run_bytes(read_index(len(data)), data)
        for start, end in [(None, None), (0.3, 1.7), (1.0, None), (None, 0.8), (100.0, 112.5)]:
            for audio_only in (False, True):
                fast = functools.partial(index.clip, start, end, audio_only=audio_only)
                assert outcome_of(fast) == outcome_of(functools.partial(fast, general=True))


def test_many_spans_are_columns_that_answer_as_spans() -> None:
    """An open-ended audio-only clip of the 30-minute file (some 2,000 spans) keeps its
    spans as columns: remapped into the stored audio samples before its Span tuples
    exist, then compared piece for piece, it answers as the general path's plan does
    (pieces, size, piece count, output starts, slices, the remap)."""
    data = source("case:mp4_long_30min")
    index = run_bytes(read_index(len(data)), data)
    audio = index.audio_map()
    for start in (0.0, 333.3, 1700.0):
        plan = index.clip(start, None, audio_only=True)
        reference = index.clip(start, None, audio_only=True, general=True)
        assert isinstance(plan, ColumnPlan) and not isinstance(reference, ColumnPlan)
        assert piece_count(plan) == len(reference.pieces)
        assert audio.remap(plan) == audio.remap(reference)
        assert plan == reference and plan.size == reference.size
        assert plan.output_starts() == reference.output_starts()
        for lo, hi in [(0, 100), (5_000, 2_000_000), (plan.size - 7, plan.size)]:
            assert plan.slice(lo, hi) == reference.slice(lo, hi)
