"""Atheris fuzz target: trial playback of MP3 and MPEG-TS (`mp3_preview_plan`, `ts_preview_plan`).

Run by hand:

    .venv/bin/python fuzz/fuzz_preview.py -atheris_runs=200000 fuzz/corpus_preview

The first byte of an input chooses the preview length (0.05 s to about 13 s, or
"the whole file"); the rest is the file, given to both planners. A `MediaError` with
a code and a one-line message is the expected answer to bad input; any other
exception, or a plan whose spans leave the input, do not ascend, or render to more
bytes than the input holds, is a crash.
"""

from __future__ import annotations

from pathlib import Path

import atheris

from fuzzing import fuzz

with atheris.instrument_imports(include=["vodedge"]):
    from vodedge.media.errors import MediaError
    from vodedge.media.mp3 import mp3_preview_plan
    from vodedge.media.plan import Plan, Span
    from vodedge.media.reading import run_bytes
    from vodedge.media.ts import ts_preview_plan

REPO = Path(__file__).resolve().parent.parent
PREVIEW_MEDIA = REPO.parent / "shared" / "preview-media"
SEED_MAX_BYTES = 40_000


def check_plan(plan: Plan, data: bytes) -> None:
    """Spans inside the input and ascending; the render as long as the plan says."""
    last = 0
    for piece in plan.pieces:
        if isinstance(piece, Span):
            if piece.offset < last or piece.end > len(data):
                raise AssertionError(f"bad span {piece} over {len(data)} bytes")
            last = piece.end
    out = plan.render(data)
    if len(out) != plan.size or plan.size > len(data):
        raise AssertionError(f"plan of {plan.size} bytes renders {len(out)} from {len(data)}")


def TestOneInput(raw: bytes) -> None:
    """One input through both planners: a typed error or a sound plan."""
    if len(raw) < 1:
        return
    seconds = 1e9 if raw[0] == 255 else 0.05 + raw[0] * 0.05
    data = raw[1:]
    for planner in (mp3_preview_plan, ts_preview_plan):
        try:
            plan = run_bytes(planner(len(data), seconds), data)
        except MediaError as exc:
            message = str(exc)
            if not exc.code or exc.code == MediaError.code or not message or "\n" in message:
                raise AssertionError(f"bad error {type(exc).__name__}: {message!r}") from exc
            continue
        check_plan(plan, data)


def seed_corpus(corpus: Path) -> None:
    """Fill an empty corpus directory with the heads of the shared MP3 and TS samples."""
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()) or not PREVIEW_MEDIA.is_dir():
        return
    for path in sorted(PREVIEW_MEDIA.glob("*.mp3")) + sorted(PREVIEW_MEDIA.glob("*.ts")):
        (corpus / path.name).write_bytes(b"\x0a" + path.read_bytes()[:SEED_MAX_BYTES])


def main() -> None:
    """Seed the corpus directories named on the command line, then fuzz."""
    fuzz(TestOneInput, seed_corpus)


if __name__ == "__main__":
    main()
