"""`vodedge extract` and `vodedge inspect` as a user runs them (a real subprocess).

The contract: exit 0 and an exact output; on bad input exit 2 with one line
`vodedge: error: <reason>` and never a traceback; the output file appears
whole or not at all (an existing one is left as it was).
"""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

import mp4_rewrite as rw
from media_matrix import media
from oracle import (
    audio_framemd5,
    cli_error_line,
    extract_mp4,
    first_diff,
    probe,
    run_cli,
    streams_of,
)


def _only(directory: Path) -> list[str]:
    """The names in `directory` (to spot temporary files left behind)."""
    return sorted(p.name for p in directory.iterdir())


# --- extract: success ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["mp4_h264_aac", "mp4_frag_default_base_moof", "3gp_h264_aac"])
def test_extract_writes_what_the_plan_renders(name: str, tmp_path: Path) -> None:
    """The CLI's file equals the plan's rendering, and ffmpeg agrees it is exact."""
    src = media(name)
    out = tmp_path / f"audio{src.suffix}"
    proc = run_cli("extract", src, "-o", out)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-800:]}"
    assert "Traceback" not in proc.stderr
    assert _only(tmp_path) == [out.name], "temporary files left next to the output"
    assert out.read_bytes() == extract_mp4(src.read_bytes()), "CLI output != plan.render"
    assert not streams_of(probe(out), "video")
    want, got = audio_framemd5(src), audio_framemd5(out)
    assert got == want, first_diff(want, got)


def test_extract_replaces_existing_output(tmp_path: Path) -> None:
    """An existing output file is replaced whole."""
    out = tmp_path / "audio.mp4"
    out.write_bytes(b"old contents")
    proc = run_cli("extract", media("mp4_h264_aac_faststart"), "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == extract_mp4(media("mp4_h264_aac_faststart").read_bytes())


def test_extract_flv_dispatches_on_content(tmp_path: Path) -> None:
    """An FLV (even named .mp4) goes to the FLV path, not to an ISO BMFF error."""
    src = tmp_path / "really-an-flv.mp4"
    src.write_bytes(media("flv_h264_aac").read_bytes())
    out = tmp_path / "audio.flv"
    proc = run_cli("extract", src, "-o", out)
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-800:]}"
    assert [s["codec_type"] for s in probe(out)["streams"]] == ["audio"]
    want, got = audio_framemd5(src), audio_framemd5(out)
    assert got == want, first_diff(want, got)


# --- extract: errors ------------------------------------------------------------------


def _bad_inputs(tmp_path: Path) -> dict[str, Path]:
    faststart = media("mp4_h264_aac_faststart").read_bytes()
    made = {
        "garbage": bytes(range(251)) * 40,
        "empty": b"",
        "truncated_moov": faststart[:600],
        "truncated_data": faststart[: len(faststart) // 2],
        "text": b"<html><body>404 Not Found</body></html>\n",
        "box_size_zero_junk": b"\x00\x00\x00\x00ftyp" + bytes(100),
    }
    paths = {}
    for name, data in made.items():
        path = tmp_path / "in" / f"{name}.mp4"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        paths[name] = path
    paths["video_only"] = media("mp4_video_only")
    paths["flv_video_only"] = media("flv_video_only")
    paths["nonexistent"] = tmp_path / "in" / "does-not-exist.mp4"
    paths["directory"] = tmp_path / "in"
    return paths


BAD = [
    "garbage", "empty", "truncated_moov", "truncated_data", "text", "box_size_zero_junk",
    "video_only", "flv_video_only", "nonexistent", "directory",
]  # fmt: skip


@pytest.mark.parametrize("bad", BAD)
def test_extract_bad_input_one_line_no_output(bad: str, tmp_path: Path) -> None:
    """Bad input: exit 2, one stderr line, no traceback, no output file, no temp file."""
    src = _bad_inputs(tmp_path)[bad]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run_cli("extract", src, "-o", out_dir / "audio.mp4")
    cli_error_line(proc)
    assert _only(out_dir) == [], f"left behind after failing: {_only(out_dir)}"


@pytest.mark.parametrize("bad", ["garbage", "truncated_data", "video_only"])
def test_extract_error_keeps_existing_output(bad: str, tmp_path: Path) -> None:
    """A failed extraction leaves a previous output file exactly as it was."""
    src = _bad_inputs(tmp_path)[bad]
    out = tmp_path / "audio.mp4"
    out.write_bytes(b"previous good output")
    cli_error_line(run_cli("extract", src, "-o", out))
    assert out.read_bytes() == b"previous good output"
    assert _only(tmp_path) == ["audio.mp4", "in"]


def test_extract_error_reasons_say_what_is_wrong(tmp_path: Path) -> None:
    """The one line names the problem (not just "error")."""
    inputs = _bad_inputs(tmp_path)
    out = tmp_path / "o.mp4"
    line = cli_error_line(run_cli("extract", inputs["video_only"], "-o", out))
    assert "audio" in line.lower(), line
    line = cli_error_line(run_cli("extract", inputs["nonexistent"], "-o", out))
    assert "does-not-exist.mp4" in line or "no such file" in line.lower(), line


def test_extract_output_directory_missing(tmp_path: Path) -> None:
    """An output path in a directory that does not exist: exit 2, one line."""
    out = tmp_path / "nowhere" / "audio.mp4"
    cli_error_line(run_cli("extract", media("mp4_h264_aac"), "-o", out))
    assert not out.parent.exists()


@pytest.mark.parametrize(
    "args",
    [("extract",), ("extract", "x.mp4"), ("frobnicate",), (), ("inspect",)],
    ids=["no-input", "no-output", "unknown-command", "nothing", "inspect-no-input"],
)
def test_usage_errors_are_one_line(args: tuple[str, ...]) -> None:
    """Usage mistakes follow the same contract: exit 2, one line."""
    cli_error_line(run_cli(*args))


# --- inspect ----------------------------------------------------------------------------


def test_inspect_summary() -> None:
    """The readable summary names the brand, moov place, codecs, languages and saving."""
    proc = run_cli("inspect", media("mp4_two_languages"))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    for needle in ("isom", "tail", "eng", "fra", "avc1", "mp4a"):
        assert needle in text, f"{needle!r} missing from inspect output:\n{text}"
    assert "%" in text, "the share saved is missing"


@pytest.mark.parametrize(
    "name", ["mp4_two_languages", "mp4_h264_aac_faststart", "mp4_frag_dash_sidx", "m4a_aac"]
)
def test_inspect_json(name: str) -> None:
    """`inspect --json` parses and agrees with the file and with the real extraction."""
    src = media(name)
    data = src.read_bytes()
    proc = run_cli("inspect", src, "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    top = rw.parse(data)
    moov = rw.find_all(top, "moov")[0]
    assert report["size"] == len(data)
    assert report["moov_offset"] == moov.src_start
    assert report["moov_size"] == (moov.src_end or 0) - (moov.src_start or 0)
    types = [b.type for b in top]
    want_position = "head" if types.index(b"moov") < types.index(b"mdat") else "tail"
    if b"moof" not in types:
        assert report["moov_position"] == want_position
    kinds = {"soun": "audio", "vide": "video"}
    want_tracks = [
        (tid, kinds.get(handler.decode(), handler.decode()))
        for tid, handler, _ in (rw.trak_fields(t) for t in rw.find_all(top, "moov/trak"))
    ]
    assert [(t["id"], t["kind"]) for t in report["tracks"]] == want_tracks
    audio = [t for t in report["tracks"] if t["kind"] == "audio"]
    langs = [(s.get("tags") or {}).get("language", "und") for s in streams_of(probe(src), "audio")]
    assert [t["language"] for t in audio] == langs
    # "the bytes an audio-only output would have": exactly what extract writes.
    assert report["audio_only_bytes"] == len(extract_mp4(data))


def test_inspect_boxes_tree() -> None:
    """`--boxes` prints every box our own walker finds, nested by indentation."""
    src = media("mp4_two_languages")
    proc = run_cli("inspect", src, "--boxes")
    assert proc.returncode == 0, proc.stderr
    line_re = re.compile(r"^(\s*)([\x20-\x7e]{4})\s+@\s*([\d,]+)\s+([\d,]+)\s*bytes")
    printed: dict[tuple[str, int, int], int] = {}
    for line in proc.stdout.splitlines():
        m = line_re.match(line)
        if m:
            key = (m.group(2), int(m.group(3).replace(",", "")), int(m.group(4).replace(",", "")))
            printed[key] = len(m.group(1))
    assert printed, f"no box lines recognised in:\n{proc.stdout[:1500]}"
    indent: dict[int, int] = {}
    for path, box in rw.walk(rw.parse(src.read_bytes())):
        assert box.src_start is not None and box.src_end is not None
        key = (box.name, box.src_start, box.src_end - box.src_start)
        assert key in printed, f"{path} @{box.src_start} ({key[2]} bytes) not in the tree"
        depth = path.count("/")
        indent.setdefault(depth, printed[key])
        assert printed[key] == indent[depth], f"{path}: indentation differs from its peers"
    depths = sorted(indent)
    assert all(indent[a] < indent[b] for a, b in itertools.pairwise(depths))


def test_inspect_bad_input_one_line(tmp_path: Path) -> None:
    """inspect on garbage or a missing file: exit 2, one line."""
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x07" * 1000)
    cli_error_line(run_cli("inspect", junk))
    cli_error_line(run_cli("inspect", tmp_path / "missing.mp4", "--json"))


def test_inspect_flv() -> None:
    """inspect understands FLV too (issue 3): tags by type and codecs."""
    proc = run_cli("inspect", media("flv_h264_aac"), "--json")
    assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr[-800:]}"
    report = json.loads(proc.stdout)
    assert report, "empty report"
