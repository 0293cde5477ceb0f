"""The MP4 clip planner as it was before the index (`vodedge.media.mp4.index`), which
reads the whole `moov` into Python lists for every clip; kept as the oracle that the
indexed planner must equal byte for byte (tests/test_mp4_index.py)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate
from struct import Struct

from vodedge.media.errors import InvalidSeek, MalformedMedia, NoAudioTrack, UnsupportedMedia
from vodedge.media.mp4.boxes import Box, children, header_bytes, make_box
from vodedge.media.mp4.file import DEFAULT_MAX_MOOV, MAX_FTYP, read_box, scan_top_level
from vodedge.media.mp4.layout import DataLayout, settle_moov
from vodedge.media.mp4.movie import (
    Movie,
    Track,
    check_described,
    parse_movie,
    rebuild,
    set_duration_field,
)
from vodedge.media.mp4.tables import (
    SampleSizes,
    chunk_map,
    chunk_offsets_box,
    compress_runs,
    expand_runs,
    parse_chunk_offsets,
    parse_runs,
    parse_stsc,
    parse_stss,
    parse_stsz,
    parse_stz2,
    runs_box,
    stsc_box,
    stss_box,
    stsz_box,
)
from vodedge.media.plan import Plan, Span
from vodedge.media.reading import Reading
from vodedge.media.seeking import check_seek

_U32 = Struct(">I")
_ELST0 = Struct(">IiI")
_ELST1 = Struct(">QqI")

# Tracks a clip keeps; timecode, hint and metadata tracks describe the whole file.
CLIP_HANDLERS = frozenset({b"vide", b"soun", b"sbtl", b"subt", b"text", b"clcp"})
# Per-sample boxes of stbl that a cut would have to rewrite and that players
# do without; they are dropped from clips rather than left inconsistent.
DROPPED_IN_CLIPS = frozenset(
    {b"subs", b"stps", b"padb", b"cslg", b"saiz", b"saio", b"stdp", b"stsh"}
)


@dataclass(frozen=True, slots=True)
class Edits:
    """The parts of an edit list a cut needs: leading delay and media start."""

    delay: int  # movie timescale
    media_time: int  # media timescale
    version: int


def _edits(movie: Movie, track: Track) -> Edits | None:
    edts = next((b for b in children(movie.data, track.box) if b.type == b"edts"), None)
    if edts is None:
        return None
    elst = next((b for b in children(movie.data, edts) if b.type == b"elst"), None)
    if elst is None:
        return None
    payload = movie.payload(elst)
    if len(payload) < 8:
        raise MalformedMedia("elst box is too short")
    version = payload[0]
    entry = _ELST1 if version == 1 else _ELST0
    count = _U32.unpack_from(payload, 4)[0]
    if count > (len(payload) - 8) // entry.size:
        raise MalformedMedia(f"elst claims {count} entries, more than its box holds")
    delay = 0
    for index in range(count):
        duration, media_time, _rate = entry.unpack_from(payload, 8 + index * entry.size)
        if media_time == -1:
            delay += duration
            continue
        return Edits(delay, media_time, version)
    return Edits(delay, 0, version)


@dataclass(slots=True)
class TrackSamples:
    """A track's sample tables, expanded to one entry per sample where a cut needs it."""

    track: Track
    stbl: Box
    boxes: dict[bytes, Box]
    sizes: SampleSizes
    durations: list[int]
    times: list[float]  # presentation-aligned start of each sample, seconds
    ctts_version: int
    ctts: list[int] | None
    sync: list[int] | None  # 1-based sync sample numbers
    offsets: list[int]
    edits: Edits | None

    @property
    def count(self) -> int:
        """How many samples the track has."""
        return self.sizes.count


def _signed(value: int) -> int:
    return value - (1 << 32) if value & 0x80000000 else value


def _load(movie: Movie, track: Track) -> TrackSamples | None:
    if track.stbl is None:
        return None
    boxes = {child.type: child for child in reversed(children(movie.data, track.stbl))}
    if b"stsz" in boxes:
        sizes = parse_stsz(movie.payload(boxes[b"stsz"]))
    elif b"stz2" in boxes:
        sizes = parse_stz2(movie.payload(boxes[b"stz2"]))
    else:
        raise MalformedMedia(f"track {track.track_id} has no stsz or stz2")
    if sizes.count == 0:
        return None
    if b"stts" not in boxes:
        raise MalformedMedia(f"track {track.track_id} has no stts")
    durations = expand_runs(parse_runs(movie.payload(boxes[b"stts"]), "stts"), sizes.count, "stts")
    if len(durations) != sizes.count:
        raise MalformedMedia(
            f"stts of track {track.track_id} describes {len(durations)} samples, not {sizes.count}"
        )
    ctts: list[int] | None = None
    ctts_version = 0
    if b"ctts" in boxes:
        payload = movie.payload(boxes[b"ctts"])
        ctts_version = payload[0] if payload else 0
        ctts = [_signed(v) for v in expand_runs(parse_runs(payload, "ctts"), sizes.count, "ctts")]
        ctts += [0] * (sizes.count - len(ctts))
    sync = parse_stss(movie.payload(boxes[b"stss"])).tolist() if b"stss" in boxes else None
    offsets_box = boxes.get(b"stco") or boxes.get(b"co64")
    if offsets_box is None:
        raise MalformedMedia(f"track {track.track_id} has no stco or co64")
    offsets = parse_chunk_offsets(offsets_box.type, movie.payload(offsets_box)).tolist()
    edits = _edits(movie, track)
    if not track.timescale:
        raise MalformedMedia(f"track {track.track_id} has a timescale of 0")
    shift = edits.media_time if edits else 0
    delay = edits.delay / movie.timescale if edits and movie.timescale else 0.0
    scale = track.timescale
    times = [(dts - shift) / scale + delay for dts in accumulate(durations, initial=0)]
    times.pop()
    return TrackSamples(
        track, track.stbl, boxes, sizes, durations, times, ctts_version, ctts, sync, offsets, edits
    )


@dataclass(slots=True)
class Cut:
    """The samples `[first, stop)` of a track that a clip keeps; `begin` (source
    seconds) becomes the clip's time zero."""

    samples: TrackSamples
    first: int
    stop: int
    begin: float


def _sync_at_or_before(samples: TrackSamples, when: float) -> int:
    """The sync sample at or before `when` (every sample is one without stss)."""
    index = max(bisect_right(samples.times, when) - 1, 0)
    if samples.sync is None:
        return index
    position = bisect_right(samples.sync, index + 1) - 1
    if position < 0:
        return max(samples.sync[0] - 1, 0) if samples.sync else 0
    return samples.sync[position] - 1


def _cuts(
    tracks: list[TrackSamples], start: float | None, end: float | None, audio_only: bool
) -> list[Cut]:
    begin = start or 0.0
    if not audio_only and start is not None:
        video = next((t for t in tracks if t.track.handler == b"vide"), None)
        if video is not None:
            key = _sync_at_or_before(video, begin)
            # The other tracks start where the keyframe is shown, not decoded.
            shown = video.ctts[key] / video.track.timescale if video.ctts else 0.0
            begin = max(video.times[key] + shown, 0.0)
    cuts: list[Cut] = []
    for samples in tracks:
        if start is None:
            first = 0  # only the end is cut: every track keeps its beginning and edits
        elif samples.track.handler == b"vide" and not audio_only:
            first = _sync_at_or_before(samples, begin)
        else:
            first = max(bisect_right(samples.times, begin) - 1, 0)
        stop = samples.count if end is None else bisect_left(samples.times, end)
        if stop > first:
            cuts.append(Cut(samples, first, stop, begin))
    return cuts


def _sbgp(payload: memoryview, first: int, stop: int) -> bytes:
    """An `sbgp` payload for samples `[first, stop)`."""
    version = payload[0]
    head = 12 if version == 1 else 8
    if len(payload) < head + 4:
        raise MalformedMedia("sbgp box is too short")
    count = _U32.unpack_from(payload, head)[0]
    if count > (len(payload) - head - 4) // 8:
        raise MalformedMedia(f"sbgp claims {count} entries, more than its box holds")
    runs = [
        (
            _U32.unpack_from(payload, head + 4 + 8 * i)[0],
            _U32.unpack_from(payload, head + 8 + 8 * i)[0],
        )
        for i in range(count)
    ]
    values: list[int] = []
    for run_count, index in runs:
        take = min(run_count, stop - len(values))
        if take <= 0:
            break
        values.extend([index] * take)
    values += [0] * (stop - len(values))
    kept = compress_runs(values[first:stop])
    flat = b"".join(_U32.pack(c) + _U32.pack(v) for c, v in kept)
    return bytes(payload[:head]) + _U32.pack(len(kept)) + flat


@dataclass(slots=True)
class CutTables:
    """The rewritten tables of one cut, all but the chunk offsets."""

    boxes: dict[bytes, bytes]
    chunk_offsets: list[int]
    chunk_sizes: list[int]
    media_duration: int


def _cut_tables(movie: Movie, cut: Cut) -> CutTables:
    samples, first, stop = cut.samples, cut.first, cut.stop
    boxes: dict[bytes, bytes] = {}
    durations = samples.durations[first:stop]
    boxes[b"stts"] = runs_box(b"stts", 0, compress_runs(durations))
    if samples.ctts is not None:
        boxes[b"ctts"] = runs_box(
            b"ctts", samples.ctts_version, compress_runs(samples.ctts[first:stop])
        )
    if samples.sync is not None:
        boxes[b"stss"] = stss_box([n - first for n in samples.sync if first < n <= stop])
    boxes[b"stsz"] = stsz_box(samples.sizes, first, stop)
    if b"sdtp" in samples.boxes:
        payload = movie.payload(samples.boxes[b"sdtp"])
        if len(payload) >= 4 + stop:
            boxes[b"sdtp"] = make_box(
                b"sdtp", bytes(payload[:4]) + bytes(payload[4 + first : 4 + stop])
            )

    stsc_raw = samples.boxes.get(b"stsc")
    stsc = parse_stsc(movie.payload(stsc_raw)) if stsc_raw is not None else []
    chunks = chunk_map(stsc, len(samples.offsets), samples.count)
    prefix = samples.sizes.prefix()

    def bytes_before(index: int) -> int:
        return index * samples.sizes.constant if prefix is None else prefix[index]

    offsets: list[int] = []
    sizes: list[int] = []
    runs: list[tuple[int, int, int]] = []
    for chunk, chunk_first in enumerate(chunks.first_sample):
        lo = max(chunk_first, first)
        hi = min(chunk_first + chunks.samples[chunk], stop)
        if hi <= lo:
            continue
        offsets.append(samples.offsets[chunk] + bytes_before(lo) - bytes_before(chunk_first))
        sizes.append(bytes_before(hi) - bytes_before(lo))
        entry = (len(offsets), hi - lo, chunks.description[chunk])
        if not runs or runs[-1][1:] != entry[1:]:
            runs.append(entry)
    boxes[b"stsc"] = stsc_box(runs)
    return CutTables(boxes, offsets, sizes, sum(durations))


def _elst(cut: Cut, tables: CutTables, movie: Movie) -> tuple[bytes | None, int]:
    """The new `elst` (None when the track had none) and the track's movie duration."""
    samples = cut.samples
    media_scale = samples.track.timescale
    edits = samples.edits
    if cut.first == 0 and edits is not None:
        # A track that starts later than the clip keeps the rest of its delay.
        late = edits.delay / movie.timescale - cut.begin if movie.timescale else 0.0
        delay, media_time = max(round(late * movie.timescale), 0), edits.media_time
    else:
        delay = 0
        is_video = samples.track.handler == b"vide"
        media_time = samples.ctts[cut.first] if is_video and samples.ctts else 0
    media_time = max(media_time, 0)
    segment = max(tables.media_duration - media_time, 0) * movie.timescale // media_scale
    if edits is None:
        return None, tables.media_duration * movie.timescale // media_scale
    version = edits.version if segment <= 0xFFFFFFFF and delay <= 0xFFFFFFFF else 1
    entry = _ELST1 if version == 1 else _ELST0
    entries = ([entry.pack(delay, -1, 1 << 16)] if delay else []) + [
        entry.pack(segment, media_time, 1 << 16)
    ]
    payload = bytes([version, 0, 0, 0]) + _U32.pack(len(entries)) + b"".join(entries)
    return make_box(b"elst", payload), delay + segment


def clip_plan(
    size: int,
    *,
    start: float | None,
    end: float | None,
    audio_only: bool = False,
    max_moov: int = DEFAULT_MAX_MOOV,
) -> Reading[Plan]:
    """The plan of the ISO BMFF file of `size` bytes cut to `[start, end)` seconds.

    The full clip starts at the video sync sample at or before `start`, every
    other track at its sample holding that instant; an audio-only clip starts
    at the audio sample holding `start`. Timestamps of the clip start at zero.
    """
    check_seek(start, end)
    top = yield from scan_top_level(size)
    if top.first(b"moof") is not None:
        raise UnsupportedMedia("seeking in fragmented MP4 is not supported")
    moov_box = top.movie_box()
    ftyp_box = top.first(b"ftyp")
    ftyp = b"" if ftyp_box is None else (yield from read_box(ftyp_box, MAX_FTYP, "ftyp"))
    movie = parse_movie((yield from read_box(moov_box, max_moov, "moov")), moov_box.offset)

    wanted = [t for t in movie.tracks if (t.is_audio if audio_only else t.handler in CLIP_HANDLERS)]
    if audio_only and not wanted:
        raise NoAudioTrack("the file has no audio track")
    # A deliberate change made since (458ea39): an audio track without a sample
    # description is refused rather than clipped into an undecodable file.
    for track in wanted:
        if track.is_audio:
            check_described(track)
    loaded = [s for s in (_load(movie, track) for track in wanted) if s is not None]
    if not loaded:
        raise UnsupportedMedia("the file has no samples to clip")
    duration = max(s.times[-1] + s.durations[-1] / s.track.timescale for s in loaded)
    if start is not None and start >= duration:
        raise InvalidSeek(f"start ({start}) is past the end of the media ({duration:.3f} s)")
    cuts = _cuts(loaded, start, end, audio_only)
    if not cuts:
        raise InvalidSeek(f"no media between start ({start}) and end ({end})")

    replace: dict[int, bytes | None] = {}
    kept_ids = {cut.samples.track.track_id for cut in cuts}
    for track in movie.tracks:
        if track.track_id not in kept_ids:
            replace[track.box.offset] = None
    tables: dict[int, CutTables] = {}
    chunk_offsets: list[int] = []
    chunk_sizes: list[int] = []
    track_durations: list[int] = []
    for cut in cuts:
        track = cut.samples.track
        cut_tables = _cut_tables(movie, cut)
        for offset, length in zip(cut_tables.chunk_offsets, cut_tables.chunk_sizes, strict=True):
            if offset + length > size:
                raise MalformedMedia(
                    f"a chunk of track {track.track_id} at {offset} (+{length}) "
                    f"lies past the end of the file ({size} bytes)"
                )
            chunk_offsets.append(offset)
            chunk_sizes.append(length)
        tables[track.track_id] = cut_tables
        elst, track_duration = _elst(cut, cut_tables, movie)
        track_durations.append(track_duration)
        if elst is not None:
            edts = next(b for b in children(movie.data, track.box) if b.type == b"edts")
            replace[edts.offset] = make_box(b"edts", elst)
        replace[track.tkhd.offset] = make_box(
            b"tkhd",
            set_duration_field(bytes(movie.payload(track.tkhd)), "tkhd", track_duration, tkhd=True),
        )
        mdhd = _mdhd(movie, track)
        replace[mdhd.offset] = make_box(
            b"mdhd",
            set_duration_field(bytes(movie.payload(mdhd)), "mdhd", cut_tables.media_duration),
        )
    if movie.mvhd is not None:
        replace[movie.mvhd.offset] = make_box(
            b"mvhd",
            set_duration_field(bytes(movie.payload(movie.mvhd)), "mvhd", max(track_durations)),
        )

    layout = DataLayout.of(chunk_offsets, chunk_sizes)
    mdat_header = header_bytes(b"mdat", layout.total)

    positions: dict[int, list[int]] = {}
    first = 0
    for tid, cut_tables in tables.items():
        count = len(cut_tables.chunk_offsets)
        positions[tid] = layout.chunk_positions[first : first + count]
        first += count

    def build(base: int) -> bytes:
        edits = dict(replace)
        for cut in cuts:
            cut_tables = tables[cut.samples.track.track_id]
            new = dict(cut_tables.boxes)
            relative = positions[cut.samples.track.track_id]
            new[b"stco"] = chunk_offsets_box([base + p for p in relative])
            edits[cut.samples.stbl.offset] = _stbl(movie, cut, new)
        return rebuild(movie.data, movie.box, edits)

    moov = settle_moov(build, len(ftyp), movie.box.size, len(mdat_header))
    return Plan.head_and_spans(
        ftyp + moov + mdat_header, list(map(Span, layout.starts, layout.lengths))
    )


def _mdhd(movie: Movie, track: Track) -> Box:
    mdia = next(b for b in children(movie.data, track.box) if b.type == b"mdia")
    return next(b for b in children(movie.data, mdia) if b.type == b"mdhd")


def _stbl(movie: Movie, cut: Cut, new: dict[bytes, bytes]) -> bytes:
    """The `stbl` with its sample tables replaced, in the original box order."""
    parts: list[bytes] = []
    for child in children(movie.data, cut.samples.stbl):
        kind = {b"co64": b"stco", b"stz2": b"stsz"}.get(child.type, child.type)
        if kind in DROPPED_IN_CLIPS:
            continue
        if kind == b"sbgp":
            parts.append(make_box(b"sbgp", _sbgp(movie.payload(child), cut.first, cut.stop)))
        elif kind in new:
            parts.append(new.pop(kind))
        elif kind not in (b"ctts", b"stss", b"sdtp"):
            parts.append(bytes(movie.raw(child)))
    return make_box(b"stbl", b"".join(parts))
