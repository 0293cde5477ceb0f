# cython: language_level=3, boundscheck=True, wraparound=False, initializedcheck=True
# cython: cdivision=False, infer_types=False, auto_pickle=False
"""A warm MP4 clip's whole plan in compiled code, from flat tables packed once per index.

The same plan as `fastclip.fast_plan` and the general path, byte for byte, for the
shapes it knows (see `packing`); anything else, or anything inconsistent in the
tables, makes `Planner.plan` return None and the mypyc fast path answers.

Safety, since media is hostile input: every read of a table goes through a typed
memoryview with bounds checking on (a bad index raises IndexError, which declines),
every write through `Out`'s helpers, which check the room left, and no size is
allocated but the head's, whose size is computed first and checked when written.
"""

from libc.stdint cimport int64_t, uint8_t, uint32_t
from libc.string cimport memcpy
from libc.math cimport isfinite, nearbyint
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING

from vodedge.media.plan import Plan, Span
from vodedge.media.plan_columns import ColumnPlan

import numpy as np

cdef int64_t U32 = 0xFFFFFFFF
cdef int64_t FAR = 1 << 62  # no value a plan computes comes near: past it, decline
cdef int64_t EXACT = 1 << 53  # float64 holds every integer below this exactly
# Plans of this many spans or more keep them as columns (`fastclip.MANY_SPANS`).
cdef Py_ssize_t MANY_SPANS = 64
# Sizes of at most this many samples are summed rather than looked up in a table.
cdef int64_t FEW = 64
# The chunks a planner's scratch columns first hold (a 10-second clip's are a few dozen).
cdef Py_ssize_t SCRATCH = 256
# The tracks a planner keeps at most (its per-clip scratch is on the stack).
DEF MAX_TRACKS = 8


# What a track's stbl recipe holds, in order: copied bytes or a table made per cut.
cdef enum:
    C_COPY, C_STTS, C_CTTS, C_STSS, C_STSZ, C_STSC, C_STCO, C_SDTP, C_SBGP
# What a piece of the moov's skeleton is.
cdef enum:
    P_FIXED, P_HEAD, P_MVHD, P_TKHD, P_MDHD, P_EDTS, P_STBL, P_EMPTY

# The same, for the packer (C constants compared in C, these are Python's).
COPY, STTS, CTTS, STSS, STSZ, STSC, STCO, SDTP, SBGP = (
    C_COPY, C_STTS, C_CTTS, C_STSS, C_STSZ, C_STSC, C_STCO, C_SDTP, C_SBGP
)
FIXED, HEAD, MVHD, TKHD, MDHD, EDTS, STBL, EMPTY = (
    P_FIXED, P_HEAD, P_MVHD, P_TKHD, P_MDHD, P_EDTS, P_STBL, P_EMPTY
)


class Decline(Exception):
    """A shape or value this planner does not handle: the fast path answers instead."""


cdef class Runs:
    """A run-length table (`cuts.Runs`): where each run ends and its big-endian
    (count, value) entries; `head` is an sbgp's version, flags and grouping type."""

    cdef const int64_t[::1] ends
    cdef const uint8_t[::1] entries
    cdef bytes head

    def __init__(self, ends, entries, bytes head not None=b""):
        self.ends = ends
        self.entries = entries
        self.head = head
        cdef Py_ssize_t i
        if self.ends.shape[0] < 1 or self.entries.shape[0] != 8 * self.ends.shape[0]:
            raise Decline("runs and entries disagree")
        for i in range(1, self.ends.shape[0]):
            if self.ends[i] < self.ends[i - 1]:
                raise Decline("runs do not ascend")  # bisected


cdef class Duration:
    """A box whose duration a clip rewrites (`fastclip.DurationBox`)."""

    cdef bytes head
    cdef bytes tail
    cdef bint wide
    cdef int64_t size

    def __init__(self, bytes head not None, bint wide, bytes tail not None):
        self.head = head
        self.tail = tail
        self.wide = wide
        self.size = len(head) + (8 if wide else 4) + len(tail)


cdef class Step:
    """One item of a track's stbl recipe: a code, and the bytes or runs it needs."""

    cdef int code
    cdef bytes data
    cdef Runs runs

    def __init__(self, int code, bytes data not None=b"", Runs runs=None):
        self.code = code
        self.data = data
        self.runs = runs


cdef class Track:
    """A track's tables, flat (see `packing.track`)."""

    cdef bint video
    cdef int64_t count
    # The decode times: the merged stts runs' first samples, ends, durations, bases.
    cdef const int64_t[::1] t_firsts
    cdef const int64_t[::1] t_ends
    cdef const int64_t[::1] t_durations
    cdef const int64_t[::1] t_bases
    cdef int64_t shift
    cdef int64_t timescale
    cdef double delay
    cdef Runs stts
    cdef Runs ctts  # None without ctts
    cdef int ctts_version
    cdef bint has_sync
    cdef const int64_t[::1] sync  # ascending
    cdef const uint8_t[::1] sizes  # the stsz entries
    cdef const uint32_t[::1] prefix  # the bytes before each sample, and all
    # The chunks that hold samples: first sample, end, count, description, place, bytes.
    cdef const int64_t[::1] c_first
    cdef const int64_t[::1] c_end
    cdef const int64_t[::1] c_samples
    cdef const int64_t[::1] c_description
    cdef const int64_t[::1] c_offsets
    cdef const int64_t[::1] c_sizes
    cdef double density  # chunks per sample
    cdef double sync_density  # sync samples per sample
    cdef bint has_sdtp
    cdef const uint8_t[::1] sdtp
    cdef list recipe  # of Step
    cdef Duration tkhd
    cdef Duration mdhd
    cdef bint has_edits
    cdef int64_t e_delay
    cdef int64_t e_media_time
    cdef int e_version

    def __init__(
        self, bint video, int64_t count, timeline, int64_t shift, int64_t timescale,
        double delay, Runs stts not None, Runs ctts, int ctts_version, sync, sizes, prefix,
        chunks, sdtp, list recipe not None, Duration tkhd not None, Duration mdhd not None,
        edits,
    ):
        self.video = video
        self.count = count
        self.t_firsts, self.t_ends, self.t_durations, self.t_bases = timeline
        self.shift = shift
        self.timescale = timescale
        self.delay = delay
        self.stts = stts
        self.ctts = ctts
        self.ctts_version = ctts_version
        self.has_sync = sync is not None
        if sync is not None:
            self.sync = sync
            self.sync_density = <double>self.sync.shape[0] / <double>count if count > 0 else 0.0
        self.sizes = sizes
        self.prefix = prefix
        (self.c_first, self.c_end, self.c_samples, self.c_description, self.c_offsets,
         self.c_sizes) = chunks
        self.density = <double>self.c_first.shape[0] / <double>count if count > 0 else 0.0
        self.has_sdtp = sdtp is not None
        if sdtp is not None:
            self.sdtp = sdtp
        self.recipe = recipe
        self.tkhd = tkhd
        self.mdhd = mdhd
        self.has_edits = edits is not None
        if edits is not None:
            self.e_delay, self.e_media_time, self.e_version = edits
        self._check()

    cdef int _check(self) except -1:
        """The shapes the planner relies on, checked once."""
        cdef Py_ssize_t runs = self.t_ends.shape[0]
        cdef Py_ssize_t chunks = self.c_first.shape[0]
        cdef Py_ssize_t c
        cdef int code
        cdef int64_t total
        for step in self.recipe:  # each step has what it reads (typed, None passes)
            if not isinstance(step, Step) or not C_COPY <= (<Step>step).code <= C_SBGP:
                raise Decline("an unknown recipe step")
            code = (<Step>step).code
            if ((code == C_CTTS and self.ctts is None) or (code == C_STSS and not self.has_sync)
                    or (code == C_SDTP and not self.has_sdtp)
                    or (code == C_SBGP and (<Step>step).runs is None)):
                raise Decline("a recipe step without its table")
        if not 0 < self.count < FAR or self.timescale <= 0 or runs < 1:
            raise Decline("an empty track or timescale")
        if (self.t_firsts.shape[0] != runs or self.t_durations.shape[0] != runs
                or self.t_bases.shape[0] != runs or self.t_ends[runs - 1] != self.count):
            raise Decline("the decode times disagree with the count")
        # Runs that follow each other, of durations >= 0: the times ascend (bisected).
        if self.t_firsts[0] != 0 or self.t_bases[0] != 0:
            raise Decline("the decode times do not start at sample 0")
        for c in range(runs):
            if self.t_durations[c] < 0 or self.t_ends[c] <= self.t_firsts[c]:
                raise Decline("a run of decode times is empty or goes back")
            if c and (self.t_firsts[c] != self.t_ends[c - 1] or self.t_bases[c] != self.t_bases[
                    c - 1] + mul(self.t_ends[c - 1] - self.t_firsts[c - 1], self.t_durations[c - 1])):
                raise Decline("the decode times' runs do not follow each other")
        # Every tick count a time divides is exact as a float64 (`Timeline.exact`), so
        # that C's division rounds once, as Python's `int / int` does.
        total = self.t_bases[runs - 1] + mul(
            self.t_ends[runs - 1] - self.t_firsts[runs - 1], self.t_durations[runs - 1])
        if not (-EXACT < self.shift < EXACT and -EXACT < total - self.shift < EXACT
                and self.timescale < EXACT and isfinite(self.delay)):
            raise Decline("times float64 cannot hold exactly")
        if self.has_edits and not 0 <= self.e_delay < EXACT:
            raise Decline("an edit delay float64 cannot hold exactly")  # divided as a float
        if self.has_sync:
            for c in range(1, self.sync.shape[0]):
                if self.sync[c] < self.sync[c - 1]:
                    raise Decline("stss does not ascend")  # bisected
        if self.sizes.shape[0] != 4 * self.count or self.prefix.shape[0] != self.count + 1:
            raise Decline("the sizes disagree with the count")
        if chunks < 1 or any(
            column.shape[0] != chunks
            for column in (self.c_end, self.c_samples, self.c_description, self.c_offsets,
                           self.c_sizes)
        ):
            raise Decline("the chunk columns disagree")
        if self.c_first[0] != 0 or self.c_end[chunks - 1] != self.count:
            raise Decline("the chunks do not hold the samples")
        for c in range(chunks):
            # Each chunk follows the previous one's samples and bytes: a cut's chunks
            # are then in file order, the first trimmed one too.
            if (self.c_samples[c] < 1 or self.c_end[c] - self.c_first[c] != self.c_samples[c]
                    or self.c_sizes[c] < 0 or self.c_offsets[c] < 0
                    or self.c_offsets[c] + self.c_sizes[c] >= FAR
                    or self.c_sizes[c] != <int64_t>self.prefix[self.c_end[c]]
                    - <int64_t>self.prefix[self.c_first[c]]):
                raise Decline("a chunk disagrees with its samples")
            if c and (self.c_first[c] != self.c_end[c - 1]
                      or self.c_offsets[c] < self.c_offsets[c - 1] + self.c_sizes[c - 1]):
                raise Decline("chunks out of order or overlapping")
        return 0


cdef struct Out:
    unsigned char* data
    Py_ssize_t pos
    Py_ssize_t cap


cdef inline int room(Out* out, Py_ssize_t n) except -1:
    if n < 0 or out.cap - out.pos < n:
        raise Decline("the head would pass its computed size")
    return 0


cdef inline int put32(Out* out, int64_t value) except -1:
    """A big-endian 32-bit field (a value of 0 to 2**32 - 1)."""
    if value < 0 or value > U32:
        raise Decline("a 32-bit field overflows")
    room(out, 4)
    cdef unsigned char* at = out.data + out.pos
    at[0] = (value >> 24) & 0xFF
    at[1] = (value >> 16) & 0xFF
    at[2] = (value >> 8) & 0xFF
    at[3] = value & 0xFF
    out.pos += 4
    return 0


cdef inline int put64(Out* out, int64_t value) except -1:
    """A big-endian 64-bit field, two's complement (the -1 of an elst's empty edit)."""
    room(out, 8)
    cdef unsigned char* at = out.data + out.pos
    cdef int i
    for i in range(8):
        at[i] = (value >> (56 - 8 * i)) & 0xFF
    out.pos += 8
    return 0


cdef inline int put_kind(Out* out, const char* kind) except -1:
    """A box type: 4 bytes."""
    room(out, 4)
    memcpy(out.data + out.pos, kind, 4)
    out.pos += 4
    return 0


cdef int put_view(Out* out, const uint8_t[::1] source, Py_ssize_t lo, Py_ssize_t hi) except -1:
    """The bytes `source[lo:hi]`."""
    if not 0 <= lo <= hi <= source.shape[0]:
        raise Decline("a slice past its table")
    room(out, hi - lo)
    if hi > lo:
        memcpy(out.data + out.pos, &source[lo], hi - lo)
    out.pos += hi - lo
    return 0


cdef int put_bytes(Out* out, bytes data) except -1:
    """All of `data`."""
    cdef Py_ssize_t n = len(data)
    room(out, n)
    if n:
        memcpy(out.data + out.pos, PyBytes_AS_STRING(data), n)
    out.pos += n
    return 0


cdef int put_box_head(Out* out, int64_t size, const char* kind, int version, int64_t count) except -1:
    """A full box's header with an entry count: size, type, version (flags 0), count."""
    put32(out, size)
    put_kind(out, kind)
    if not 0 <= version <= 255:
        raise Decline("a version past a byte")
    put32(out, (<int64_t>version) << 24)
    put32(out, count)
    return 0


cdef inline int64_t be32(const uint8_t[::1] raw, Py_ssize_t at) except? -1:
    """The big-endian 32-bit unsigned value at byte `at`."""
    return ((<int64_t>raw[at] << 24) | (<int64_t>raw[at + 1] << 16)
            | (<int64_t>raw[at + 2] << 8) | <int64_t>raw[at + 3])


cdef inline Py_ssize_t right(const int64_t[::1] keys, int64_t value) except? -1:
    """`bisect_right` in an ascending column."""
    cdef Py_ssize_t lo = 0, hi = keys.shape[0], mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if value < keys[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


cdef inline Py_ssize_t left(const int64_t[::1] keys, int64_t value) except? -1:
    """`bisect_left` in an ascending column."""
    cdef Py_ssize_t lo = 0, hi = keys.shape[0], mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if keys[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef Py_ssize_t near(const int64_t[::1] keys, int64_t value, Py_ssize_t guess, bint is_right) except? -1:
    """`right` (or `left`) of `value`, tried first at `guess` and its neighbour: a
    bisection of a large column reads a cache line per step, a good guess one."""
    cdef Py_ssize_t n = keys.shape[0]
    if 0 < guess < n:  # the answer is `guess` when the key before passes and its own fails
        if is_right:
            if keys[guess - 1] <= value < keys[guess]:
                return guess
            if guess + 1 < n and keys[guess] <= value < keys[guess + 1]:
                return guess + 1
        else:
            if keys[guess - 1] < value <= keys[guess]:
                return guess
            if guess + 1 < n and keys[guess] < value <= keys[guess + 1]:
                return guess + 1
    return right(keys, value) if is_right else left(keys, value)


cdef inline int64_t dts(Track t, int64_t i) except? -1:
    """The decode time of sample `i` (of the end for `i == count`): `Timeline[i]`."""
    cdef Py_ssize_t run = right(t.t_ends, i)
    if run >= t.t_ends.shape[0]:
        run = t.t_ends.shape[0] - 1
    return t.t_bases[run] + (i - t.t_firsts[run]) * t.t_durations[run]


cdef inline double seconds(Track t, int64_t i) except? -1:
    """`Timeline.seconds`: exact ticks (the packer checks), so one rounding as Python's."""
    return <double>(dts(t, i) - t.shift) / <double>t.timescale + t.delay


cdef inline bint passes(Track t, int64_t i, double when, bint at_or_before) except -1:
    """Whether sample `i` starts at or before (or before) `when`."""
    return seconds(t, i) <= when if at_or_before else seconds(t, i) < when


cdef int64_t count_passing(Track t, double when, bint at_or_before) except? -1:
    """How many samples start at or before (or before) `when`: the times ascend with
    the samples, so this is a bisection. Where one duration spans the track, the
    answer arithmetic gives is tried first, and taken when both its sides check."""
    cdef int64_t lo = 0, hi = t.count, mid
    cdef double guess
    if t.t_ends.shape[0] == 1 and t.t_durations[0] > 0:
        guess = ((when - t.delay) * <double>t.timescale + <double>t.shift) / <double>t.t_durations[0]
        if guess >= -1.0 and guess < <double>t.count:  # False for NaN
            mid = <int64_t>(guess + 1.0)  # the first sample past it, maybe
            if (mid == 0 or passes(t, mid - 1, when, at_or_before)) and (
                mid == t.count or not passes(t, mid, when, at_or_before)
            ):
                return mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if passes(t, mid, when, at_or_before):
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline int64_t after(Track t, double when) except? -1:
    """How many samples start at or before `when` (`Timeline.after`)."""
    return count_passing(t, when, True)


cdef inline int64_t before(Track t, double when) except? -1:
    """How many samples start before `when` (`Timeline.before`)."""
    return count_passing(t, when, False)


cdef int64_t sync_at_or_before(Track t, double when) except? -1:
    """`fastclip.sync_at_or_before`."""
    cdef int64_t index = after(t, when) - 1
    cdef Py_ssize_t position
    cdef int64_t found
    if index < 0:
        index = 0
    if not t.has_sync:
        return index
    position = near(t.sync, index + 1, <Py_ssize_t>((index + 1) * t.sync_density), True) - 1
    if position >= 0:
        found = t.sync[position] - 1
    elif t.sync.shape[0]:
        found = t.sync[0] - 1
        if found < 0:
            found = 0
    else:
        found = 0
    if not 0 <= found < t.count:
        raise Decline("stss names a sample outside the track")
    return found


cdef int64_t bytes_between(Track t, int64_t lo, int64_t hi) except? -1:
    """The bytes of samples `[lo, hi)` (none when `hi <= lo`): summed from their stsz
    entries when they are few (the lines next to those a cut copies), else from the
    table of the bytes before each sample (a read far from any other)."""
    cdef int64_t total = 0, i
    if hi <= lo:
        return 0
    if hi - lo > FEW:
        return <int64_t>t.prefix[hi] - <int64_t>t.prefix[lo]
    for i in range(lo, hi):
        total += be32(t.sizes, 4 * i)
    return total


cdef int64_t composition(Runs runs, int64_t i) except? -1:
    """The signed 32-bit value of sample `i` in `runs` (a ctts offset)."""
    cdef int64_t value = be32(runs.entries, 8 * right(runs.ends, i) + 4)
    return value - (1 << 32) if value >> 31 else value


cdef int64_t mul(int64_t a, int64_t b) except? -1:
    """`a * b` of values >= 0, declined past FAR."""
    if a < 0 or b < 0:
        raise Decline("a negative factor")
    if a and b > FAR // a:
        raise Decline("a product past 62 bits")
    return a * b


cdef struct Cut:
    int64_t first, stop, lo, hi, skipped, dropped
    int64_t media_duration, track_duration
    # The cut's runs of stts, ctts: the first and past the last run kept.
    int64_t stts_lo, stts_hi, ctts_lo, ctts_hi
    int64_t sync_lo, sync_hi, stsc_rows
    # Its elst (`fastclip.edit_list`): size 0 without one.
    int64_t elst_size, elst_delay, elst_segment, elst_media_time
    int elst_version
    int64_t bare  # the stbl's size but for its chunk offsets
    int64_t chunk_at  # where its chunks start in the planner's scratch
    int64_t top  # its largest chunk position in the new mdat
    bint wide  # co64
    int64_t stbl  # the stbl's whole size


cdef int runs_cut(Runs runs, int64_t first, int64_t stop, int64_t* lo, int64_t* hi) except -1:
    """The runs `[lo, hi)` holding samples `[first, stop)` (`cuts.Runs.cut`)."""
    lo[0] = right(runs.ends, first)
    hi[0] = right(runs.ends, stop - 1) + 1
    if not lo[0] < hi[0] <= runs.ends.shape[0]:
        raise Decline("a cut past the runs")
    return 0


cdef int put_runs(Out* out, Runs runs, int64_t first, int64_t stop, int64_t lo, int64_t hi) except -1:
    """The entries of a cut of `runs`: the outer two made, those between copied."""
    if hi - lo == 1:
        put32(out, stop - first)
        put_view(out, runs.entries, 8 * lo + 4, 8 * lo + 8)
        return 0
    put32(out, runs.ends[lo] - first)
    put_view(out, runs.entries, 8 * lo + 4, 8 * lo + 8)
    put_view(out, runs.entries, 8 * lo + 8, 8 * hi - 8)
    put32(out, stop - runs.ends[hi - 2])
    put_view(out, runs.entries, 8 * hi - 4, 8 * hi)
    return 0


cdef int64_t chunk_samples(Track t, Cut* cut, int64_t c) except? -1:
    """The samples chunk `c` of a cut keeps (the outer two trimmed)."""
    cdef int64_t n = t.c_samples[c]
    if c == cut.lo and t.c_first[c] < cut.first:
        n -= cut.first - t.c_first[c]
    if c == cut.hi - 1 and t.c_end[c] > cut.stop:
        n -= t.c_end[c] - cut.stop
    return n


cdef int64_t stsc_rows(Track t, Cut* cut, Out* out) except? -1:
    """The rows of a cut's stsc (written to `out` unless None): one where a chunk's
    sample count or description differs from the previous chunk's."""
    cdef int64_t rows = 0, c, n, last_n = -1, last_d = -1, d
    for c in range(cut.lo, cut.hi):
        n = chunk_samples(t, cut, c)
        d = t.c_description[c]
        if n != last_n or d != last_d:
            rows += 1
            if out != NULL:
                put32(out, c - cut.lo + 1)
                put32(out, n)
                put32(out, d)
            last_n, last_d = n, d
    return rows


cdef int64_t stco_size(Cut* cut, int64_t base) except? -1:
    """The size of a cut's chunk offsets box at `base` (`fastclip.moov_size`)."""
    cdef int64_t count = cut.hi - cut.lo
    return 16 + (8 if cut.top + base > U32 else 4) * count


cdef class Planner:
    """The plans of clips keeping one selection of tracks (see `packing.planner`)."""

    cdef list tracks  # of Track, in the selection's order
    cdef int video  # the first video track's place, or -1
    cdef int64_t movie_timescale
    cdef bytes ftyp
    cdef int64_t moov_size  # the source's, the first guess of the new one
    cdef bint has_mvhd
    cdef Duration mvhd
    # The skeleton's pieces in order: what each is, and its bytes in `blob` or its track.
    cdef const int64_t[::1] p_kind
    cdef const int64_t[::1] p_a
    cdef const int64_t[::1] p_b
    cdef bytes blob_bytes
    cdef const uint8_t[::1] blob
    # The containers re-serialised: type, fixed size, their varying boxes `refs[lo:hi]`.
    cdef list k_kind  # of bytes
    cdef const int64_t[::1] k_fixed
    cdef const int64_t[::1] k_lo
    cdef const int64_t[::1] k_hi
    cdef const int64_t[::1] r_kind  # P_EDTS or P_STBL
    cdef const int64_t[::1] r_track
    # Scratch: each chunk of a cut (its place and bytes in the source, where it lands),
    # the spans' starts and lengths.
    cdef Py_ssize_t chunks  # the tracks' chunks: no clip has more
    cdef int64_t[::1] offsets
    cdef int64_t[::1] sizes
    cdef int64_t[::1] positions
    cdef int64_t[::1] span_starts
    cdef int64_t[::1] span_lengths
    cdef bint audio_only  # the selection's: audio tracks alone
    cdef double duration  # the selection's media (a clip must start before its end)
    cdef int64_t base  # where the new mdat's payload starts, once settled
    cdef bint busy
    cdef readonly int planned  # clips planned here (tests check that it ran)

    def __init__(
        self, list tracks not None, bint audio_only, double duration,
        int64_t movie_timescale, bytes ftyp not None, int64_t moov_size, Duration mvhd, pieces,
        bytes blob not None, list container_kinds not None, containers, refs,
    ):
        cdef Py_ssize_t chunks = 0
        cdef Track t
        if not 0 < len(tracks) <= MAX_TRACKS:
            raise Decline("no tracks, or too many")
        self.tracks = tracks
        self.audio_only = audio_only
        self.duration = duration
        self.video = -1
        for i, t in enumerate(tracks):
            if t is None:
                raise Decline("a track that is not packed")
            chunks += t.c_first.shape[0]
            if t.video and self.video < 0:
                self.video = i
        self.movie_timescale = movie_timescale
        self.ftyp = ftyp
        self.moov_size = moov_size
        self.has_mvhd = mvhd is not None
        self.mvhd = mvhd
        self.p_kind, self.p_a, self.p_b = pieces
        self.blob_bytes = blob
        self.blob = blob
        self.k_kind = container_kinds
        self.k_fixed, self.k_lo, self.k_hi = containers
        self.r_kind, self.r_track = refs
        self.chunks = chunks
        self._scratch(min(chunks, SCRATCH))
        self._check()

    cdef int _scratch(self, Py_ssize_t size) except -1:
        """Scratch columns of `size` chunks (a clip of more makes them again, larger)."""
        self.offsets = np.zeros(size, np.int64)
        self.sizes = np.zeros(size, np.int64)
        self.positions = np.zeros(size, np.int64)
        self.span_starts = np.zeros(size, np.int64)
        self.span_lengths = np.zeros(size, np.int64)
        return 0

    @property
    def nbytes(self):
        """Memory held (the tracks' tables are views of the index's arrays)."""
        pieces = self.p_kind.shape[0] + self.p_a.shape[0] + self.p_b.shape[0]
        return len(self.blob_bytes) + 8 * (pieces + 5 * self.positions.shape[0])

    cdef int _check(self) except -1:
        cdef Py_ssize_t n = self.p_kind.shape[0], i, k = self.k_fixed.shape[0]
        if not 0 <= self.movie_timescale <= U32 or not self.duration == self.duration:
            raise Decline("a movie timescale past 32 bits, or no duration")
        if self.p_a.shape[0] != n or self.p_b.shape[0] != n or n < 1:
            raise Decline("skeleton columns disagree")
        if len(self.k_kind) != k or self.k_lo.shape[0] != k or self.k_hi.shape[0] != k or k < 1:
            raise Decline("container columns disagree")
        if self.r_track.shape[0] != self.r_kind.shape[0]:
            raise Decline("reference columns disagree")
        for kind in self.k_kind:
            if type(kind) is not bytes or len(kind) != 4:
                raise Decline("a box type is not 4 bytes")
        for i in range(k):
            if not 0 <= self.k_lo[i] <= self.k_hi[i] <= self.r_kind.shape[0]:
                raise Decline("a container's references are past the table")
            if not 0 <= self.k_fixed[i] < FAR:
                raise Decline("a container's size")
        for i in range(self.r_kind.shape[0]):
            if self.r_kind[i] not in (P_EDTS, P_STBL) or not 0 <= self.r_track[i] < len(self.tracks):
                raise Decline("a varying box that is not an edts or stbl of a track")
        for i in range(n):
            if self.p_kind[i] == P_FIXED:
                if not 0 <= self.p_a[i] <= self.p_b[i] <= self.blob.shape[0]:
                    raise Decline("a piece past the blob")
            elif self.p_kind[i] == P_HEAD:
                if not 0 <= self.p_a[i] < k:
                    raise Decline("a header of no container")
            elif self.p_kind[i] in (P_TKHD, P_MDHD, P_EDTS, P_STBL):
                if not 0 <= self.p_a[i] < len(self.tracks):
                    raise Decline("a slot of no track")
            elif self.p_kind[i] == P_MVHD:
                if not self.has_mvhd:
                    raise Decline("an mvhd slot without mvhd")
            elif self.p_kind[i] != P_EMPTY:
                raise Decline("an unknown piece")
        return 0

    def plan(self, start, end):
        """The plan of the clip `[start, end)` (either None: open), or None to decline:
        bounds `check_seek` or the media's duration refuses are declined, so that the
        caller's checks raise as they always have."""
        cdef double first, last
        if self.busy:
            return None  # another thread is inside (the scratch is shared): decline
        self.busy = True
        try:
            if start is not None:
                first = start
                if not (isfinite(first) and 0.0 <= first < self.duration):
                    return None
            if end is not None:
                last = end
                if not (isfinite(last) and last > 0.0):
                    return None
                if start is not None and not last > first:
                    return None
            plan = self._plan(start, end, self.audio_only)
        except (Decline, IndexError, OverflowError, ZeroDivisionError, TypeError):
            return None
        finally:
            self.busy = False
        self.planned += 1
        return plan

    cdef object _plan(self, start, end, bint audio_only):
        cdef Cut cuts[MAX_TRACKS]
        cdef Py_ssize_t n = len(self.tracks), i
        cdef Track t, video
        cdef double begin = 0.0 if start is None else <double>start
        cdef double stop_at = 0.0 if end is None else <double>end
        cdef double key_time, shown
        cdef int64_t key, longest = 0
        cdef Cut* cut
        if not audio_only and start is not None and self.video >= 0:
            video = self.tracks[self.video]
            key = sync_at_or_before(video, begin)
            shown = 0.0
            if video.ctts is not None:
                shown = <double>composition(video.ctts, key) / <double>video.timescale
            key_time = seconds(video, key)
            begin = key_time + shown if key_time + shown >= 0.0 else 0.0
        for i in range(n):
            t = self.tracks[i]
            cut = &cuts[i]
            if start is None:
                cut.first = 0
            elif t.video and not audio_only:
                cut.first = sync_at_or_before(t, begin)
            else:
                cut.first = after(t, begin) - 1
                if cut.first < 0:
                    cut.first = 0
            cut.stop = t.count if end is None else before(t, stop_at)
            if cut.stop <= cut.first:
                raise Decline("a track with nothing in the clip")  # another skeleton
            self._cut(t, cut, begin)
            if cut.track_duration > longest:
                longest = cut.track_duration
        if self.has_mvhd and not self.mvhd.wide and longest > U32:
            raise Decline("mvhd duration does not fit version 0")
        return self._head(cuts, n, longest)

    cdef int _cut(self, Track t, Cut* cut, double begin) except -1:
        """Everything of a cut but its chunk offsets: bounds, tables' sizes, durations."""
        cdef int64_t first = cut.first, stop = cut.stop, count = stop - first
        cdef int64_t size = 8, late_ticks
        cdef double late
        cdef Step step
        cdef Runs runs
        cdef int64_t lo, hi
        # The chunks holding the samples, and the bytes the outer two lose.
        # Searched first where chunks of the mean sample count put them.
        cut.lo = near(t.c_end, first, <Py_ssize_t>(first * t.density), True)
        cut.hi = near(t.c_first, stop, <Py_ssize_t>(stop * t.density), False)
        if not 0 <= cut.lo < cut.hi <= t.c_first.shape[0]:
            raise Decline("no chunk holds the cut")
        cut.skipped = bytes_between(t, t.c_first[cut.lo], first)
        cut.dropped = bytes_between(t, stop, t.c_end[cut.hi - 1])
        cut.media_duration = dts(t, stop) - dts(t, first)
        # The edit list (`fastclip.edit_list`).
        cdef int64_t media_time, delay = 0, segment, mts = self.movie_timescale
        if first == 0 and t.has_edits:
            if mts:
                late = <double>t.e_delay / <double>mts - begin
                late = nearbyint(late * <double>mts)  # round half to even, as round()
                if not -FAR < late < FAR:
                    raise Decline("an edit delay past 62 bits")
                late_ticks = <int64_t>late
                delay = late_ticks if late_ticks > 0 else 0
            media_time = t.e_media_time
        else:
            media_time = composition(t.ctts, first) if t.video and t.ctts is not None else 0
        if media_time < 0:
            media_time = 0
        segment = cut.media_duration - media_time
        segment = mul(segment if segment > 0 else 0, mts) // t.timescale
        cut.elst_size = 0
        if not t.has_edits:
            cut.track_duration = mul(cut.media_duration, mts) // t.timescale
        else:
            cut.elst_version = t.e_version if segment <= U32 and delay <= U32 else 1
            if cut.elst_version != 1 and media_time > 0x7FFFFFFF:
                raise Decline("an elst media time past 31 bits")  # struct.error in Python
            cut.elst_delay, cut.elst_segment, cut.elst_media_time = delay, segment, media_time
            cut.elst_size = (36 if cut.elst_version == 1 else 28) if not delay else (
                56 if cut.elst_version == 1 else 40)
            cut.track_duration = delay + segment
        if not t.tkhd.wide and cut.track_duration > U32:
            raise Decline("tkhd duration does not fit version 0")
        if not t.mdhd.wide and cut.media_duration > U32:
            raise Decline("mdhd duration does not fit version 0")
        # The stbl's size without its chunk offsets.
        for step in t.recipe:
            if step.code == C_COPY:
                size += len(step.data)
            elif step.code == C_STTS:
                runs_cut(t.stts, first, stop, &cut.stts_lo, &cut.stts_hi)
                size += 16 + 8 * (cut.stts_hi - cut.stts_lo)
            elif step.code == C_CTTS:
                runs_cut(t.ctts, first, stop, &cut.ctts_lo, &cut.ctts_hi)
                size += 16 + 8 * (cut.ctts_hi - cut.ctts_lo)
            elif step.code == C_STSS:
                cut.sync_lo = near(t.sync, first, <Py_ssize_t>(first * t.sync_density), True)
                cut.sync_hi = near(t.sync, stop, <Py_ssize_t>(stop * t.sync_density), True)
                size += 16 + 4 * (cut.sync_hi - cut.sync_lo)
            elif step.code == C_STSZ:
                size += 20 + 4 * count
            elif step.code == C_STSC:
                cut.stsc_rows = stsc_rows(t, cut, NULL)
                size += 16 + 12 * cut.stsc_rows
            elif step.code == C_SDTP:
                if t.sdtp.shape[0] >= 4 + stop:  # else dropped
                    size += 12 + count
            elif step.code == C_SBGP:
                runs_cut(step.runs, first, stop, &lo, &hi)
                size += 12 + len(step.runs.head) + 8 * (hi - lo)
            elif step.code != C_STCO:
                raise Decline("an unknown recipe step")
        cut.bare = size
        return 0

    cdef object _head(self, Cut* cuts, Py_ssize_t n, int64_t longest):
        """The layout of the cuts' chunks, then the head written in one buffer."""
        cdef Py_ssize_t i, spans
        cdef int64_t total = 0, mdat_header, bare, base, size, again, head_size
        cdef int round_
        spans = self._layout(cuts, n, &total)
        mdat_header = 8 if total + 8 <= U32 else 16
        # The moov's size without chunk offsets, plus theirs: the base settles by
        # arithmetic (`fastclip.settle`).
        bare = self._size(cuts, n, -1)
        size = bare
        for i in range(n):
            size += stco_size(&cuts[i], len(self.ftyp) + self.moov_size + mdat_header)
        for round_ in range(5):
            if round_ == 4:
                raise Decline("chunk offsets do not settle")
            again = bare
            for i in range(n):
                again += stco_size(&cuts[i], len(self.ftyp) + size + mdat_header)
            if again == size:
                break
            size = again
        base = len(self.ftyp) + size + mdat_header
        for i in range(n):
            cuts[i].wide = cuts[i].top + base > U32
            cuts[i].stbl = cuts[i].bare + stco_size(&cuts[i], base)
        if self._size(cuts, n, -1) != bare or self._size(cuts, n, 1) != size:
            raise Decline("the moov's size does not settle")  # never: a check
        self.base = base
        head_size = base  # the head ends where the mdat's payload starts
        head = PyBytes_FromStringAndSize(NULL, head_size)
        cdef Out out
        out.data = <unsigned char*>PyBytes_AS_STRING(head)
        out.pos = 0
        out.cap = head_size
        put_bytes(&out, self.ftyp)
        self._moov(&out, cuts, longest)
        if mdat_header == 8:
            put32(&out, total + 8)
            put_kind(&out, b"mdat")
        else:
            put32(&out, 1)
            put_kind(&out, b"mdat")
            put64(&out, total + 16)
        if out.pos != head_size:
            raise Decline("the head is not its computed size")
        return self._made(head, spans)

    cdef int64_t _size(self, Cut* cuts, Py_ssize_t n, int final) except? -1:
        """The moov's size (the last container), its stbls without chunk offsets
        (`final` < 0) or whole."""
        return self._container(cuts, self.k_fixed.shape[0] - 1, final)

    cdef int64_t _container(self, Cut* cuts, Py_ssize_t k, int final) except? -1:
        """The size of container `k` (8 + fixed + its varying boxes)."""
        cdef int64_t size = 8 + self.k_fixed[k]
        cdef Py_ssize_t r
        cdef Cut* cut
        for r in range(self.k_lo[k], self.k_hi[k]):
            cut = &cuts[self.r_track[r]]
            if self.r_kind[r] == P_EDTS:
                if not cut.elst_size:
                    raise Decline("an edts slot without an edit list")
                size += 8 + cut.elst_size
            else:
                size += cut.stbl if final > 0 else cut.bare
        if size > U32:
            raise Decline("a container past 4 GiB")
        return size

    cdef Py_ssize_t _layout(self, Cut* cuts, Py_ssize_t n, int64_t* total) except? -1:
        """`cuts.Layout.of_lists`: the cuts' chunks in file order (each track's are, so
        this merges the tracks), merged into spans where they touch or overlap; where
        each chunk lands, and each cut's largest place. Returns the span count."""
        cdef Py_ssize_t i, c, best, spans = 0, at = 0
        cdef int64_t[MAX_TRACKS] next_chunk, end_at, head
        cdef int64_t offset, size, begin = -1, reach = -1, done = 0
        cdef Track t
        cdef Cut* cut
        # Local views (one acquisition each): the loops below keep their pointers.
        cdef int64_t[::1] offsets, sizes, positions, span_starts, span_lengths
        for i in range(n):
            cut = &cuts[i]
            cut.chunk_at = at
            cut.top = 0
            next_chunk[i] = at
            at += cut.hi - cut.lo
        if at > self.chunks:
            raise Decline("more chunks than the tracks have")
        if at > self.positions.shape[0]:  # a long clip: larger scratch, kept
            self._scratch(min(max(at, 2 * self.positions.shape[0]), self.chunks))
        offsets, sizes, positions = self.offsets, self.sizes, self.positions
        span_starts, span_lengths = self.span_starts, self.span_lengths
        # The cuts' chunks, the outer two trimmed, into the scratch columns: the merge
        # below reads those alone.
        for i in range(n):
            t = self.tracks[i]
            cut = &cuts[i]
            for c in range(cut.lo, cut.hi):
                at = cut.chunk_at + c - cut.lo
                offsets[at] = t.c_offsets[c]
                sizes[at] = t.c_sizes[c]
            offsets[cut.chunk_at] += cut.skipped
            sizes[cut.chunk_at] -= cut.skipped
            sizes[cut.chunk_at + cut.hi - cut.lo - 1] -= cut.dropped
        # Each track's next chunk's place, FAR once it has none (every place is below).
        for i in range(n):
            end_at[i] = cuts[i].chunk_at + cuts[i].hi - cuts[i].lo
            head[i] = offsets[next_chunk[i]]
        while True:
            best = 0
            for i in range(1, n):  # the lowest next chunk; the first track's on a tie
                if head[i] < head[best]:
                    best = i
            if head[best] >= FAR:
                break
            cut = &cuts[best]
            at = next_chunk[best]
            next_chunk[best] += 1
            head[best] = offsets[at + 1] if at + 1 < end_at[best] else FAR
            offset = offsets[at]
            size = sizes[at]
            positions[at] = 0
            if size < 0:
                raise Decline("a chunk trimmed past its bytes")
            if not size:
                continue
            if offset > reach:
                if spans:
                    span_lengths[spans - 1] = reach - begin
                    done += reach - begin
                begin, reach = offset, offset + size
                span_starts[spans] = begin
                spans += 1
            elif offset + size > reach:
                reach = offset + size
            positions[at] = done + offset - begin
            if positions[at] > cut.top:
                cut.top = positions[at]
        if spans:
            span_lengths[spans - 1] = reach - begin
            done += reach - begin
        total[0] = done
        return spans

    cdef int _moov(self, Out* out, Cut* cuts, int64_t longest) except -1:
        """The moov: the skeleton's pieces, its containers' headers and the boxes made."""
        cdef Py_ssize_t i, kind, track
        cdef Track t
        for i in range(self.p_kind.shape[0]):
            kind = self.p_kind[i]
            if kind == P_FIXED:
                put_view(out, self.blob, self.p_a[i], self.p_b[i])
            elif kind == P_HEAD:
                put32(out, self._container(cuts, self.p_a[i], 1))
                put_kind(out, <bytes>self.k_kind[self.p_a[i]])
            elif kind == P_MVHD:
                put_duration(out, self.mvhd, longest)
            elif kind == P_EMPTY:
                pass
            else:
                track = self.p_a[i]
                t = self.tracks[track]
                if kind == P_TKHD:
                    put_duration(out, t.tkhd, cuts[track].track_duration)
                elif kind == P_MDHD:
                    put_duration(out, t.mdhd, cuts[track].media_duration)
                elif kind == P_EDTS:
                    put_elst(out, &cuts[track])
                else:
                    self._stbl(out, t, &cuts[track])
        return 0

    cdef int _stbl(self, Out* out, Track t, Cut* cut) except -1:
        """A cut's stbl (`fastclip._stbl`, with its chunk offsets)."""
        cdef int64_t first = cut.first, stop = cut.stop, count = stop - first, at, lo, hi
        cdef int64_t chunks
        cdef int64_t[::1] positions
        cdef Step step
        cdef Py_ssize_t i
        put32(out, cut.stbl)
        put_kind(out, b"stbl")
        for step in t.recipe:
            if step.code == C_COPY:
                put_bytes(out, step.data)
            elif step.code == C_STTS:
                put_box_head(out, 16 + 8 * (cut.stts_hi - cut.stts_lo), b"stts", 0,
                             cut.stts_hi - cut.stts_lo)
                put_runs(out, t.stts, first, stop, cut.stts_lo, cut.stts_hi)
            elif step.code == C_CTTS:
                put_box_head(out, 16 + 8 * (cut.ctts_hi - cut.ctts_lo), b"ctts", t.ctts_version,
                             cut.ctts_hi - cut.ctts_lo)
                put_runs(out, t.ctts, first, stop, cut.ctts_lo, cut.ctts_hi)
            elif step.code == C_STSS:
                put_box_head(out, 16 + 4 * (cut.sync_hi - cut.sync_lo), b"stss", 0,
                             cut.sync_hi - cut.sync_lo)
                for i in range(cut.sync_lo, cut.sync_hi):
                    put32(out, t.sync[i] - first)
            elif step.code == C_STSZ:
                put32(out, 20 + 4 * count)
                put_kind(out, b"stsz")
                put32(out, 0)
                put32(out, 0)
                put32(out, count)
                put_view(out, t.sizes, 4 * first, 4 * stop)
            elif step.code == C_STSC:
                put_box_head(out, 16 + 12 * cut.stsc_rows, b"stsc", 0, cut.stsc_rows)
                if stsc_rows(t, cut, out) != cut.stsc_rows:
                    raise Decline("stsc rows changed")  # never: a check
            elif step.code == C_STCO:
                chunks = cut.hi - cut.lo
                if cut.wide:
                    put_box_head(out, 16 + 8 * chunks, b"co64", 0, chunks)
                else:
                    put_box_head(out, 16 + 4 * chunks, b"stco", 0, chunks)
                positions = self.positions
                for i in range(cut.chunk_at, cut.chunk_at + chunks):
                    at = positions[i] + self.base  # where the mdat's payload starts
                    if cut.wide:
                        put64(out, at)
                    else:
                        put32(out, at)
            elif step.code == C_SDTP:
                if t.sdtp.shape[0] >= 4 + stop:
                    put32(out, 12 + count)
                    put_kind(out, b"sdtp")
                    put_view(out, t.sdtp, 0, 4)
                    put_view(out, t.sdtp, 4 + first, 4 + stop)
            elif step.code == C_SBGP:
                runs_cut(step.runs, first, stop, &lo, &hi)
                put32(out, 12 + len(step.runs.head) + 8 * (hi - lo))
                put_kind(out, b"sbgp")
                put_bytes(out, step.runs.head)
                put32(out, hi - lo)
                put_runs(out, step.runs, first, stop, lo, hi)
        return 0

    cdef object _made(self, bytes head, Py_ssize_t spans):
        """The plan: the head, then the spans (as columns when many, as `fast_plan`)."""
        cdef Py_ssize_t i
        if spans >= MANY_SPANS:
            return ColumnPlan(
                head,
                np.array(self.span_starts[:spans], np.int64),
                np.array(self.span_lengths[:spans], np.int64),
            )
        # `Plan.head_and_spans(head, spans)` for a head that is never empty, made here (a
        # fifth of a 10-second clip's time went to the Python call; the tests compare
        # every slot with the classmethod's).
        cdef int64_t at = len(head)
        pieces = [head]
        starts = [0, at]
        for i in range(spans):
            pieces.append(tuple.__new__(Span, (self.span_starts[i], self.span_lengths[i])))
            at += self.span_lengths[i]
            starts.append(at)
        plan = Plan.__new__(Plan)
        plan.pieces = tuple(pieces)
        plan.size = starts.pop()
        plan._starts = starts
        return plan


cdef int put_duration(Out* out, Duration box, int64_t duration) except -1:
    """A duration box (`fastclip.DurationBox.box`)."""
    put_bytes(out, box.head)
    if box.wide:
        if duration < 0:
            raise Decline("a negative duration")
        put64(out, duration)
    else:
        put32(out, duration)
    put_bytes(out, box.tail)
    return 0


cdef int put_elst(Out* out, Cut* cut) except -1:
    """A cut's edts and elst (`fastclip.edit_list`)."""
    cdef bint wide = cut.elst_version == 1
    put32(out, 8 + cut.elst_size)
    put_kind(out, b"edts")
    put_box_head(out, cut.elst_size, b"elst", cut.elst_version, 2 if cut.elst_delay else 1)
    if cut.elst_delay:  # the empty edit first
        if wide:
            put64(out, cut.elst_delay)
            put64(out, -1)
        else:
            put32(out, cut.elst_delay)
            put32(out, U32)
        put32(out, 1 << 16)
    if wide:
        put64(out, cut.elst_segment)
        put64(out, cut.elst_media_time)
    else:
        put32(out, cut.elst_segment)
        put32(out, cut.elst_media_time)
    put32(out, 1 << 16)
    return 0
