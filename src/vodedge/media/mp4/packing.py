"""The flat tables of a finished index that the compiled clip planner (`clipper`) reads.

A track's are packed once by `Mp4Index.finish` (views of the fast path's arrays, no
copies), a selection's skeleton on its first warm clip. Anything the planner does not
handle is left out here (None): its clips take the fast path, as before. Where the
build is pure Python there is no `clipper` and nothing is packed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from vodedge.media.errors import MediaError
from vodedge.media.mp4 import fastclip

try:
    from vodedge.media.mp4 import clipper

    COMPILED = True
except ImportError:  # a pure Python build (or one whose compiling failed)
    COMPILED = False

if TYPE_CHECKING:
    from vodedge.media.mp4.index import Mp4Index, TrackIndex

# What the planner cannot hold exactly: an edit delay's seconds are computed in float64.
_EXACT = 1 << 53
# The codes of the fast path's stbl recipe, as the planner's.
_STEPS = {
    fastclip.STTS: "STTS",
    fastclip.CTTS: "CTTS",
    fastclip.STSS: "STSS",
    fastclip.STSZ: "STSZ",
    fastclip.STSC: "STSC",
    fastclip.STCO: "STCO",
    fastclip.SDTP: "SDTP",
}


def track(samples: TrackIndex) -> clipper.Track | None:
    """A track's tables for the planner, or None where it leaves the track to the fast
    path: no prepared tables, times float64 cannot hold, samples past 4 GiB in all."""
    if not COMPILED:
        return None
    prepared, runs, prefix = samples.prepared, samples.stts_runs, samples.prefix
    if prepared is None or runs is None or prefix is None or not prepared.dts.exact:
        return None
    if prefix.dtype != np.uint32:  # 64-bit or Python integers: the fast path's
        return None
    edits = samples.edits
    if edits is not None and not 0 <= edits.delay < _EXACT:
        return None
    starts, ends, durations = runs
    spans = (ends - starts) * durations
    chunks = prepared.chunks
    columns = [chunks.first, chunks.end, chunks.samples, chunks.description]
    columns += [chunks.offsets, chunks.sizes]
    try:
        recipe: list[clipper.Step] = []
        for item in prepared.recipe:
            if isinstance(item, int):
                recipe.append(clipper.Step(getattr(clipper, _STEPS[item])))
            elif isinstance(item, tuple):
                head, group = item
                table = clipper.Runs(group.ends, group.entries.view(np.uint8), head)
                recipe.append(clipper.Step(clipper.SBGP, runs=table))
            else:
                recipe.append(clipper.Step(clipper.COPY, bytes(item)))
        ctts = prepared.ctts
        return clipper.Track(
            samples.track.handler == b"vide",
            samples.count,
            (starts, ends, durations, np.cumsum(spans) - spans),
            samples.shift,
            samples.track.timescale,
            samples.delay,
            clipper.Runs(prepared.stts.ends, prepared.stts.entries.view(np.uint8)),
            None if ctts is None else clipper.Runs(ctts.ends, ctts.entries.view(np.uint8)),
            samples.ctts_version,
            samples.sync,
            prepared.sizes,
            prefix,
            tuple(columns),
            samples.sdtp,
            recipe,
            _duration(prepared.tkhd),
            _duration(prepared.mdhd),
            None if edits is None else (edits.delay, edits.media_time, edits.version),
        )
    except (clipper.Decline, ValueError, TypeError, OverflowError):
        return None  # a shape the planner refuses (it says which)


def _duration(box: fastclip.DurationBox) -> clipper.Duration:
    return clipper.Duration(box.head, box.wide, box.tail)


def planner(
    index: Mp4Index, tracks: list[TrackIndex], audio_only: bool, duration: float
) -> clipper.Planner | None:
    """The planner of a selection's clips (its tracks, all with packed tables, audio
    alone or not, its duration), or None where it leaves them to the fast path."""
    if not COMPILED or any(t.native is None for t in tracks):
        return None
    movie = index.movie
    key = tuple([t.track.track_id for t in tracks])
    shape = index.shapes.get(key)
    if shape is None:  # what the fast path's first clip makes, made the same way
        cuts: list[fastclip.Cut] = []
        for t in tracks:
            assert t.prepared is not None
            cuts.append((t, t.prepared, 0, 0))
        try:
            shape = index.shapes[key] = fastclip._shape(index, cuts)
        except MediaError:
            return None  # the fast path meets it again and asks the general path
    skeleton, mvhd, _, _, _ = shape
    # What each replaced box is: the mvhd, a kept track's boxes, or a dropped track.
    kinds: dict[int, tuple[int, int]] = {}
    places: list[int] = []
    if mvhd is not None and movie.mvhd is not None:
        kinds[movie.mvhd.offset] = (clipper.MVHD, 0)
        places.append(movie.mvhd.offset)
    for number, t in enumerate(tracks):
        prepared = t.prepared
        assert prepared is not None
        found = [(prepared.tkhd_at, clipper.TKHD), (prepared.mdhd_at, clipper.MDHD)]
        found += [(prepared.stbl_at, clipper.STBL)]
        if prepared.edts_at is not None:
            found.append((prepared.edts_at, clipper.EDTS))
        for place, kind in found:
            kinds[place] = (kind, number)
            places.append(place)
    if len(kinds) != len(places):
        return None  # two boxes at one place (malformed): the fast path's
    slot_of = {at: place for place, at in skeleton.slots.items()}
    reached = {kinds[place] for place in skeleton.slots if place in kinds}
    if any((clipper.STBL, number) not in reached for number in range(len(tracks))):
        return None  # a stbl a rebuild does not reach
    heads = {at: k for k, (at, _, _, _) in enumerate(skeleton.containers)}
    if not skeleton.containers or skeleton.containers[-1][0] != 0:
        return None  # no replaced box inside the moov: the general path refuses
    kind_column: list[int] = []
    a_column: list[int] = []
    b_column: list[int] = []
    blob = bytearray()
    for at, part in enumerate(skeleton.parts):
        if at in heads:
            kind, a = clipper.HEAD, heads[at]
        elif at in slot_of:
            kind, a = kinds.get(slot_of[at], (clipper.EMPTY, 0))
        else:
            kind, a = clipper.FIXED, len(blob)
            blob += part
        kind_column.append(kind)
        a_column.append(a)
        b_column.append(len(blob))
    refs: list[tuple[int, int]] = []
    fixed: list[int] = []
    bounds: list[tuple[int, int]] = []
    for _, _, size, varying in skeleton.containers:
        fixed.append(size)
        bounds.append((len(refs), len(refs) + len(varying)))
        refs += [kinds.get(place, (-1, -1)) for place in varying]
    columns = [np.array(c, np.int64) for c in (kind_column, a_column, b_column)]
    try:
        return clipper.Planner(
            [t.native for t in tracks],
            audio_only,
            duration,
            movie.timescale,
            index.ftyp,
            movie.box.size,
            None if mvhd is None else _duration(mvhd[1]),
            tuple(columns),
            bytes(blob),
            [kind for _, kind, _, _ in skeleton.containers],
            (
                np.array(fixed, np.int64),
                np.array([lo for lo, _ in bounds], np.int64),
                np.array([hi for _, hi in bounds], np.int64),
            ),
            (
                np.array([kind for kind, _ in refs], np.int64),
                np.array([number for _, number in refs], np.int64),
            ),
        )
    except (clipper.Decline, ValueError, TypeError, OverflowError):
        return None
