"""Real files written by other tools (`../shared/media`), each per its `expect` column.

`audio`: the output has no video and the input's exact audio packets.
`error`: a typed MediaError, and exit 2 with one stderr line from the CLI.
`either`: one of the above, or an output ffprobe reads without error.
MP4/3GP go through the MP4 plan; FLVs through `vodedge extract`, which
dispatches on content.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import pytest

import mp4_rewrite as rw
import test_mp4_conformance as conformance
from media_matrix import SHARED_MEDIA
from oracle import (
    OracleError,
    audio_framemd5,
    cli_error_line,
    extract_mp4,
    first_diff,
    framemd5,
    probe,
    run_cli,
    streams_of,
)


def _manifest() -> list[dict[str, str]]:
    path = SHARED_MEDIA / "MANIFEST.tsv"
    if not path.is_file():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


ROWS = _manifest()
FLV_READY = importlib.util.find_spec("vodedge.media.flv.plan") is not None


def _params(kind: str) -> list[object]:
    out: list[object] = []
    for row in ROWS:
        is_flv = row["file"].endswith(".flv")
        if is_flv != (kind == "flv"):
            continue
        marks = []
        if is_flv and not FLV_READY:
            marks.append(pytest.mark.xfail(reason="FLV extraction not landed yet", strict=False))
        out.append(pytest.param(row, id=row["file"], marks=marks))
    return out or [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED_MEDIA} absent"))]


def _no_audio(row: dict[str, str]) -> bool:
    """The manifest says ffprobe sees video (or subtitles) but no audio stream."""
    return ",audio" not in row["streams"] and ",video" in row["streams"]


def _check_audio(src: Path, out_path: Path, out: bytes) -> None:
    """`audio` expectation, with ffprobe's view when ffprobe can open the codec."""
    try:
        probe(src)
    except OracleError:
        # ffmpeg 5.1 cannot open some codecs (xHE-AAC) but still demuxes their
        # packets, so compare those and the boxes; ffprobe must fail alike.
        want, got = audio_framemd5(src), audio_framemd5(out_path)
        assert got == want, "audio packets differ: " + first_diff(want, got)
        conformance.check_structure(src.read_bytes(), out)
        return
    conformance.check_audio_output(src, out_path)
    conformance.check_structure(src.read_bytes(), out)


@pytest.mark.parametrize("row", _params("mp4"))
def test_shared_mp4(row: dict[str, str], shared_media: Path, tmp_path: Path) -> None:
    """Each real MP4/3GP does what its manifest row expects."""
    from vodedge.media.errors import MediaError

    src = shared_media / row["file"]
    data = src.read_bytes()
    out_path = tmp_path / f"out{src.suffix}"
    expect = row["expect"]
    try:
        out = extract_mp4(data)
    except MediaError as exc:
        assert expect in ("error", "either"), f"expected audio, got {exc.code}: {exc}"
        if _no_audio(row):
            # Some of these are also malformed (no mvhd): either reason is true.
            assert exc.code in ("no_audio_track", "malformed_media"), f"{exc.code}: {exc}"
        line = cli_error_line(run_cli("extract", src, "-o", out_path))
        assert not out_path.exists(), f"output left behind after: {line}"
        return
    assert expect != "error", f"expected an error, got {len(out)} bytes of output"
    out_path.write_bytes(out)
    if expect == "audio":
        _check_audio(src, out_path, out)
        return
    # `either`: a malformed input may give an output, but a readable one.
    info = probe(out_path)
    assert not streams_of(info, "video"), "video stream in the audio-only output"


@pytest.mark.parametrize("row", _params("flv"))
def test_shared_flv(row: dict[str, str], shared_media: Path, tmp_path: Path) -> None:
    """Each real FLV, through the CLI: exact audio packets, no video."""
    src = shared_media / row["file"]
    out_path = tmp_path / "out.flv"
    proc = run_cli("extract", src, "-o", out_path)
    if row["expect"] == "error" or (row["expect"] == "either" and proc.returncode):
        cli_error_line(proc)
        return
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-800:]}"
    info = probe(out_path)
    assert [s.get("codec_type") for s in info["streams"]] == ["audio"] * len(
        streams_of(probe(src), "audio")
    )
    want, got = audio_framemd5(src), audio_framemd5(out_path)
    assert got == want, "audio packets differ: " + first_diff(want, got)


# Real fragmented layouts (mfra with trex defaults, sidx) through the rewriters.
SHARED_REWRITE_SOURCES = [
    "gomp4__sample_fragmented.mp4",
    "mp4ff__bbb5s_aac_sidx.mp4",
    "mp4parse__afconvert_aac.mp4",
]


def _rewritten(shared_media: Path, name: str, rewrite: str, tmp_path: Path) -> Path:
    src = shared_media / name
    out = tmp_path / f"{rewrite}-{name}"
    out.write_bytes(rw.rewrite(src.read_bytes(), rewrite))
    want, got = framemd5(src, "0"), framemd5(out, "0")
    assert got == want, f"rewriter {rewrite} broke {name}: " + first_diff(want, got)
    return out


@pytest.mark.parametrize("rewrite", list(rw.REWRITES))
@pytest.mark.parametrize("name", SHARED_REWRITE_SOURCES)
def test_shared_rewritten(name: str, rewrite: str, shared_media: Path, tmp_path: Path) -> None:
    """Rewritten real files (faithful rewrite first) still extract exactly."""
    src = _rewritten(shared_media, name, rewrite, tmp_path)
    out = extract_mp4(src.read_bytes())
    out_path = tmp_path / f"out-{name}"
    out_path.write_bytes(out)
    _check_audio(src, out_path, out)
