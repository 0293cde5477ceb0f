"""MP4 audio extraction against the ffmpeg oracle, over the generated media matrix.

For every case: extract with vodedge's Plan, then ffprobe/ffmpeg must agree
that the output has no video, the same audio streams (codec, rate, channels,
language) and byte-identical audio packets with identical timestamps. A few
structural rules of the issue are checked with the tests' own box walker
(kept tracks untouched but for chunk offsets, `stco` when offsets fit, `mvhd`
duration and next_track_ID). The same runs over byte-level rewrites of some
cases, and deliberately broken files must give the right typed error.
"""

from __future__ import annotations

import hashlib
import os
import struct
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

import mp4_rewrite as rw
from media_matrix import CACHE_DIR, CASES, FLV_CASES, MP4_CASES, Case, cache_key, media
from oracle import (
    OracleError,
    audio_framemd5,
    audio_summary,
    demux_errors,
    extract_mp4,
    first_diff,
    framemd5,
    probe,
    streams_of,
)

# Filler and vendor boxes the extractor may keep or drop; tref may lose the
# references to dropped tracks. Everything else in a kept trak must survive.
IGNORED_IN_TRAK = frozenset({b"free", b"skip", b"wide", b"uuid", b"tref", b"stco", b"co64"})


# Cases where the output is right but ffmpeg reads it differently, each with why.
KNOWN_DIFFERENCES = {
    "ismv_h264_aac": "ffmpeg reports the first audio packet's duration as 232200 instead of "
    "232199 ticks once the video fragments are gone (the audio tfxd time is -232200); every "
    "packet's data, size, dts and pts are identical",
}


def _case_params(cases: dict[str, Case], *, known: bool = False) -> list[object]:
    params = []
    for name, case in cases.items():
        marks = [pytest.mark.slow] if case.slow else []
        if known and name in KNOWN_DIFFERENCES:
            marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_DIFFERENCES[name]))
        params.append(pytest.param(case, id=name, marks=marks))
    return params


def _error_code(exc: BaseException) -> str:
    from vodedge.media.errors import MediaError

    assert isinstance(exc, MediaError), f"not a MediaError: {type(exc).__name__}: {exc}"
    return exc.code


# --- the structural oracle (our own box walker) ----------------------------------


def _tracks(top: list[rw.Box]) -> dict[int, tuple[bytes, rw.Box]]:
    """track_ID -> (handler, trak) of the file's movie."""
    out: dict[int, tuple[bytes, rw.Box]] = {}
    for trak in rw.find_all(top, "moov/trak"):
        track_id, handler, _ = rw.trak_fields(trak)
        out[track_id] = (handler, trak)
    return out


def _chunk_count(trak: rw.Box) -> int:
    for path in ("mdia/minf/stbl/stco", "mdia/minf/stbl/co64"):
        found = rw.find_all(trak.children or [], path)
        if found:
            return int.from_bytes(found[0].payload[4:8], "big")
    return 0


def check_structure(src: bytes, out: bytes) -> None:
    """The issue's rules on boxes, checked with the tests' own parser."""
    src_top, out_top = rw.parse(src), rw.parse(out)
    out_types = [b.type for b in out_top]
    assert out_types.count(b"moov") == 1, f"output top level: {out_types}"
    assert out_types[0] == b"ftyp" or b"ftyp" not in [b.type for b in src_top], out_types
    moov_at = out_types.index(b"moov")
    first_data = next((i for i, t in enumerate(out_types) if t in (b"mdat", b"moof")), None)
    assert first_data is None or moov_at < first_data, f"moov must lead the data: {out_types}"

    src_tracks, out_tracks = _tracks(src_top), _tracks(out_top)
    audio_ids = {tid for tid, (handler, _) in src_tracks.items() if handler == b"soun"}
    assert set(out_tracks) == audio_ids, (
        f"output tracks {sorted(out_tracks)} != input audio tracks {sorted(audio_ids)}"
    )
    for tid, (_, trak) in out_tracks.items():
        src_trak = src_tracks[tid][1]
        want = rw.leaf_signature(src_trak, IGNORED_IN_TRAK)
        got = rw.leaf_signature(trak, IGNORED_IN_TRAK)
        changed = sorted({p for p, _ in set(want) ^ set(got)})
        assert got == want, f"track {tid}: boxes changed beyond chunk offsets: {changed}"
        assert _chunk_count(trak) == _chunk_count(src_trak), f"track {tid}: chunk count changed"
    for path, box in rw.walk(out_top):
        # Offsets of these small files fit 32 bits, so co64 is not allowed.
        assert box.type != b"co64", f"{path}: co64 written although every offset fits stco"

    out_moov = rw.find_all(out_top, "moov")[0]
    src_moov = rw.find_all(src_top, "moov")[0]
    _, out_duration, next_id = rw.mvhd_fields(out_moov)
    _, src_duration, _ = rw.mvhd_fields(src_moov)
    assert next_id > max(out_tracks), f"next_track_ID {next_id} <= a kept track id"
    kept = [rw.trak_fields(t)[2] for _, t in out_tracks.values()]
    every = [rw.trak_fields(t)[2] for _, t in src_tracks.values()]
    if src_duration == max(every):  # only when the input itself follows the rule
        assert out_duration == max(kept), (
            f"mvhd duration {out_duration} != longest kept track {max(kept)}"
        )
    src_udta = rw.find_all(src_top, "moov/udta")
    if src_udta:
        assert rw.find_all(out_top, "moov/udta"), "movie-level udta dropped"

    for traf in rw.find_all(out_top, "moof/traf"):
        tfhd = rw.child(traf, b"tfhd")
        assert tfhd is not None
        (tid,) = struct.unpack_from(">I", tfhd.payload, 4)
        assert tid in audio_ids, f"a traf of non-audio track {tid} survived"
    for tfra in rw.find_all(out_top, "mfra/tfra"):
        (tid,) = struct.unpack_from(">I", tfra.payload, 4)
        assert tid in audio_ids, f"a tfra of non-audio track {tid} survived"
    for sidx in (b for b in out_top if b.type == b"sidx"):
        (tid,) = struct.unpack_from(">I", sidx.payload, 4)
        assert tid in audio_ids, f"a sidx of non-audio track {tid} survived"


def check_audio_output(src_path: Path, out_path: Path) -> None:
    """ffmpeg's verdict: no video, the same audio streams, the same audio packets."""
    src_info, out_info = probe(src_path), probe(out_path)
    kinds = sorted({s.get("codec_type", "?") for s in out_info["streams"]})
    assert kinds == ["audio"], f"output streams are {kinds}, want only audio"
    assert audio_summary(out_info) == audio_summary(src_info)
    for tag in ("title", "encoder"):
        want = (src_info["format"].get("tags") or {}).get(tag)
        got = (out_info["format"].get("tags") or {}).get(tag)
        assert got == want, f"movie-level metadata {tag!r}: {got!r}, want {want!r}"
    want_md5, got_md5 = audio_framemd5(src_path), audio_framemd5(out_path)
    assert got_md5 == want_md5, "audio packets differ: " + first_diff(want_md5, got_md5)
    if not demux_errors(src_path):
        assert demux_errors(out_path) == "", "ffmpeg complains about the output"


def run_case(src_path: Path, tmp_path: Path, **limits: int) -> bytes:
    """Extract `src_path`, check everything, and return the output bytes."""
    src = src_path.read_bytes()
    out = extract_mp4(src, **limits)
    out_path = tmp_path / ("out" + src_path.suffix)
    out_path.write_bytes(out)
    check_audio_output(src_path, out_path)
    check_structure(src, out)
    return out


# --- the matrix -------------------------------------------------------------------


@pytest.mark.parametrize("case", _case_params(MP4_CASES, known=True))
def test_extract_matrix(case: Case, tmp_path: Path) -> None:
    """Every generated MP4-family case extracts exactly (or fails with its code)."""
    src_path = media(case.name)
    if case.error:
        with pytest.raises(Exception) as info:
            extract_mp4(src_path.read_bytes())
        assert _error_code(info.value) == case.error
        return
    t0 = time.monotonic()
    out = run_case(src_path, tmp_path)
    if case.slow:
        # Generous: catches tables handled in quadratic time, not a benchmark.
        assert time.monotonic() - t0 < 60, "30-minute file took over a minute to check"
    if case.has_video:
        assert len(out) < src_path.stat().st_size, "output not smaller than the input"


@pytest.mark.parametrize("case", _case_params(MP4_CASES))
def test_plan_reads_only_metadata(case: Case) -> None:
    """The plan (and its size) comes from the boxes' headers and moov, not the media."""
    if case.error:
        pytest.skip("no plan for an error case")
    from vodedge.media.mp4.audio import audio_plan
    from vodedge.media.reading import run

    data = media(case.name).read_bytes()
    metadata = sum(
        b.src_end - b.src_start
        for b in rw.parse(data)
        if b.type != b"mdat" and b.src_end is not None and b.src_start is not None
    )
    reads: list[tuple[int, int]] = []

    def read_at(offset: int, length: int) -> bytes:
        reads.append((offset, length))
        return data[offset : offset + length]

    plan = run(audio_plan(len(data)), read_at)
    read_total = sum(n for _, n in reads)
    assert read_total <= 2 * metadata + 128 * 1024, (
        f"read {read_total} bytes in {len(reads)} requests to plan a file of "
        f"{len(data)} bytes with {metadata} bytes outside mdat"
    )
    out = plan.render(data)
    # Slices are what HTTP Range will serve: they must match the whole output.
    for a, b in [(0, 7), (5, plan.size // 2), (plan.size // 3, plan.size), (plan.size - 3, 10**9)]:
        assert plan.slice(a, b).render(data) == out[a:b], f"slice({a}, {b})"


# --- the matrix checks its own recipes --------------------------------------------


@pytest.mark.parametrize("case", _case_params(CASES))
def test_matrix_case_is_what_it_claims(case: Case) -> None:
    """Each generated file holds what its case says (so tests test what they name)."""
    path = media(case.name)
    info = probe(path)
    assert bool(streams_of(info, "video")) == case.has_video
    assert [s["codec_name"] for s in streams_of(info, "audio")] == list(case.audio_codecs)
    if case.languages:
        langs = [(s.get("tags") or {}).get("language") for s in streams_of(info, "audio")]
        assert langs == list(case.languages)
    data = path.read_bytes()
    if case.ext in ("mp3", "mp2", "ts", "m2ts"):
        return  # trial-playback inputs: their own tests check what each holds
    if case.name in FLV_CASES:
        assert data[:3] == b"FLV"
        assert (b"filepositions" in data[:4096]) == case.keyframe_index
        return
    top = rw.parse(data)
    paths = {p for p, _ in rw.walk(top)}
    for want in case.boxes:
        assert want in paths, f"{case.name} lacks {want}"
    if case.moov_first is not None:
        types = [b.type for b in top]
        assert (types.index(b"moov") < types.index(b"mdat")) == case.moov_first, types
    if case.name == "mp4_audio_delayed_elst":
        # The point of the case: the audio track starts with an empty edit.
        tracks = _tracks(top)
        audio = next(t for h, t in tracks.values() if h == b"soun")
        elst = rw.find_all(audio.children or [], "edts/elst")[0]
        _, _, rest = rw.full_box(elst)
        first_media_time = struct.unpack_from(">i", rest, 8)[0]
        assert first_media_time == -1, "audio edit list does not start with an empty edit"


# --- byte-level rewrites ------------------------------------------------------------

REWRITE_SOURCES = [
    "mp4_h264_aac",
    "mp4_h264_aac_faststart",
    "mp4_two_languages",
    "mov_h264_pcm_s16le",
    "m4a_two_languages",
    "mp4_audio_delayed_elst",
    "mp4_frag_default_base_moof",
    "mp4_frag_base_data_offset",
    "mp4_frag_dash_sidx",
    "mp4_frag_hybrid",
]

_REWRITER_HASH = hashlib.sha256(Path(rw.__file__).read_bytes()).hexdigest()[:12]


def rewritten(name: str, rewrite: str) -> Path:
    """Case `name` rewritten by `rewrite`, cached beside the generated media."""
    src = media(name)
    key = f"{cache_key(name)}-{rewrite}-{_REWRITER_HASH}"
    out = CACHE_DIR / "rewritten" / f"{name}-{key}{src.suffix}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        tmp.write_bytes(rw.rewrite(src.read_bytes(), rewrite))
        os.replace(tmp, out)
    return out


FILLERS = {b"free", b"skip", b"uuid", b"wide"}

REWRITE_CHECKS: dict[str, Callable[[list[rw.Box]], bool]] = {
    "largesize": lambda top: all(b.large for _, b in rw.walk(top) if b.type != b"moof"),
    "co64": lambda top: not rw.find_all(top, "moov/trak/mdia/minf/stbl/stco"),
    "fillers": lambda top: {b.type for _, b in rw.walk(top)} >= FILLERS,
    "split_mdat": lambda top: [b.type for b in top].count(b"mdat") > 1,
    "size0_last": lambda top: top[-1].size_field == 0,
    "all": lambda top: top[-1].size_field == 0 and any(b.large for b in top),
}


@pytest.mark.parametrize("rewrite", list(rw.REWRITES))
@pytest.mark.parametrize("name", REWRITE_SOURCES)
def test_rewriter_is_faithful(name: str, rewrite: str) -> None:
    """A rewrite changes the layout it names and not one packet of any stream."""
    path = rewritten(name, rewrite)
    top = rw.parse(path.read_bytes())
    assert REWRITE_CHECKS[rewrite](top), f"{rewrite} did not take effect on {name}"
    want, got = framemd5(media(name), "0"), framemd5(path, "0")
    assert got == want, f"{rewrite} broke {name}: " + first_diff(want, got)


@pytest.mark.parametrize("rewrite", list(rw.REWRITES))
@pytest.mark.parametrize("name", REWRITE_SOURCES)
def test_extract_rewritten(name: str, rewrite: str, tmp_path: Path) -> None:
    """Extraction is exact on layouts ffmpeg never writes (64-bit headers, co64, ...)."""
    run_case(rewritten(name, rewrite), tmp_path)


# --- broken inputs: the right typed error ---------------------------------------------


def _expect_error(data: bytes, codes: set[str], **limits: int) -> str:
    with pytest.raises(Exception) as info:
        extract_mp4(data, **limits)
    code = _error_code(info.value)
    assert code in codes, f"error code {code!r} ({info.value}), want one of {sorted(codes)}"
    return code


def _audio_trak(top: list[rw.Box]) -> rw.Box:
    return next(t for h, t in _tracks(top).values() if h == b"soun")


def _leaf(trak: rw.Box, kind: str) -> rw.Box:
    return rw.find_all(trak.children or [], f"mdia/minf/stbl/{kind}")[0]


def _patched(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def test_error_garbage() -> None:
    """Bytes that are no box structure at all."""
    _expect_error(bytes(range(256)) * 8, {"not_iso_bmff"})


def test_error_flv_given_to_mp4() -> None:
    """An FLV is not ISO BMFF."""
    _expect_error(media("flv_h264_aac").read_bytes()[:100_000], {"not_iso_bmff"})


def test_error_empty() -> None:
    """Zero bytes."""
    _expect_error(b"", {"not_iso_bmff", "truncated_media", "no_moov"})


def test_error_no_moov() -> None:
    """ftyp and mdat but no moov."""
    top = rw.parse(media("mp4_h264_aac").read_bytes())
    data = rw.serialize([b for b in top if b.type != b"moov"])
    _expect_error(data, {"no_moov"})


def test_error_truncated_in_moov() -> None:
    """A faststart file cut in the middle of its moov."""
    data = media("mp4_h264_aac_faststart").read_bytes()
    moov = rw.find_all(rw.parse(data), "moov")[0]
    assert moov.src_start is not None and moov.src_end is not None
    _expect_error(data[: (moov.src_start + moov.src_end) // 2], {"truncated_media"})


def test_error_truncated_tail_moov_lost() -> None:
    """A tail-moov file cut inside mdat: the moov is gone, the mdat claims more."""
    data = media("mp4_h264_aac").read_bytes()
    _expect_error(data[: len(data) // 2], {"truncated_media", "no_moov"})


def test_error_truncated_media_data() -> None:
    """A faststart file cut inside mdat: chunk offsets point past the end."""
    data = media("mp4_h264_aac_faststart").read_bytes()
    _expect_error(data[: len(data) * 2 // 3], {"truncated_media", "malformed_media"})


def test_error_moov_over_limit() -> None:
    """A moov larger than the configured maximum."""
    _expect_error(media("mp4_h264_aac").read_bytes(), {"limit_exceeded"}, max_moov=1024)


def test_error_chunk_offset_past_end() -> None:
    """An audio chunk offset beyond the end of the file."""
    data = media("mp4_h264_aac_faststart").read_bytes()
    stco = _leaf(_audio_trak(rw.parse(data)), "stco")
    assert stco.src_payload is not None
    bad = _patched(data, stco.src_payload + 8, struct.pack(">I", len(data) + 1000))
    _expect_error(bad, {"malformed_media", "truncated_media"})


def test_error_huge_sample_count_small_box() -> None:
    """An stsz claiming 2^31 entries in a box of a few kB: an error, not an allocation."""
    data = media("mp4_h264_aac").read_bytes()
    stsz = _leaf(_audio_trak(rw.parse(data)), "stsz")
    assert stsz.src_payload is not None
    # sample_size 0 (a table follows) and a count the box cannot hold.
    bad = _patched(data, stsz.src_payload + 4, struct.pack(">II", 0, 0x7FFFFFFF))
    tracemalloc.start()
    try:
        _expect_error(bad, {"malformed_media", "limit_exceeded"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"peak allocation {peak} bytes for a {len(data)}-byte file"


def test_error_counts_disagree() -> None:
    """stsz and stts disagreeing on the number of samples."""
    data = media("mp4_h264_aac_faststart").read_bytes()
    stsz = _leaf(_audio_trak(rw.parse(data)), "stsz")
    assert stsz.src_payload is not None
    (count,) = struct.unpack_from(">I", data, stsz.src_payload + 8)
    bad = _patched(data, stsz.src_payload + 8, struct.pack(">I", count - 1))
    _expect_error(bad, {"malformed_media"})


def test_error_stsc_first_chunk_zero() -> None:
    """stsc entries number chunks from 1; 0 is malformed."""
    data = media("mp4_h264_aac_faststart").read_bytes()
    stsc = _leaf(_audio_trak(rw.parse(data)), "stsc")
    assert stsc.src_payload is not None
    bad = _patched(data, stsc.src_payload + 8, struct.pack(">I", 0))
    _expect_error(bad, {"malformed_media"})


def test_error_child_larger_than_parent() -> None:
    """A trak whose size runs past the end of its moov."""
    data = media("mp4_h264_aac_faststart").read_bytes()
    top = rw.parse(data)
    moov = rw.find_all(top, "moov")[0]
    trak = _audio_trak(top)
    assert trak.src_start is not None and moov.src_end is not None
    bad = _patched(data, trak.src_start, struct.pack(">I", moov.src_end - trak.src_start + 64))
    _expect_error(bad, {"malformed_media"})


def test_error_box_size_below_header() -> None:
    """A box inside the moov whose size (4) is smaller than its own header."""
    data = media("mp4_h264_aac_faststart").read_bytes()
    trak = _audio_trak(rw.parse(data))
    tkhd = rw.child(trak, b"tkhd")
    assert tkhd is not None and tkhd.src_start is not None
    bad = _patched(data, tkhd.src_start, struct.pack(">I", 4))
    _expect_error(bad, {"malformed_media"})


def test_oracle_sees_one_flipped_byte(tmp_path: Path) -> None:
    """The oracle tells one changed audio byte apart (or these tests prove nothing)."""
    src = media("mp4_h264_aac_faststart")
    data = src.read_bytes()
    stco = _leaf(_audio_trak(rw.parse(data)), "stco")
    assert stco.src_payload is not None
    (first,) = struct.unpack_from(">I", data, stco.src_payload + 8)
    changed = tmp_path / "changed.mp4"
    changed.write_bytes(_patched(data, first + 3, bytes([data[first + 3] ^ 0xFF])))
    assert audio_framemd5(changed) != audio_framemd5(src)
    with pytest.raises(OracleError):
        audio_framemd5(media("mp4_video_only"))


def test_oracle_sees_a_lost_edit_list(tmp_path: Path) -> None:
    """Dropping the audio edit list changes the framemd5 (timestamps are compared)."""
    src = media("mp4_audio_delayed_elst")
    top = rw.parse(src.read_bytes())
    audio = _audio_trak(top)
    audio.children = [b for b in audio.children or [] if b.type != b"edts"]
    no_edits = tmp_path / "no-edits.mp4"
    no_edits.write_bytes(rw.serialize(top))
    assert audio_framemd5(no_edits) != audio_framemd5(src)
