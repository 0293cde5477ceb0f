"""Atheris fuzz target: FLV audio extraction (plan and stream), byte clips, summary, AMF0,
partial seeks (a cold object's head and tags from a keyframe).

Run by hand:

    .venv/bin/python fuzz/fuzz_flv.py -atheris_runs=100000 fuzz/corpus_flv

The first two bytes of an input choose a chunk size for the stream and a clip start;
the rest is the file. A `MediaError` with a code and a one-line message is the
expected answer to bad input; any other exception, an output that is not an FLV with
exact back-pointers, or plan and stream outputs that disagree (but for onMetaData),
is a crash.
"""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import atheris

from fuzzing import fuzz

with atheris.instrument_imports(include=["vodedge"]):
    from vodedge.media.errors import MediaError, NoAudioTrack
    from vodedge.media.flv import (
        FlvAudioFilter,
        FlvClipFilter,
        amf0,
        flv_audio_plan,
        flv_clip_plan,
        flv_summary,
    )
    from vodedge.media.flv.partial import partial_plan
    from vodedge.media.flv.seek import parse_seek
    from vodedge.media.plan import Plan
    from vodedge.media.reading import run_bytes

REPO = Path(__file__).resolve().parent.parent
SHARED_MEDIA = REPO.parent / "shared" / "media"
# Seeds are cut to their whole tags within this many bytes: small inputs, many runs.
SEED_MAX_BYTES = 24_000


def tags_of(out: bytes) -> list[tuple[int, bytes]]:
    """(type, whole tag) of an output FLV; AssertionError unless it is well formed."""
    if out[:3] != b"FLV" or out[5:9] != b"\0\0\0\x09" or out[9:13] != b"\0\0\0\0":
        raise AssertionError(f"bad output header {out[:13]!r}")
    position, tags = 13, []
    while position < len(out):
        if position + 15 > len(out):
            raise AssertionError(f"cut tag at output offset {position}")
        size = int.from_bytes(out[position + 1 : position + 4], "big")
        end = position + 11 + size
        if end + 4 > len(out) or struct.unpack_from(">I", out, end)[0] != size + 11:
            raise AssertionError(f"bad tag or back-pointer at output offset {position}")
        tags.append((out[position] & 0x1F, out[position:end]))
        position = end + 4
    return tags


def without_metadata(out: bytes) -> list[bytes]:
    return [
        t for kind, t in tags_of(out) if not (kind == 18 and t[11:24] == b"\x02\x00\x0aonMetaData")
    ]


def check_error(exc: MediaError) -> None:
    message = str(exc)
    if not exc.code or exc.code == MediaError.code or not message.strip() or "\n" in message:
        raise AssertionError(f"bad error {type(exc).__name__}: {message!r}") from exc


T = TypeVar("T")


def attempt(call: Callable[[], T]) -> T | MediaError:
    """The result of `call()`, or its `MediaError` (checked)."""
    try:
        return call()
    except MediaError as exc:
        check_error(exc)
        return exc


def stream(flt: FlvAudioFilter | FlvClipFilter, data: bytes, chunk: int) -> bytes:
    out: list[bytes] = []
    for at in range(0, len(data), chunk):
        out += flt.feed(data[at : at + chunk])
    out += flt.close()
    return b"".join(out)


def compare(planned: object, streamed: object, data: bytes) -> None:
    if isinstance(planned, Plan):
        out = planned.render(data)
        if len(out) != planned.size:
            raise AssertionError("plan size differs from its render")
        if not isinstance(streamed, bytes):
            raise AssertionError(f"stream failed where the plan did not: {streamed!r}")
        if without_metadata(out) != without_metadata(streamed):
            raise AssertionError("plan and stream outputs differ")
    if isinstance(streamed, bytes):
        tags_of(streamed)
        if not isinstance(planned, Plan | NoAudioTrack):
            raise AssertionError(f"plan failed where the stream did not: {planned!r}")


def TestOneInput(raw: bytes) -> None:
    """One input: every entry point answers with a typed error or a well-formed output."""
    if len(raw) < 2:
        return
    data = raw[2:]
    # At most a few hundred feeds per input, one byte at a time for small ones.
    chunk = max(1 + raw[0] * 37, len(data) // 256)
    start = raw[1] * 61

    values = attempt(lambda: amf0.decode_all(data))
    if isinstance(values, list):
        again = amf0.decode_all(amf0.encode_all(values))
        if amf0.encode_all(again) != amf0.encode_all(values):
            raise AssertionError("AMF0 values do not survive a round trip")

    planned = attempt(lambda: run_bytes(flv_audio_plan(len(data)), data))
    streamed = attempt(lambda: stream(FlvAudioFilter(), data, chunk))
    compare(planned, streamed, data)

    planned = attempt(lambda: run_bytes(flv_clip_plan(len(data), start), data))
    streamed = attempt(lambda: stream(FlvClipFilter(start=start), data, chunk))
    compare(planned, streamed, data)

    summary = attempt(lambda: run_bytes(flv_summary(len(data)), data))
    if not isinstance(summary, MediaError):
        json.dumps(summary.to_dict(), allow_nan=False)

    attempt(lambda: run_bytes(flv_clip_plan(len(data), raw[1] / 50, by_time=True), data))

    # A cold object's seek read in part (the head, the tags from an indexed keyframe):
    # its plan reads only the file's bytes, and where the whole file's index plans the
    # same seek the bytes agree (the file's own index placing the start).
    for seek in (parse_seek(start), parse_seek(raw[1] / 50, by_time=True)):
        found = attempt(lambda seek=seek: run_bytes(partial_plan(len(data), seek, False), data))
        if isinstance(found, tuple):
            plan, _ = found
            if any(span.end > len(data) for span in plan.spans()):
                raise AssertionError("a partial plan reads past the file")


def whole_tags(data: bytes) -> bytes:
    """The head of an FLV up to its last whole tag within `SEED_MAX_BYTES`."""
    position = end = 13
    while position + 15 <= min(len(data), SEED_MAX_BYTES):
        position += int.from_bytes(data[position + 1 : position + 4], "big") + 15
        if position <= SEED_MAX_BYTES:
            end = position
    return data[:end]


def seed_corpus(corpus: Path) -> None:
    """Fill an empty corpus directory with small FLVs, each behind two option bytes."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return
    candidates = [REPO / "samples" / "talk.flv"]
    if SHARED_MEDIA.is_dir():
        candidates += sorted(SHARED_MEDIA.glob("*.flv"))
    for path in candidates:
        if path.is_file():
            (corpus / path.name).write_bytes(b"\x6f\x20" + whole_tags(path.read_bytes()))
    sys.path.insert(0, str(REPO / "tests"))
    try:
        from flv_media import Synthetic, synthetic
    except ImportError:
        return
    for name, options in {
        "synthetic.flv": Synthetic(seconds=1.0),
        "enhanced.flv": Synthetic(seconds=1.0, enhanced=True, metadata_object=True),
        "odd.flv": Synthetic(seconds=1.0, bad_back_pointers=True, extra_header=b"\x01\x02"),
    }.items():
        (corpus / name).write_bytes(b"\x00\x08" + synthetic(options))


def main() -> None:
    """Seed the corpus directories named on the command line, then fuzz."""
    fuzz(TestOneInput, seed_corpus)


if __name__ == "__main__":
    main()
