"""An FLV's tags indexed once (typed arrays), and any seek's plan from them by search.

`read_flv_index` scans the whole source once (`scan.scan_tags`); `FlvIndex.plan`
then answers what `plan.flv_clip_plan` answers for any `start`/`end`, byte for
byte, without rescanning: the tags a stopping scan would have seen are a prefix of
the index, found by search, and the output's spans are runs of it, found by vector
operations. A request the index cannot answer exactly (a truncated source whose clip
reaches the cut) gets None: the caller then plans it with the scanning planner.

An audio-only output copies audio and script tags, which lie between video tags in
the source: tens of thousands of spans for a long file. `FlvIndex.stored_plan` makes
the same output over the *stored audio* instead (every audio and script tag in source
order, the output of `audio_map`'s plan, kept as a rendition), where the kept tags
from any start on are one contiguous range: the plan is the rewritten header and
metadata, the sequence header, and one span (more only where a tag's PreviousTagSize
is wrong or a metadata tag lies in range), found by searches, with no object per tag.
"""

from __future__ import annotations

import copy
import math
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np
import numpy.typing as npt

from vodedge.media.errors import InvalidSeek, LimitExceeded, MediaError, NoAudioTrack
from vodedge.media.flv.metadata import (
    Metadata,
    MetadataRewrite,
    decode_metadata,
    encode_script_tag,
    rewrite_metadata,
    source_keyframes,
)
from vodedge.media.flv.scan import TagIndex, scan_tags
from vodedge.media.flv.seek import FlvSeek, SeekValue, parse_seek
from vodedge.media.flv.tags import (
    AUDIO,
    CONFIG,
    FLAG_AUDIO,
    FRAME,
    SCRIPT,
    TAG_HEADER_SIZE,
    TAG_OVERHEAD,
    U32,
    VIDEO,
    is_video_keyframe,
    tag_role,
)
from vodedge.media.plan import Piece, Plan, Span
from vodedge.media.plan_map import OutputMap
from vodedge.media.reading import Reading

_FILE_PREAMBLE = 13  # the rewritten file header and the zero PreviousTagSize

Ints = npt.NDArray[np.int64]
Flags = npt.NDArray[np.bool_]


@dataclass(slots=True)
class FlvIndex:
    """Every whole tag of an FLV as columns, with what plans ask of each tag precomputed."""

    tags: TagIndex
    offsets: Ints
    sizes: Ints
    stamps: Ints
    kinds: npt.NDArray[np.uint8]
    frames: Flags  # coded media (role FRAME)
    configs: Flags  # sequence headers (role CONFIG)
    keyframes: Flags  # video pictures that decode on their own
    back_ok: Flags
    # onMetaData tags by position: decoded (None: another script value) or why not.
    metas: dict[int, Metadata | MediaError | None]
    meta_positions: Ints
    # The first onMetaData's `keyframes` as sorted (time, position) pairs.
    first_pairs: list[tuple[float, float]] | MediaError | None
    # Positions of audio frames, of audio and video frames, and of sequence headers per
    # kind, with the running maximum of the frames' stamps (a scan stopping at a time
    # stops at the first frame stamped at or past it: where the maximum reaches it).
    audio_frames: Ints = field(init=False)
    media_frames: Ints = field(init=False)
    audio_peaks: Ints = field(init=False)
    media_peaks: Ints = field(init=False)
    key_positions: Ints = field(init=False)
    config_positions: dict[int, Ints] = field(init=False)
    # Whether any audio tag exists, and the audio frames' stamps when they never go back
    # (then the last frame at or before a time is found by search).
    has_audio_tags: bool = field(init=False)
    first_video_frame: int = field(init=False)  # its position, or len(self) if none
    audio_stamps: Ints | None = field(init=False)
    # The tags an audio-only output may copy (audio and script), where each starts in
    # the stored audio (the output of `audio_map`'s plan; one more entry: its size), and
    # which of them (positions in `kept`) lack a right PreviousTagSize: the stored audio
    # holds those without it.
    kept: Ints = field(init=False)
    kept_starts: Ints = field(init=False)
    kept_breaks: Ints = field(init=False)
    # The sums of the kept tags' sizes with PreviousTagSize before each (one more entry).
    kept_units: Ints = field(init=False)
    # The same for every tag, the tags without a right PreviousTagSize, the video frames.
    units: Ints = field(init=False)
    breaks: Ints = field(init=False)
    video_frames: Ints = field(init=False)
    # Every tag an audio-only output may copy, as one plan (see `audio_map`).
    audio: OutputMap | None = None
    _literals: dict[tuple[int, bool, bool], bytes] = field(default_factory=dict)
    _tables: dict[int, tuple[list[float], list[float]] | None] = field(default_factory=dict)
    _settled_sizes: dict[tuple[int, bool, bool, int, bool], int] = field(default_factory=dict)
    # Per onMetaData position: the keyframes table's entries that name a tag's offset
    # exactly, and those tags (see `keyframe_tags`).
    _keyframe_tags: dict[int, tuple[Ints, Ints]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        audio = self.kinds == AUDIO
        self.audio_frames = np.flatnonzero(audio & self.frames)
        self.media_frames = np.flatnonzero((audio | (self.kinds == VIDEO)) & self.frames)
        self.audio_peaks = np.maximum.accumulate(self.stamps[self.audio_frames])
        self.media_peaks = np.maximum.accumulate(self.stamps[self.media_frames])
        self.key_positions = np.flatnonzero(self.keyframes)
        self.config_positions = {
            kind: np.flatnonzero((self.kinds == kind) & self.configs) for kind in (AUDIO, VIDEO)
        }
        self.has_audio_tags = bool(audio.any())
        video = self.media_frames[self.kinds[self.media_frames] == VIDEO]
        self.first_video_frame = int(video[0]) if len(video) else len(self.kinds)
        stamps = self.stamps[self.audio_frames]
        self.audio_stamps = stamps if bool((np.diff(stamps) >= 0).all()) else None
        self.kept = np.flatnonzero(audio | (self.kinds == SCRIPT))
        whole = self.back_ok[self.kept]
        units = self.sizes[self.kept] + np.where(whole, TAG_OVERHEAD, TAG_HEADER_SIZE)
        self.kept_starts = np.concatenate(([0], np.cumsum(units))).astype(np.int64)
        self.kept_breaks = np.flatnonzero(~whole)
        units = self.sizes[self.kept] + TAG_OVERHEAD
        self.kept_units = np.concatenate(([0], np.cumsum(units))).astype(np.int64)
        self.units = np.concatenate(([0], np.cumsum(self.sizes + TAG_OVERHEAD))).astype(np.int64)
        self.breaks = np.flatnonzero(~self.back_ok)
        self.video_frames = video

    @property
    def nbytes(self) -> int:
        """Roughly the memory the index holds."""
        arrays: list[npt.NDArray[np.generic]] = [
            self.offsets,
            self.sizes,
            self.stamps,
            self.kinds,
            self.frames,
            self.kept,
            self.kept_starts,
            self.kept_breaks,
            self.kept_units,
            self.units,
            self.breaks,
            self.video_frames,
            self.audio_frames,
            self.media_frames,
            self.audio_peaks,
            self.media_peaks,
        ]
        if self.audio_stamps is not None:
            arrays.append(self.audio_stamps)
        columns = sum(a.nbytes for a in arrays) + 3 * len(self.offsets)
        scan = sum(len(t) for _, t in self.tags.metadata) + 23 * len(self.tags)
        return columns + scan + 1024

    def __len__(self) -> int:
        return len(self.offsets)

    def clip_plan(
        self,
        start: SeekValue = None,
        end: SeekValue = None,
        by_time: bool = False,
        audio_only: bool = False,
    ) -> Plan | None:
        """What `flv_clip_plan` makes for these arguments; None when only a scan can tell."""
        return self.plan(audio_only, parse_seek(start, end, by_time))

    def plan(self, audio_only: bool, seek: FlvSeek) -> Plan | None:
        """The plan for `seek` (see `plan.build_plan`), or None (see the module)."""
        return self._plan(audio_only, seek, stored=False)

    def stored_plan(self, seek: FlvSeek) -> Plan | None:
        """The audio-only plan for `seek` reading the stored audio (the output of
        `audio_map().plan`) instead of the source: the same output bytes as
        `plan(True, seek)`, in a few pieces whatever the number of tags."""
        return self._plan(True, seek, stored=True)

    @property
    def audio_size(self) -> int:
        """The size of the stored audio (`audio_map().plan.size`)."""
        return int(self.kept_starts[-1])

    def _plan(self, audio_only: bool, seek: FlvSeek, *, stored: bool) -> Plan | None:
        tags = self.tags
        if audio_only and not tags.header.has_audio:
            raise NoAudioTrack("the FLV header says the file has no audio")
        n = self._cut(audio_only, seek)
        stopped = n < len(self)
        if not stopped and tags.truncated is not None:
            return None
        if audio_only and not stopped and not self.has_audio_tags:
            raise NoAudioTrack("the FLV holds no audio tags")
        first = self._resolve_start(n, stopped, seek, audio_only)
        return _Builder(self, n, first, audio_only, seek, stored).plan()

    def _cut(self, audio_only: bool, seek: FlvSeek) -> int:
        """How many tags a scan stopping at `end` would have indexed."""
        end_offset, end_ms = seek.end_offset, seek.end_ms
        if end_offset is not None:
            return int(self.offsets.searchsorted(end_offset, "left"))
        if end_ms is None:
            return len(self)
        frames, peaks = (
            (self.audio_frames, self.audio_peaks)
            if audio_only
            else (self.media_frames, self.media_peaks)
        )
        at = int(peaks.searchsorted(_ceil(end_ms), "left"))
        return int(frames[at]) if at < len(frames) else len(self)

    def _resolve_start(self, n: int, stopped: bool, seek: FlvSeek, audio_only: bool) -> int:
        """`seek.resolve_start` over the first `n` tags."""
        if seek.start is None:
            return 0
        if not seek.by_time:
            if seek.start >= self.tags.size:
                raise InvalidSeek(f"start {seek.start} is past the end ({self.tags.size} bytes)")
            found = min(int(self.offsets.searchsorted(seek.start, "left")), n)
            if found == n and not stopped:
                raise InvalidSeek(f"no tag starts at or after byte {seek.start}")
            return found
        start_ms = seek.start * 1000.0
        media = self.media_frames[: int(self.media_frames.searchsorted(n))]
        audio_kinds = audio_only or self.first_video_frame >= n
        if audio_kinds:
            media = self.audio_frames[: int(self.audio_frames.searchsorted(n))]
        if not len(media):
            raise (
                NoAudioTrack("the FLV holds no audio to seek in")
                if audio_only
                else InvalidSeek("the FLV holds no media to seek in")
            )
        peaks = self.audio_peaks if audio_kinds else self.media_peaks
        if not stopped and start_ms > int(peaks[len(media) - 1]):
            raise InvalidSeek(f"start {seek.start} s is past the end of the media")
        if audio_kinds:
            if self.audio_stamps is not None:  # stamps that never go back: a search
                at = int(self.audio_stamps[: len(media)].searchsorted(_floor(start_ms), "right"))
                return int(media[at - 1]) if at else int(media[0])
            before = media[self.stamps[media] <= start_ms]
            return int(before[-1]) if len(before) else int(media[0])
        by_index = self._keyframe_from_index(n, seek.start)
        if by_index is not None:
            return by_index
        keys = self.key_positions[: int(self.key_positions.searchsorted(n))]
        keys = keys[self.stamps[keys] <= start_ms]
        return int(keys[-1]) if len(keys) else 0

    def _keyframe_from_index(self, n: int, start: float) -> int | None:
        if not len(self.meta_positions) or self.meta_positions[0] >= n:
            return None
        pairs = self.first_pairs
        if isinstance(pairs, MediaError):
            raise copy.copy(pairs)
        if not pairs:
            return None
        at = bisect_right(pairs, (start, float("inf"))) - 1
        if at < 0:
            return None
        position = pairs[at][1]
        if not 0 <= position <= self.offsets[n - 1] or not position.is_integer():
            return None  # no tag starts there
        found = int(self.offsets[:n].searchsorted(int(position)))
        if self.offsets[found] == position and self.keyframes[found]:
            return found
        return None

    def audio_map(self) -> OutputMap:
        """The plan copying every audio and script tag in source order (what audio-only
        outputs copy a subset of) and where they land in its output; built once."""
        if self.audio is None:
            pieces, _ = _runs(self, self.kept)
            spans = [piece for piece in pieces if isinstance(piece, Span)]
            self.audio = OutputMap(Plan.head_and_spans(b"", spans))
        return self.audio

    def literal(self, position: int, audio_only: bool, clipped: bool) -> bytes:
        """The rewritten onMetaData at `position` for outputs whose layout is unknown."""
        key = (position, audio_only, clipped)
        found = self._literals.get(key)
        if found is None:
            meta = self.metas[position]
            assert isinstance(meta, Metadata)
            source = self.tags.metadata[self._meta_slot(position)][1]
            rewrite = MetadataRewrite(audio_only=audio_only, clipped=clipped)
            found = encode_script_tag(source, meta, rewrite_metadata(meta.value, rewrite))
            self._literals[key] = found
        return found

    def table(self, position: int) -> tuple[list[float], list[float]] | None:
        """The `keyframes` index of the onMetaData at `position` (`source_keyframes`)."""
        if position not in self._tables:
            meta = self.metas[position]
            assert isinstance(meta, Metadata)
            self._tables[position] = source_keyframes(meta.value)
        return self._tables[position]

    def keyframe_tags(self, position: int, positions: list[float]) -> tuple[Ints, Ints]:
        """The entries of the keyframes table at `position` (its `filepositions`) that are
        the offset of a tag, and those tags: what every clip's table is cut from, found
        once per table rather than per clip."""
        found = self._keyframe_tags.get(position)
        if found is None:
            wanted = np.asarray(positions, dtype=np.float64)
            tags = self.offsets.searchsorted(_ceils(wanted), "left")
            count = len(self.offsets)
            exact = (tags < count) & (self.offsets[np.minimum(tags, max(count - 1, 0))] == wanted)
            entries = np.flatnonzero(exact)
            found = self._keyframe_tags[position] = (entries, tags[entries])
        return found

    def _meta_slot(self, position: int) -> int:
        return int(self.meta_positions.searchsorted(position))


class _Builder:
    """One plan: `plan.build_plan`'s selection and layout, over index slices."""

    def __init__(
        self, index: FlvIndex, n: int, first: int, audio_only: bool, seek: FlvSeek, stored: bool
    ) -> None:
        self.index, self.n, self.first = index, n, first
        self.audio_only, self.seek = audio_only, seek
        # Spans into the stored audio (`FlvIndex.stored_plan`) instead of the source.
        self.stored = stored
        metas = index.meta_positions[: int(index.meta_positions.searchsorted(n))]
        decoded: list[int] = []
        for p in metas.tolist():
            meta = index.metas[p]
            if isinstance(meta, MediaError):
                raise copy.copy(meta)
            if meta is not None:
                decoded.append(p)
        # Output metadata items: every decodable one before `first`, and those after.
        self.meta_items = decoded
        configs: dict[int, int] = {}
        for kind in (AUDIO,) if audio_only else (AUDIO, VIDEO):
            positions = index.config_positions[kind]
            at = int(positions.searchsorted(first))
            if at:
                configs[kind] = int(positions[at - 1])
        self.configs = sorted(configs.values())
        if audio_only:
            kept = index.kept
            low, high = kept.searchsorted((first, n)).tolist()
            self.selected = kept[low:high]
        else:
            self.selected = np.arange(first, n, dtype=np.int64)
        self.range_metas = [p for p in decoded if p >= first]
        self.clipped = seek.clipped

    def plan(self) -> Plan:
        index = self.index
        literals = {p: index.literal(p, self.audio_only, self.clipped) for p in self.meta_items}
        if self.meta_items and self.seek.by_time and self.clipped:
            p = self.meta_items[0]
            literals[p] = self._settled(p, literals)
        header = index.tags.header.encode(FLAG_AUDIO if self.audio_only else None)
        head: list[Piece] = [header]
        head.extend(literals[p] for p in self.meta_items if p < self.first)
        for i in self.configs:
            head.extend(self._tag_pieces(i))
        pieces = list(Plan(head).pieces)
        lengths = [_length(p) for p in pieces]
        # The kept tags, cut at each metadata item in range (rewritten, not copied).
        selected = self.selected
        bounds = [*self.range_metas, self.n]
        low = 0
        for p in bounds:
            high = int(selected.searchsorted(p))
            run_pieces, run_lengths = self._runs(selected[low:high])
            _extend(pieces, lengths, run_pieces, run_lengths)
            if p < self.n:
                _extend(pieces, lengths, [literals[p]], [len(literals[p])])
                high += 1
            low = high
        return _made(pieces, lengths)

    def _tag_pieces(self, i: int) -> list[Piece]:
        index = self.index
        offset, size = int(index.offsets[i]), int(index.sizes[i])
        if self.stored:
            offset = int(index.kept_starts[int(index.kept.searchsorted(i))])
        if index.back_ok[i]:
            return [Span(offset, size + TAG_OVERHEAD)]
        return [Span(offset, TAG_HEADER_SIZE + size), U32.pack(TAG_HEADER_SIZE + size)]

    def _runs(self, tags: Ints) -> tuple[list[Piece], list[int]]:
        if self.stored:
            return _stored_runs(self.index, tags)
        if not self.audio_only and len(tags):  # consecutive tags: a search for each cut
            found = _contiguous_runs(self.index, int(tags[0]), int(tags[-1]) + 1)
            if found is not None:
                return found
        return _runs(self.index, tags)

    # --- the exact layout metadata of a time-based clip (`_settle_first_metadata`) ---

    def _settled(self, position: int, literals: dict[int, bytes]) -> bytes:
        index = self.index
        meta = index.metas[position]
        assert isinstance(meta, Metadata)
        source = index.tags.metadata[index._meta_slot(position)][1]
        table = index.table(position)
        entries = self._keyframe_entries(position, table) if table else ([], np.zeros(0, np.int64))
        duration = self._duration()
        rewrite = MetadataRewrite(
            audio_only=self.audio_only,
            clipped=self.clipped,
            filesize=0,
            keyframes=(entries[0], [0.0] * len(entries[0])) if entries[0] else None,
            duration=duration,
        )
        # Numbers are fixed-size: the size depends on which values there are, not on them.
        shape = (position, self.audio_only, self.clipped, len(entries[0]), duration is None)
        size = index._settled_sizes.get(shape)
        if size is None:
            size = len(encode_script_tag(source, meta, rewrite_metadata(meta.value, rewrite)))
            index._settled_sizes[shape] = size
        sizes = {p: len(literal) for p, literal in literals.items()}
        sizes[position] = size
        offsets_of, total = self._layout(sizes)
        rewrite.filesize = total
        if entries[0]:
            rewrite.keyframes = (entries[0], [float(o) for o in offsets_of(entries[1])])
        settled = encode_script_tag(source, meta, rewrite_metadata(meta.value, rewrite))
        assert len(settled) == size, "metadata size moved with its values"
        return settled

    def _layout(self, sizes: dict[int, int]) -> tuple[_OffsetsOf, int]:
        """Where each output tag starts (as a lookup by source tag), and the output size,
        given the size of each metadata item."""
        index = self.index
        position = _FILE_PREAMBLE
        position += sum(sizes[p] for p in self.meta_items if p < self.first)
        config_at: dict[int, int] = {}
        for i in self.configs:
            config_at[i] = position
            position += int(index.sizes[i]) + TAG_OVERHEAD
        selected = self.selected
        if self.audio_only:  # consecutive kept tags: their sums are there already
            low = int(index.kept.searchsorted(selected[0])) if len(selected) else 0
            sums = index.kept_units[low : low + len(selected) + 1]
        elif len(selected) == self.n - self.first:  # every tag from `first` to `n`
            sums = index.units[self.first : self.n + 1]
        else:
            sums = np.concatenate(([0], np.cumsum(index.sizes[selected] + TAG_OVERHEAD)))
        # Metadata in range is rewritten: its size moves every later tag.
        shifts: list[tuple[int, int]] = []
        for p in self.range_metas:
            at = int(selected.searchsorted(p))
            shifts.append((at, sizes[p] - int(index.sizes[p]) - TAG_OVERHEAD))
        total = position + int(sums[-1] - sums[0]) + sum(d for _, d in shifts)
        return _OffsetsOf(config_at, selected, sums, position, shifts), total

    def _keyframe_entries(
        self, position: int, table: tuple[list[float], list[float]]
    ) -> tuple[list[float], Ints]:
        """`_keyframe_entries`: (times, source tags their output offsets are taken from)."""
        index = self.index
        times, positions = table
        if self.audio_only:
            audio, stamps = self._audio_frames()
            if not len(audio):
                return [], np.zeros(0, np.int64)
            last = int(stamps[-1])
            scaled = np.asarray(times, dtype=np.float64) * 1000.0
            if index.audio_stamps is not None:
                found = stamps.searchsorted(_floors(scaled + 0.5), "right") - 1
            else:
                stamp_list = stamps.tolist()
                found = np.asarray(
                    [bisect_right(stamp_list, t * 1000.0 + 0.5) - 1 for t in times], np.int64
                )
            if self.clipped:  # the times past the clip's audio, or before it, go
                keep = np.flatnonzero((found >= 0) & (scaled <= last + 0.5))
                kept = [times[k] for k in keep.tolist()]
                found = found[keep]
            else:
                kept = list(times)
            return kept, audio[np.maximum(found, 0)]
        # The entries naming a tag of the output: one before `n`, from `first` on (but the
        # metadata rewritten in range), or a sequence header.
        entries, tags = index.keyframe_tags(position, positions)
        is_item = tags >= self.first
        for p in self.range_metas:
            is_item &= tags != p
        for i in self.configs:
            is_item |= tags == i
        keep = np.flatnonzero(is_item & (tags < self.n))
        return [times[k] for k in entries[keep].tolist()], tags[keep]

    def _audio_frames(self) -> tuple[Ints, Ints]:
        """The audio frames among the selected tags of an audio-only output (all audio
        tags from `first` to `n`), and their stamps."""
        index = self.index
        frames = index.audio_frames
        low, high = frames.searchsorted((self.first, self.n)).tolist()
        if index.audio_stamps is not None:
            return frames[low:high], index.audio_stamps[low:high]
        return frames[low:high], index.stamps[frames[low:high]]

    def _duration(self) -> float | None:
        """`_duration`: seconds from the clip's first media frame to the end of its last."""
        index = self.index
        if self.audio_only and index.audio_stamps is not None:
            _, stamps = self._audio_frames()  # ascending: the first is the lowest
            if not len(stamps):
                return None
            last, before = int(stamps[-1]), int(stamps[-2:][0])
            return (last - int(stamps[0]) + last - before) / 1000.0
        if not self.audio_only and len(self.selected) == self.n - self.first:
            return self._full_duration()
        tags = self.selected
        kinds = index.kinds[tags]
        media = kinds == AUDIO if self.audio_only else (kinds == AUDIO) | (kinds == VIDEO)
        frames = tags[media & index.frames[tags]]
        if not len(frames):
            return None
        stamps = index.stamps[frames]
        low = int(stamps.min())
        frame_kinds = index.kinds[frames]
        pairs: list[tuple[int, int]] = []
        for kind in (AUDIO, VIDEO):
            mine = np.flatnonzero(frame_kinds == kind)
            if len(mine):
                last, before = int(stamps[mine[-1]]), int(stamps[mine[-2:][0]])
                pairs.append((last, last - before))
        high, gap = max(pairs)
        return (high - low + gap) / 1000.0

    def _full_duration(self) -> float | None:
        """`_duration` of every tag from `first` to `n`: the frames are slices."""
        index = self.index
        bounds = (self.first, self.n)
        low, high = index.media_frames.searchsorted(bounds).tolist()
        if low == high:
            return None
        first = int(index.stamps[index.media_frames[low:high]].min())
        pairs: list[tuple[int, int]] = []
        for frames in (index.audio_frames, index.video_frames):
            a, b = frames.searchsorted(bounds).tolist()
            if a < b:
                last, before = (
                    int(index.stamps[frames[b - 1]]),
                    int(index.stamps[frames[max(b - 2, a)]]),
                )
                pairs.append((last, last - before))
        end, gap = max(pairs)
        return (end - first + gap) / 1000.0


@dataclass(frozen=True, slots=True)
class _OffsetsOf:
    """Output offsets of source tags: sequence headers, then the kept tags (the sums of
    the sizes of the kept tags before each, from `position`, moved by `shifts`)."""

    configs: dict[int, int]
    selected: Ints
    sums: Ints
    position: int
    shifts: list[tuple[int, int]]

    def __call__(self, tags: Ints) -> list[int]:
        if not len(self.selected):
            out = [0] * len(tags)
        else:
            at = np.minimum(self.selected.searchsorted(tags), len(self.selected) - 1)
            starts = self.sums[at] - self.sums[0] + self.position
            for after, shift in self.shifts:
                starts += np.where(at > after, shift, 0)
            out = starts.tolist()
        if self.configs:
            for k, tag in enumerate(tags.tolist()):
                found = self.configs.get(tag)
                if found is not None:
                    out[k] = found
        return out


def _runs(index: FlvIndex, tags: Ints) -> tuple[list[Piece], list[int]]:
    """Spans of the source covering `tags` (ascending), joined where contiguous."""
    if not len(tags):
        return [], []
    back_ok = index.back_ok[tags]
    ends = np.flatnonzero(~back_ok[:-1] | (np.diff(tags) != 1))
    last = np.append(tags[ends], tags[-1])
    firsts = np.insert(tags[ends + 1], 0, tags[0])
    starts = index.offsets[firsts]
    stops = index.offsets[last] + index.sizes[last] + TAG_HEADER_SIZE
    whole = index.back_ok[last]
    stops = stops + np.where(whole, TAG_OVERHEAD - TAG_HEADER_SIZE, 0)
    sizes = (stops - starts).tolist()
    if whole.all():
        return list(map(Span, starts.tolist(), sizes)), sizes
    pieces: list[Piece] = []
    lengths: list[int] = []
    tails = (index.sizes[last] + TAG_HEADER_SIZE).tolist()
    rows = zip(starts.tolist(), sizes, whole.tolist(), tails, strict=True)
    for start, size, ok, tail in rows:
        pieces.append(Span(start, size))
        lengths.append(size)
        if not ok:
            pieces.append(U32.pack(tail))
            lengths.append(4)
    return pieces, lengths


def _contiguous_runs(index: FlvIndex, low: int, high: int) -> tuple[list[Piece], list[int]] | None:
    """`_runs` of tags `low` to `high`: one span, cut after each tag whose PreviousTagSize
    is wrong (written instead); None when the tags do not lie back to back."""
    offsets, sizes = index.offsets, index.sizes
    stop = int(offsets[high - 1] + sizes[high - 1]) + TAG_OVERHEAD
    at = int(offsets[low])
    if stop - at != int(index.units[high] - index.units[low]):
        return None
    breaks = index.breaks
    cuts = breaks[breaks.searchsorted(low) : breaks.searchsorted(high)].tolist()
    pieces: list[Piece] = []
    lengths: list[int] = []
    for k in cuts:
        tail = int(sizes[k]) + TAG_HEADER_SIZE
        end = int(offsets[k]) + tail
        pieces += (Span(at, end - at), U32.pack(tail))
        lengths += (end - at, 4)
        at = end + 4
    if stop > at:
        pieces.append(Span(at, stop - at))
        lengths.append(stop - at)
    return pieces, lengths


def _stored_runs(index: FlvIndex, tags: Ints) -> tuple[list[Piece], list[int]]:
    """`_runs` over the stored audio, for consecutive entries of `index.kept`: one span,
    cut after each tag whose PreviousTagSize the stored audio lacks (written there)."""
    if not len(tags):
        return [], []
    low = int(index.kept.searchsorted(tags[0]))
    high = low + len(tags)
    assert int(index.kept[high - 1]) == int(tags[-1]), "not consecutive kept tags"
    starts, breaks = index.kept_starts, index.kept_breaks
    cuts = breaks[breaks.searchsorted(low) : breaks.searchsorted(high)].tolist()
    pieces: list[Piece] = []
    lengths: list[int] = []
    at = int(starts[low])
    for k in cuts:
        end = int(starts[k + 1])
        pieces.append(Span(at, end - at))
        pieces.append(U32.pack(end - int(starts[k])))
        lengths += (end - at, 4)
        at = end
    stop = int(starts[high])
    if stop > at:
        pieces.append(Span(at, stop - at))
        lengths.append(stop - at)
    return pieces, lengths


# Searches of int columns take ints: a float would have numpy cast the whole column.
_LIMIT = 1 << 62


def _floor(value: float) -> int:
    """The largest int at most `value` (within the columns' range)."""
    return max(min(math.floor(value), _LIMIT), -_LIMIT)


def _ceil(value: float) -> int:
    """The smallest int at least `value` (within the columns' range)."""
    return max(min(math.ceil(value), _LIMIT), -_LIMIT)


def _floors(values: npt.NDArray[np.float64]) -> Ints:
    return np.clip(np.floor(values), -_LIMIT, _LIMIT).astype(np.int64)


def _ceils(values: npt.NDArray[np.float64]) -> Ints:
    return np.clip(np.ceil(values), -_LIMIT, _LIMIT).astype(np.int64)


def _length(piece: Piece) -> int:
    return piece.length if isinstance(piece, Span) else len(piece)


def _extend(pieces: list[Piece], lengths: list[int], more: list[Piece], sizes: list[int]) -> None:
    """Append already merged pieces, merging at the joint as `Plan` would."""
    if not more:
        return
    if pieces:
        last, head = pieces[-1], more[0]
        if isinstance(last, Span) and isinstance(head, Span) and last.end == head.offset:
            pieces[-1] = Span(last.offset, last.length + head.length)
            lengths[-1] += head.length
            more, sizes = more[1:], sizes[1:]
        elif not isinstance(last, Span) and not isinstance(head, Span):
            pieces[-1] = last + head
            lengths[-1] += len(head)
            more, sizes = more[1:], sizes[1:]
    pieces.extend(more)
    lengths.extend(sizes)


def _made(pieces: list[Piece], lengths: list[int]) -> Plan:
    """A plan of pieces already merged as `Plan` merges them."""
    plan = Plan.__new__(Plan)
    plan.pieces = tuple(pieces)
    starts = list(accumulate(lengths, initial=0))
    plan.size = starts.pop()
    plan._starts = starts
    return plan


def read_flv_index(size: int) -> Reading[FlvIndex | None]:
    """Scan an FLV of `size` bytes once into an index; None when its metadata is over
    the limit (only a scan stopping before it can plan)."""
    try:
        tags = yield from scan_tags(size)
    except LimitExceeded:
        return None
    return index_tags(tags)


def index_tags(tags: TagIndex) -> FlvIndex:
    """The index of a whole-source scan."""
    count = len(tags)
    kinds = np.frombuffer(tags.kinds, dtype=np.uint8).copy() if count else np.zeros(0, np.uint8)
    sizes = np.asarray(tags.sizes, dtype=np.int64)
    roles = np.fromiter(
        (
            tag_role(k, s, b >> 8, b & 0xFF)
            for k, s, b in zip(tags.kinds, tags.sizes, tags.first_bytes, strict=True)
        ),
        dtype=np.uint8,
        count=count,
    )
    keyframes = np.fromiter(
        (
            k == VIDEO and is_video_keyframe(s, b >> 8, b & 0xFF)
            for k, s, b in zip(tags.kinds, tags.sizes, tags.first_bytes, strict=True)
        ),
        dtype=np.bool_,
        count=count,
    )
    metas: dict[int, Metadata | MediaError | None] = {}
    for position, tag in tags.metadata:
        try:
            metas[position] = decode_metadata(tag[TAG_HEADER_SIZE:])
        except MediaError as exc:
            metas[position] = exc
    first_pairs: list[tuple[float, float]] | MediaError | None = None
    if tags.metadata:
        meta = metas[tags.metadata[0][0]]
        if isinstance(meta, MediaError):
            first_pairs = meta
        else:
            table = source_keyframes(meta.value) if meta else None
            first_pairs = sorted(zip(*table, strict=True)) if table else None
    return FlvIndex(
        tags=tags,
        offsets=np.asarray(tags.offsets, dtype=np.int64),
        sizes=sizes,
        stamps=np.asarray(tags.stamps, dtype=np.int64),
        kinds=kinds,
        frames=roles == FRAME,
        configs=roles == CONFIG,
        keyframes=keyframes,
        back_ok=np.asarray(tags.back_ok, dtype=np.bool_),
        metas=metas,
        meta_positions=np.asarray([p for p, _ in tags.metadata], dtype=np.int64),
        first_pairs=first_pairs,
    )
