"""MP3 trial playback against the ffmpeg oracle, and the frame arithmetic it rests on.

Every preview must decode without an error, last N seconds to within one frame
(ffprobe's duration, which comes from the rewritten Xing/Info/VBRI frame when
there is one, and the sum of its packets), hold exactly the source's first
packets byte for byte, keep the ID3v2 tag and drop the ID3v1 tag.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from media_matrix import FFMPEG, FFPROBE, MP3_CASES, SHARED_MEDIA
from vodedge.media.errors import InvalidSeek, MediaError, NotMpegAudio, TruncatedMedia
from vodedge.media.mp3 import mp3_preview_plan
from vodedge.media.mp3.header import parse_header
from vodedge.media.mp3.info import crc16
from vodedge.media.plan import Plan
from vodedge.media.reading import run_bytes

PREVIEW_MEDIA = SHARED_MEDIA.parent / "preview-media"
SHARED_MP3 = sorted(PREVIEW_MEDIA.glob("*.mp3"))


def plan_of(data: bytes, seconds: float) -> Plan:
    """The preview plan of `data` in memory."""
    return run_bytes(mp3_preview_plan(len(data), seconds), data)


def packets(path: Path) -> list[str]:
    """ffmpeg's framemd5 packet lines (stream, dts, pts, duration, size, hash) of `path`.

    Side data (the encoder's start and end padding) is left out: a preview ends
    where the source goes on, so its last packet carries no end padding.
    """
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-copyts", "-i", str(path),
         "-map", "0:a", "-c", "copy", "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line and not line.startswith("#")]
    return [",".join(part.strip() for part in line.split(",")[:6]) for line in lines]


def format_duration(path: Path) -> float:
    """ffprobe's duration of `path` (from an info frame when there is one)."""
    out = subprocess.run(
        [FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return float(out.strip())


def decode_errors(path: Path) -> str:
    """What ffmpeg complains about while decoding `path`."""
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "null", "-"],
        capture_output=True, text=True,
    )  # fmt: skip
    return proc.stderr.strip() or ("" if proc.returncode == 0 else f"exit {proc.returncode}")


def first_frame(data: bytes) -> tuple[int, float]:
    """Offset and duration (s) of the first frame after any ID3v2 tag (test-side walk)."""
    at = 0
    if data[:3] == b"ID3":
        size = 0
        for byte in data[6:10]:
            size = (size << 7) | byte
        at = 10 + size
    while parse_header(data, at) is None:
        at += 1
    header = parse_header(data, at)
    assert header is not None
    return at, header.samples / header.sample_rate


def check_preview(source: Path, seconds: float, tmp_path: Path) -> tuple[bytes, bytes]:
    """Cut `source` to `seconds` and hold the result against the oracle."""
    data = source.read_bytes()
    plan = plan_of(data, seconds)
    out = plan.render(data)
    assert len(out) == plan.size
    target = tmp_path / f"{source.stem}-{seconds}.mp3"
    target.write_bytes(out)
    assert decode_errors(target) == ""
    source_packets, preview_packets = packets(source), packets(target)
    assert preview_packets, "the preview holds no packet"
    assert preview_packets == source_packets[: len(preview_packets)]
    _, frame = first_frame(data)
    durations = [int(line.split(",")[3]) for line in preview_packets]
    timebase = _timebase(target)
    total = sum(durations) * timebase
    whole = sum(int(line.split(",")[3]) for line in source_packets) * timebase
    expected = min(seconds, whole)
    assert expected - 1e-6 <= total < expected + frame + 1e-6, (total, expected, frame)
    return data, out


def _timebase(path: Path) -> float:
    proc = subprocess.run(
        [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy",
         "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in proc.stdout.splitlines() if x.startswith("#tb 0:"))
    num, den = line.split(":", 1)[1].strip().split("/")
    return int(num) / int(den)


def xing_fields(frame: bytes) -> tuple[bytes, int, int] | None:
    """Tag, frames and bytes of a Xing/Info frame, found by its tag (test-side)."""
    for tag in (b"Xing", b"Info"):
        at = frame.find(tag, 0, 64)
        if at != -1:
            flags = struct.unpack_from(">I", frame, at + 4)[0]
            assert flags & 3 == 3
            frames, size = struct.unpack_from(">II", frame, at + 8)
            return tag, frames, size
    return None


@pytest.mark.parametrize("seconds", [0.5, 1.3, 2.0, 60.0])
@pytest.mark.parametrize("name", sorted(MP3_CASES))
def test_generated_preview_against_ffmpeg(
    name: str, seconds: float, media: Callable[[str], Path], tmp_path: Path
) -> None:
    """Every generated MP3/MP2 flavour, cut at several lengths."""
    source = media(name)
    data, out = check_preview(source, seconds, tmp_path)
    start, frame = first_frame(data)
    assert out[:start] == data[:start], "the ID3v2 tag (and what precedes the audio) is kept"
    assert out[-128:-125] != b"TAG", "the ID3v1 tag is dropped"
    found = xing_fields(out[start : start + 200])
    if found is not None:
        _, frames, size = found
        assert size == len(out) - start
        assert frames == len(packets(tmp_path / f"{source.stem}-{seconds}.mp3"))
        target = tmp_path / f"{source.stem}-{seconds}.mp3"
        assert abs(format_duration(target) - min(seconds, frames * frame)) < frame + 1e-6


@pytest.mark.parametrize("seconds", [0.3, 0.5, 2.0])
@pytest.mark.parametrize("source", SHARED_MP3, ids=lambda p: p.name)
def test_shared_preview_against_ffmpeg(source: Path, seconds: float, tmp_path: Path) -> None:
    """The real files beside the repository (VBR Xing, CBR Info, a large ID3v2.4 tag)."""
    data, out = check_preview(source, seconds, tmp_path)
    start, frame = first_frame(data)
    assert out[:start] == data[:start]
    target = tmp_path / f"{source.stem}-{seconds}.mp3"
    found = xing_fields(out[start : start + 200])
    assert found is not None, "each shared sample has an info frame"
    assert found[1] == len(packets(target))
    assert abs(format_duration(target) - min(seconds, found[1] * frame)) < frame + 1e-6


def test_preview_shows_the_preview_duration_not_the_source(
    media: Callable[[str], Path], tmp_path: Path
) -> None:
    """Without the rewrite, players read the source's length from the Xing frame."""
    source = media("mp3_vbr_xing")
    data = source.read_bytes()
    out = plan_of(data, 1.0).render(data)
    _, frame = first_frame(data)
    naive = tmp_path / "naive.mp3"
    naive.write_bytes(data[: len(out)])
    target = tmp_path / "preview.mp3"
    target.write_bytes(out)
    assert format_duration(naive) > 5.0
    assert abs(format_duration(target) - 1.0) < frame


def test_lame_tag_is_rewritten(media: Callable[[str], Path]) -> None:
    """Music length, end padding and the tag's own CRC describe the preview."""
    data = media("mp3_vbr_xing").read_bytes()
    out = plan_of(data, 1.0).render(data)
    start, _ = first_frame(data)
    lame = out.find(b"Lavc", start, start + 200)
    assert lame != -1
    # Our CRC agrees with the encoder's on the source (stereo: the 190 bytes the spec names).
    assert struct.unpack_from(">H", data, lame + 34)[0] == crc16(data[start : lame + 34])
    assert struct.unpack_from(">I", out, lame + 28)[0] == len(out) - start
    assert out[lame + 22] & 0x0F == 0 and out[lame + 23] == 0, "no end padding"
    assert struct.unpack_from(">H", out, lame + 34)[0] == crc16(out[start : lame + 34])


def test_crc16_is_crc16_arc() -> None:
    """The LAME tag's CRC is CRC-16/ARC; its check value is 0xBB3D."""
    assert crc16(b"123456789") == 0xBB3D


def _frames(data: bytes, start: int) -> list[int]:
    at, out = start, []
    while at + 4 <= len(data):
        header = parse_header(data, at)
        if header is None:
            break
        out.append(at)
        at += header.size()
    return out


def to_free_format(data: bytes) -> bytes:
    """A CBR stream with every header's bitrate index set to 0: the same frames, free format."""
    out = bytearray(data)
    start, _ = first_frame(data)
    for at in _frames(data, start):
        out[at + 2] &= 0x0F
    return bytes(out)


def test_free_format(media: Callable[[str], Path]) -> None:
    """Free format: the frame size comes from the distance between frames."""
    data = media("mp3_cbr_no_info").read_bytes()
    free = to_free_format(data)
    assert free != data
    for seconds in (0.5, 1.7, 100.0):
        cbr, ff = plan_of(data, seconds), plan_of(free, seconds)
        assert cbr.size == ff.size
        # Same cut; the frames differ only in the bitrate nibble.
        assert to_free_format(cbr.render(data)) == ff.render(free)


def with_vbri(data: bytes, per_entry: int = 4) -> bytes:
    """`data` (CBR, no info frame) with a Fraunhofer VBRI frame put in front of its frames."""
    start, _ = first_frame(data)
    frames = _frames(data, start)
    header = data[start : start + 4]
    size = frames[1] - frames[0]
    entries = -(-len(frames) // per_entry)
    frame = bytearray(size)
    frame[:4] = header
    table = b"".join(
        (frames[min((i + 1) * per_entry, len(frames) - 1)] - frames[i * per_entry]).to_bytes(
            2, "big"
        )
        for i in range(entries)
    )
    body = struct.pack(
        ">4sHHHIIHHHH", b"VBRI", 1, 0, 75, len(data) - start + size, len(frames), entries, 1, 2,
        per_entry,
    )  # fmt: skip
    frame[36 : 36 + len(body) + len(table)] = body + table
    assert len(frame) == size, "the table must fit in one frame"
    return data[:start] + bytes(frame) + data[start:]


def test_vbri_header(media: Callable[[str], Path], tmp_path: Path) -> None:
    """A VBRI frame gets the preview's frames, bytes and table; ffprobe reads its duration."""
    data = with_vbri(media("mp3_cbr_no_info").read_bytes(), per_entry=8)
    source = tmp_path / "vbri.mp3"
    source.write_bytes(data)
    assert format_duration(source) == pytest.approx(4.0, abs=0.06)
    _, out = check_preview(source, 1.0, tmp_path)
    start, frame = first_frame(data)
    body = out[start + 36 :]
    assert body[:4] == b"VBRI"
    size, frames, entries = struct.unpack_from(">IIH", body, 10)
    kept = len(packets(tmp_path / "vbri-1.0.mp3"))
    assert (size, frames) == (len(out) - start, kept)
    assert entries == -(-kept // 8)
    table = [int.from_bytes(body[26 + 2 * i : 28 + 2 * i], "big") for i in range(entries)]
    vbri_size = _frames(out, start)[1] - start
    assert sum(table) == len(out) - start - vbri_size, "the table covers the kept frames"
    assert body[26 + 2 * entries : 26 + 2 * (-(-len(_frames(data, start)) // 8))].count(0) > 0
    assert abs(format_duration(tmp_path / "vbri-1.0.mp3") - 1.0) < frame


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        (b"\xff\xfb\x90\x00", 417),  # MPEG-1 layer III 128k 44.1 kHz
        (b"\xff\xfb\x92\x00", 418),  # the same, padded
        (b"\xff\xff\xc0\x00", 416),  # MPEG-1 layer I 384k 44.1 kHz: (12*384000/44100)*4
        (b"\xff\xff\xc2\x00", 420),  # padded by one 4-byte slot
        (b"\xff\xfd\xa4\x00", 576),  # MPEG-1 layer II 192k 48 kHz
        (b"\xff\xf3\x80\x00", 208),  # MPEG-2 layer III 64k 22.05 kHz: 72*64000/22050
        (b"\xff\xf5\x84\x00", 384),  # MPEG-2 layer II 64k 24 kHz: 144*64000/24000
        (b"\xff\xe3\x18\x00", 72),  # MPEG-2.5 layer III 8k 8 kHz
        (b"\xff\xf7\x18\x00", 96),  # MPEG-2 layer I 32k 16 kHz: (12*32000/16000)*4
    ],
)
def test_frame_sizes(raw: bytes, size: int) -> None:
    """Frame sizes for every version and layer, from the standard's formulas."""
    header = parse_header(raw)
    assert header is not None
    assert header.size() == size


@pytest.mark.parametrize(
    "raw",
    [b"\xff\xeb\x90\x00", b"\xff\xf9\x90\x00", b"\xff\xfb\xf0\x00", b"\xff\xfb\x9c\x00",
     b"\xff\xfb\x90\x02", b"\xfe\xfb\x90\x00", b"\xff\xfb\x90"],
)  # fmt: skip
def test_reserved_header_values_are_not_frames(raw: bytes) -> None:
    """Version 01, layer 00, bitrate 1111, rate 11, emphasis 10, a bad sync, short input."""
    assert parse_header(raw) is None


def test_errors_are_typed(media: Callable[[str], Path]) -> None:
    """Not MPEG audio, truncated, and bad preview lengths."""
    data = media("mp3_vbr_xing").read_bytes()
    with pytest.raises(NotMpegAudio):
        plan_of(b"\x00" * 5000, 1.0)
    with pytest.raises(NotMpegAudio):
        plan_of(b"", 1.0)
    with pytest.raises(TruncatedMedia):
        run_bytes(mp3_preview_plan(len(data) + 1000, 1.0), data)
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidSeek):
            plan_of(data, bad)
    id3_claims_more = b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f" + data[10:]
    with pytest.raises(MediaError):
        plan_of(id3_claims_more, 1.0)


def test_junk_between_frames_is_kept_and_skipped(
    media: Callable[[str], Path], tmp_path: Path
) -> None:
    """Garbage inside the stream is passed on (decoders skip it) and not counted as time."""
    data = media("mp3_cbr_no_info").read_bytes()
    start, _ = first_frame(data)
    frames = _frames(data, start)
    at = frames[10]
    junky = data[:at] + b"\x00junk\xff\x00" * 7 + data[at:]
    out = plan_of(junky, 1.0).render(junky)
    clean = plan_of(data, 1.0).render(data)
    assert len(out) == len(clean) + 49


def test_a_preview_past_the_end_is_the_file_without_its_tail_tags(
    media: Callable[[str], Path],
) -> None:
    """Nothing cut: the source's own info frame is kept as it is, only ID3v1 goes."""
    data = media("mp3_cbr_info_id3v1").read_bytes()
    assert data[-128:-125] == b"TAG"
    assert plan_of(data, 3600.0).render(data) == data[:-128]
    vbr = media("mp3_vbr_xing").read_bytes()
    assert plan_of(vbr, 3600.0).render(vbr) == vbr
