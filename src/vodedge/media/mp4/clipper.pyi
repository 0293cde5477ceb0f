"""Types of the compiled clip planner (clipper.pyx), built by setup.py where it can."""

from vodedge.media.plan import Plan

COPY: int
STTS: int
CTTS: int
STSS: int
STSZ: int
STSC: int
STCO: int
SDTP: int
SBGP: int
FIXED: int
HEAD: int
MVHD: int
TKHD: int
MDHD: int
EDTS: int
STBL: int
EMPTY: int

class Decline(Exception):
    """A shape or value this planner does not handle: the fast path answers instead."""

class Runs:
    """A run-length table: where each run ends and its big-endian entries."""

    def __init__(self, ends: object, entries: object, head: bytes = b"") -> None: ...

class Duration:
    """A box whose duration a clip rewrites."""

    def __init__(self, head: bytes, wide: bool, tail: bytes) -> None: ...

class Step:
    """One item of a track's stbl recipe."""

    def __init__(self, code: int, data: bytes = b"", runs: Runs | None = None) -> None: ...

class Track:
    """A track's tables, flat."""

    def __init__(
        self,
        video: bool,
        count: int,
        timeline: tuple[object, object, object, object],
        shift: int,
        timescale: int,
        delay: float,
        stts: Runs,
        ctts: Runs | None,
        ctts_version: int,
        sync: object | None,
        sizes: object,
        prefix: object,
        chunks: tuple[object, ...],
        sdtp: bytes | None,
        recipe: list[Step],
        tkhd: Duration,
        mdhd: Duration,
        edits: tuple[int, int, int] | None,
    ) -> None: ...

class Planner:
    """The plans of clips keeping one selection of tracks."""

    planned: int
    @property
    def nbytes(self) -> int:
        """Memory held (the tracks' tables are views of the index's arrays)."""

    def __init__(
        self,
        tracks: list[Track | None],
        audio_only: bool,
        duration: float,
        movie_timescale: int,
        ftyp: bytes,
        moov_size: int,
        mvhd: Duration | None,
        pieces: tuple[object, ...],
        blob: bytes,
        container_kinds: list[bytes],
        containers: tuple[object, object, object],
        refs: tuple[object, object],
    ) -> None: ...
    def plan(self, start: float | None, end: float | None) -> Plan | None:
        """The plan of the clip `[start, end)`, or None to decline."""
