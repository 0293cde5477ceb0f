"""`vodedge inspect` on odd files, error lines that name what the user named, progress bars."""

from __future__ import annotations

import os
import pty
import re
import subprocess
from pathlib import Path

import mp4_rewrite as rw
from media_matrix import FFPROBE, SHARED_MEDIA, media
from oracle import cli_error_line, run_cli, vodedge_command


def test_two_moov_boxes_are_summarised_and_extraction_refused() -> None:
    """Two `moov`s: the first is summarised with a note; extraction still refuses."""
    src = SHARED_MEDIA / "mp4parse__test_case_1185230.mp4"
    proc = run_cli("inspect", src)
    assert proc.returncode == 0, proc.stderr
    assert "note: malformed_media: the file has 2 moov boxes" in proc.stdout, proc.stdout
    assert re.search(r"^\s+1\s+video\s+avc1", proc.stdout, re.M), proc.stdout
    assert re.search(r"^\s+2\s+audio\s+mp4a", proc.stdout, re.M), proc.stdout
    assert "audio only: not possible (malformed_media" in proc.stdout


def test_boxes_are_named_as_the_file_spells_them() -> None:
    """QuickTime's `\\xa9too` (Mac Roman/latin-1 ©) prints as `©too`, not `?too`."""
    src = media("mp4_h264_aac")
    assert b"\xa9too" in src.read_bytes()
    proc = run_cli("inspect", src, "--boxes")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^\s+©too\s+@", proc.stdout, re.M), proc.stdout
    assert "?too" not in proc.stdout


def _keyframes(path: Path) -> int:
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-select_streams", "v", "-show_entries", "packet=flags",
         "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sum(1 for line in out.splitlines() if line.startswith("K"))


def test_flv_keyframes_index_line() -> None:
    """The FLV summary says how many keyframes its index holds, or that it has none."""
    proc = run_cli("inspect", media("flv_h264_aac"))
    assert proc.returncode == 0, proc.stderr
    assert "keyframes index in onMetaData: none" in proc.stdout, proc.stdout
    assert "None" not in proc.stdout
    src = media("flv_h264_aac_kfindex")
    proc = run_cli("inspect", src)
    assert proc.returncode == 0, proc.stderr
    want = _keyframes(src)
    assert want > 1
    assert f"keyframes index in onMetaData: {want} entries" in proc.stdout, proc.stdout


def test_missing_output_directory_names_the_output(tmp_path: Path) -> None:
    """`-o /nonexistent/dir/x.m4a` names that path, not our temporary file."""
    out = f"{tmp_path}/nowhere/x.m4a"
    line = cli_error_line(run_cli("extract", media("m4a_aac"), "-o", out))
    assert line == f"vodedge: error: {out}: No such file or directory", line


def test_audio_track_without_sample_description_is_refused(tmp_path: Path) -> None:
    """No `stsd` in the audio track: exit 2 and one line saying so, and no output."""
    src = tmp_path / "no-stsd.mp4"
    src.write_bytes(rw.without_audio_stsd(media("mp4_h264_aac").read_bytes()))
    out = tmp_path / "audio.m4a"
    line = cli_error_line(run_cli("extract", src, "-o", out))
    assert "audio track 2 has no sample description (stsd)" in line, line
    assert not out.exists()
    line = cli_error_line(run_cli("extract", src, "-o", out, "--start", "0.5"))
    assert "stsd" in line, line
    proc = run_cli("inspect", src)
    assert proc.returncode == 0 and "no sample description" in proc.stdout, proc.stdout


def _stderr_on_a_terminal(*args: str | Path) -> tuple[int, bytes]:
    """Run `vodedge ARGS` with stderr on a pseudo-terminal; (exit code, what it drew)."""
    master, slave = pty.openpty()
    proc = subprocess.run(
        [*vodedge_command(), *map(str, args)], stderr=slave, stdout=subprocess.DEVNULL, timeout=120
    )
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the terminal closed: everything is read
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    return proc.returncode, drawn


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    """A clip of over 64 MiB draws a moving bar on a terminal, and nothing on a pipe."""
    src = tmp_path / "big.mov"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi",
         "-i", "testsrc2=size=1280x720:rate=25:duration=1.6",
         "-c:v", "rawvideo", "-pix_fmt", "uyvy422", "-f", "mov", str(src)],
        check=True, timeout=120,
    )  # fmt: skip
    out_tty, out_pipe = tmp_path / "tty.mov", tmp_path / "pipe.mov"
    code, drawn = _stderr_on_a_terminal("clip", src, "-o", out_tty, "--end", "1.5")
    assert code == 0, drawn
    steps = re.findall(rb"\r\[#* *\] +(\d+)% (\d+)/(\d+) MiB", drawn)
    assert len(steps) >= 3, drawn
    assert steps[-1][0] == b"100" and int(steps[-1][2]) >= 64, drawn
    assert drawn.endswith(b"\n")
    proc = run_cli("clip", src, "-o", out_pipe, "--end", "1.5")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert out_pipe.read_bytes() == out_tty.read_bytes()


def test_cut_off_moov_is_summarised_as_far_as_it_goes(tmp_path: Path) -> None:
    """A file cut inside its `moov`: brand and placement, and notes saying where it ends."""
    src = tmp_path / "cut.mp4"
    src.write_bytes(media("mp4_h264_aac_faststart").read_bytes()[:100])
    proc = run_cli("inspect", src)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("cut.mp4: ISO BMFF, brand isom"), proc.stdout
    assert re.search(r"^note: truncated_media: box 'moov' at \d+ ends at", proc.stdout, re.M)
    assert "audio only: not possible (truncated_media" in proc.stdout
    cli_error_line(run_cli("extract", src, "-o", tmp_path / "a.m4a"))
    # Cut before any moov: nothing to summarise, the one-line error.
    src.write_bytes(media("mp4_h264_aac").read_bytes()[:50_000])
    assert "past the end of the file" in cli_error_line(run_cli("inspect", src))
