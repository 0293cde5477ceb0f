"""Named test media, generated with ffmpeg at test time into a shared cache.

Every case is an ffmpeg recipe. The cached file's name carries a hash of the
full command line and of ffmpeg's version, so a changed recipe (or a new
ffmpeg) regenerates instead of silently testing yesterday's file. Generation
is serialised per file with an `fcntl` lock and published with `os.replace`,
so `pytest -n 2` workers can ask for the same case at the same time.

Use: `media("mp4_h264_aac") -> Path`; `MP4_CASES` / `FLV_CASES` map names to
`Case`s that also say what the file holds and what extraction should do.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Bump to force regeneration of every case (e.g. after fixing a recipe bug
# that the command hash would not see, like a change in this module's logic).
RECIPE_VERSION = "1"

REPO = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("VODEDGE_TEST_CACHE") or REPO / ".cache" / "test-media")
# Real files made by other tools, beside the repository (see its README and MANIFEST).
SHARED_MEDIA = REPO.parent / "shared" / "media"

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"

# Placeholder in a recipe for the path of another case (derived files, e.g. a
# stream-copied trim of an existing case). The dependency's key feeds ours.
_CASE_REF = re.compile(r"\{case:([a-z0-9_]+)\}")


@dataclass(frozen=True)
class Case:
    """One generated input: its ffmpeg arguments and what it should contain."""

    name: str
    args: tuple[str, ...]
    ext: str
    has_video: bool = True
    audio_codecs: tuple[str, ...] = ("aac",)
    languages: tuple[str, ...] = ()
    # The MediaError code extraction must raise, or None when it must succeed.
    error: str | None = None
    slow: bool = False
    # Box paths ("moov/trak/edts/elst", "moof", "sidx") the file must contain:
    # the matrix checks its own recipes, so a case cannot quietly stop testing
    # the feature it is named after.
    boxes: tuple[str, ...] = ()
    moov_first: bool | None = None
    # Extra properties for FLV cases (e.g. a keyframes index in onMetaData).
    keyframe_index: bool = False
    note: str = ""

    @property
    def audio_streams(self) -> int:
        """How many audio streams the file holds."""
        return len(self.audio_codecs)

    def command(self, output: str) -> list[str]:
        """The full ffmpeg command line writing this case to `output`."""
        args = [_CASE_REF.sub(lambda m: str(media(m.group(1))), a) for a in self.args]
        return [FFMPEG, "-nostdin", "-v", "error", "-y", *args, output]


# --- building blocks ---------------------------------------------------------


def _video(seconds: float = 2, size: str = "160x90", rate: int = 25) -> tuple[str, ...]:
    return ("-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}:duration={seconds}")


def _audio(seconds: float = 2, rate: int = 44100, freq: int = 440) -> tuple[str, ...]:
    return ("-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate={rate}:duration={seconds}")


# Short GOPs so fragmented and seeking cases have several keyframes.
H264 = ("-c:v", "libx264", "-preset", "ultrafast", "-g", "12", "-pix_fmt", "yuv420p")
H264_BFRAMES = ("-c:v", "libx264", "-preset", "ultrafast", "-bf", "2", "-g", "12")
HEVC = (
    "-c:v",
    "libx265",
    "-preset",
    "ultrafast",
    "-x265-params",
    "log-level=error",
    "-g",
    "12",
    "-tag:v",
    "hvc1",
)
VP9 = ("-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "12")
MPEG4 = ("-c:v", "mpeg4", "-bf", "2", "-g", "12")
FLV1 = ("-c:v", "flv", "-g", "12")

AAC = ("-c:a", "aac", "-b:a", "64k")
MP3 = ("-c:a", "libmp3lame", "-b:a", "64k")
AC3 = ("-c:a", "ac3", "-b:a", "96k")
OPUS = ("-c:a", "libopus", "-b:a", "48k")
ALAC = ("-c:a", "alac")

# Stream maps for the usual "one video input, one audio input" layout.
AV = ("-map", "0:v", "-map", "1:a")


def _av(video: tuple[str, ...], audio: tuple[str, ...], *extra: str) -> tuple[str, ...]:
    return (*_video(), *_audio(), *AV, *video, *audio, *extra)


def _mp4(name: str, args: tuple[str, ...], **kw: object) -> Case:
    return Case(name, (*args, "-f", "mp4"), "mp4", **kw)  # type: ignore[arg-type]


ELST = "moov/trak/edts/elst"

# Subtitles come in through ffmpeg's data: protocol, so a recipe needs no files.
SRT = (
    "data:text/plain;base64,"
    + base64.b64encode(
        b"1\n00:00:00,000 --> 00:00:01,000\nhello\n\n2\n00:00:01,000 --> 00:00:02,000\nworld\n"
    ).decode()
)

MP4_LIST: list[Case] = [
    # Codec matrix; plain `-f mp4` puts the moov at the tail.
    _mp4(
        "mp4_h264_aac",
        _av(H264, AAC, "-metadata", "title=vodedge matrix"),
        moov_first=False,
        note="baseline; movie-level udta/meta title",
    ),
    _mp4("mp4_h264_aac_faststart", _av(H264, AAC, "-movflags", "+faststart"), moov_first=True),
    _mp4(
        "mp4_h264_bframes_aac",
        _av(H264_BFRAMES, AAC),
        boxes=("moov/trak/mdia/minf/stbl/ctts", ELST),
        note="B-frames: ctts and a video edit list",
    ),
    _mp4("mp4_h264_mp3", _av(H264, MP3), audio_codecs=("mp3",)),
    _mp4("mp4_h264_ac3", _av(H264, AC3), audio_codecs=("ac3",)),
    _mp4("mp4_h264_opus", _av(H264, OPUS, "-ar", "48000"), audio_codecs=("opus",)),
    _mp4("mp4_h264_alac", _av(H264, ALAC), audio_codecs=("alac",)),
    _mp4("mp4_hevc_aac", _av(HEVC, AAC)),
    _mp4("mp4_hevc_ac3", _av(HEVC, AC3, "-movflags", "+faststart"), audio_codecs=("ac3",)),
    _mp4("mp4_vp9_opus", _av(VP9, OPUS), audio_codecs=("opus",)),
    _mp4("mp4_vp9_aac", _av(VP9, AAC)),
    _mp4("mp4_mpeg4_mp3", _av(MPEG4, MP3), audio_codecs=("mp3",)),
    _mp4("mp4_mpeg4_aac", _av(MPEG4, AAC, "-movflags", "+faststart")),
    # QuickTime: PCM only muxes into MOV (the mp4 muxer of this ffmpeg refuses it).
    Case(
        "mov_h264_pcm_s16le",
        (*_av(H264, ("-c:a", "pcm_s16le")), "-f", "mov"),
        "mov",
        audio_codecs=("pcm_s16le",),
    ),
    Case(
        "mov_h264_pcm_s16be",
        (*_av(H264, ("-c:a", "pcm_s16be")), "-f", "mov"),
        "mov",
        audio_codecs=("pcm_s16be",),
    ),
    Case("mov_h264_alac", (*_av(H264, ALAC), "-f", "mov"), "mov", audio_codecs=("alac",)),
    Case(
        "mov_h264_aac_timecode",
        (*_av(H264, AAC), "-timecode", "01:00:00:00", "-f", "mov"),
        "mov",
        note="a tmcd timecode track to drop",
    ),
    # 3GP: this ffmpeg has no AMR encoder, so AAC (3GP allows it) at 3GP-ish rates.
    Case(
        "3gp_h264_aac",
        (*_video(size="176x144"), *_audio(rate=16000), *AV, *H264, *AAC, "-f", "3gp"),
        "3gp",
    ),
    Case(
        "3gp_mpeg4_aac_faststart",
        (
            *_video(size="176x144"),
            *_audio(rate=16000),
            *AV,
            "-c:v",
            "mpeg4",
            "-g",
            "12",
            *AAC,
            "-movflags",
            "+faststart",
            "-f",
            "3gp",
        ),
        "3gp",
        moov_first=True,
    ),
    # Several audio tracks: every one must survive, with its language.
    _mp4(
        "mp4_two_languages",
        (
            *_video(),
            *_audio(freq=440),
            *_audio(freq=660),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            *H264,
            *AAC,
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=fra",
        ),
        audio_codecs=("aac", "aac"),
        languages=("eng", "fra"),
    ),
    _mp4(
        "mp4_two_languages_mixed_codecs",
        (
            *_video(),
            *_audio(freq=440),
            *_audio(freq=660, rate=48000),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            *H264,
            "-c:a:0",
            "aac",
            "-c:a:1",
            "ac3",
            "-metadata:s:a:0",
            "language=deu",
            "-metadata:s:a:1",
            "language=spa",
            "-movflags",
            "+faststart",
        ),
        audio_codecs=("aac", "ac3"),
        languages=("deu", "spa"),
    ),
    _mp4(
        "mp4_h264_aac_subtitles",
        (
            *_video(),
            *_audio(),
            "-f",
            "srt",
            "-i",
            SRT,
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:s",
            *H264,
            *AAC,
            "-c:s",
            "mov_text",
        ),
        note="a tx3g text track to drop",
    ),
    _mp4(
        "mp4_two_video_tracks",
        (
            *_video(),
            *_audio(),
            *_video(size="32x18"),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:v",
            *H264,
            *AAC,
        ),
        note="audio between two video tracks",
    ),
    # Audio delayed by 0.5 s: the muxer writes an empty edit in the audio elst.
    _mp4(
        "mp4_audio_delayed_elst",
        (*_video(), "-itsoffset", "0.5", *_audio(), *AV, *H264, *AAC),
        boxes=(ELST,),
    ),
    # A stream-copied trim: edit lists that start inside the media (media_time > 0).
    _mp4(
        "mp4_trimmed_elst",
        ("-ss", "0.7", "-i", "{case:mp4_h264_aac}", "-map", "0", "-c", "copy"),
        boxes=(ELST,),
    ),
    # Audio only.
    Case("m4a_aac", (*_audio(3), "-c:a", "aac", "-f", "ipod"), "m4a", has_video=False),
    Case(
        "m4a_alac_faststart",
        (*_audio(), *ALAC, "-movflags", "+faststart", "-f", "ipod"),
        "m4a",
        has_video=False,
        audio_codecs=("alac",),
        moov_first=True,
    ),
    Case(
        "m4a_two_languages",
        (
            *_audio(3, freq=440),
            *_audio(3, freq=550, rate=22050),
            "-map",
            "0:a",
            "-map",
            "1:a",
            *AAC,
            "-metadata:s:a:0",
            "language=eng",
            "-metadata:s:a:1",
            "language=jpn",
            "-f",
            "ipod",
        ),
        "m4a",
        has_video=False,
        audio_codecs=("aac", "aac"),
        languages=("eng", "jpn"),
        note="audio only, yet interleaved chunks (a single track gets one chunk)",
    ),
    # Video only: nothing to extract.
    _mp4(
        "mp4_video_only",
        (*_video(), "-map", "0:v", *H264),
        audio_codecs=(),
        error="no_audio_track",
    ),
    # Fragmented.
    _mp4(
        "mp4_frag_default_base_moof",
        _av(H264, AAC, "-movflags", "frag_keyframe+empty_moov+default_base_moof"),
        boxes=("moof/traf/tfhd", "moof/traf/trun", "mfra/tfra"),
    ),
    _mp4(
        "mp4_frag_base_data_offset",
        _av(H264, AAC, "-movflags", "frag_keyframe+empty_moov"),
        boxes=("moof/traf/tfhd", "mfra/tfra"),
        note="tfhd carries an absolute base_data_offset",
    ),
    _mp4(
        "mp4_frag_separate_moof",
        _av(H264, AAC, "-movflags", "frag_keyframe+empty_moov+separate_moof+default_base_moof"),
        boxes=("moof/traf",),
        note="one moof/mdat pair per track, like DASH per-track segments",
    ),
    _mp4(
        "mp4_frag_dash_sidx",
        _av(H264, AAC, "-movflags", "frag_keyframe+empty_moov+default_base_moof+dash"),
        boxes=("sidx", "moof/traf"),
        note="a sidx per track before every fragment",
    ),
    _mp4(
        "mp4_frag_global_sidx",
        _av(H264, AAC, "-movflags", "dash+global_sidx"),
        boxes=("sidx",),
    ),
    _mp4(
        "mp4_frag_hybrid",
        _av(H264, AAC, "-movflags", "frag_keyframe"),
        boxes=("moov/trak/mdia/minf/stbl/stco", "moof", "mfra"),
        note="first samples in the moov's own mdat, the rest in fragments",
    ),
    _mp4(
        "mp4_frag_omit_tfhd_offset",
        _av(H264, AAC, "-movflags", "frag_keyframe+empty_moov+omit_tfhd_offset"),
        boxes=("moof/traf/trun",),
        note="neither base_data_offset nor default-base-is-moof",
    ),
    Case(
        "m4a_frag",
        (*_audio(3), *AAC, "-frag_duration", "500000", "-movflags", "empty_moov", "-f", "mp4"),
        "m4a",
        has_video=False,
        boxes=("moof/traf/trun",),
    ),
    Case(
        "ismv_h264_aac",
        (*_av(H264, AAC), "-f", "ismv"),
        "ismv",
        boxes=("moof/traf/uuid", "mfra"),
        note="Smooth Streaming: uuid boxes inside traf",
    ),
    # 30 minutes at 25 fps: 45,000 video samples make a moov of several hundred
    # kB, the size that exposes quadratic table handling.
    _mp4(
        "mp4_long_30min",
        (
            *_video(1800, size="64x36"),
            *_audio(1800, rate=22050),
            *AV,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "250",
            "-c:a",
            "aac",
            "-b:a",
            "24k",
            "-ac",
            "1",
        ),
        slow=True,
        moov_first=False,
    ),
]


def _flv(name: str, args: tuple[str, ...], **kw: object) -> Case:
    return Case(name, (*args, "-f", "flv"), "flv", **kw)  # type: ignore[arg-type]


KF_INDEX = ("-flvflags", "add_keyframe_index")

FLV_LIST: list[Case] = [
    _flv("flv_h264_aac", _av(H264, AAC)),
    _flv("flv_h264_aac_kfindex", _av(H264, AAC, *KF_INDEX), keyframe_index=True),
    _flv(
        "flv_h264_aac_10s_kfindex",
        (*_video(10), *_audio(10), *AV, *H264, *AAC, *KF_INDEX),
        keyframe_index=True,
        note="10 s, a keyframe every 0.48 s: for seeking",
    ),
    _flv("flv_h264_mp3", _av(H264, MP3, "-ar", "44100"), audio_codecs=("mp3",)),
    _flv(
        "flv_flv1_nellymoser",
        _av(FLV1, ("-c:a", "nellymoser"), "-ar", "22050"),
        audio_codecs=("nellymoser",),
    ),
    _flv(
        "flv_flv1_speex", _av(FLV1, ("-c:a", "libspeex"), "-ar", "16000"), audio_codecs=("speex",)
    ),
    _flv(
        "flv_flv1_adpcm_swf",
        _av(FLV1, ("-c:a", "adpcm_swf"), "-ar", "22050"),
        audio_codecs=("adpcm_swf",),
    ),
    _flv(
        "flv_flv1_pcm_s16le",
        _av(FLV1, ("-c:a", "pcm_s16le"), "-ar", "11025"),
        audio_codecs=("pcm_s16le",),
    ),
    _flv(
        "flv_flv1_pcm_mulaw",
        _av(FLV1, ("-c:a", "pcm_mulaw"), "-ar", "8000"),
        audio_codecs=("pcm_mulaw",),
        note="G.711",
    ),
    _flv("flv_audio_only_aac", (*_audio(3), *AAC), has_video=False),
    _flv(
        "flv_audio_only_mp3_kfindex",
        (*_audio(3), *MP3, "-ar", "22050", *KF_INDEX),
        has_video=False,
        audio_codecs=("mp3",),
        keyframe_index=True,
        note="ffmpeg writes an empty keyframes index: nothing to index without video",
    ),
    _flv(
        "flv_video_only",
        (*_video(), "-map", "0:v", *H264),
        audio_codecs=(),
        error="no_audio_track",
    ),
    _flv(
        "flv_video_only_kfindex",
        (*_video(), "-map", "0:v", *H264, *KF_INDEX),
        audio_codecs=(),
        error="no_audio_track",
        keyframe_index=True,
    ),
]


def _mp3(name: str, args: tuple[str, ...], **kw: object) -> Case:
    return Case(name, args, "mp3", has_video=False, audio_codecs=("mp3",), **kw)  # type: ignore[arg-type]


def _mp2(name: str, args: tuple[str, ...], **kw: object) -> Case:
    return Case(name, args, "mp2", has_video=False, audio_codecs=("mp2",), **kw)  # type: ignore[arg-type]


LAME_VBR = ("-c:a", "libmp3lame", "-q:a", "4")
LAME_CBR = ("-c:a", "libmp3lame", "-b:a", "128k")
STEREO = ("-ac", "2")

# MPEG audio for trial playback. ffmpeg's mp3 muxer writes an ID3v2 tag and a
# Xing (VBR) or Info (CBR) frame with a LAME tag unless told not to.
MP3_LIST: list[Case] = [
    _mp3(
        "mp3_cbr_info_id3v1",
        (*_audio(6), *STEREO, *LAME_CBR, "-write_id3v1", "1", "-metadata", "title=v", "-f", "mp3"),
    ),
    _mp3("mp3_vbr_xing", (*_audio(6), *STEREO, *LAME_VBR, "-f", "mp3")),
    _mp3("mp3_vbr_xing_mono", (*_audio(6), *LAME_VBR, "-f", "mp3"), note="Xing at 21 bytes"),
    _mp3("mp3_cbr_no_info", (*_audio(4), *LAME_CBR, "-write_xing", "0", "-f", "mp3")),
    _mp3(
        "mp3_vbr_no_xing_no_id3",
        (
            *_audio(4),
            *LAME_VBR,
            "-write_xing",
            "0",
            "-id3v2_version",
            "0",
            "-write_id3v1",
            "1",
            "-f",
            "mp3",
        ),
    ),
    _mp3("mp3_mpeg2_22050", (*_audio(4, rate=22050), *LAME_VBR, "-f", "mp3"), note="MPEG-2"),
    _mp3(
        "mp3_mpeg25_8000",
        (*_audio(4, rate=8000), "-c:a", "libmp3lame", "-b:a", "16k", "-f", "mp3"),
        note="MPEG-2.5",
    ),
    _mp2(
        "mp2_layer2_48000",
        (*_audio(4, rate=48000), *STEREO, "-c:a", "mp2", "-b:a", "192k", "-f", "mp2"),
        note="layer II, no info frame",
    ),
    _mp2(
        "mp2_layer2_mpeg2_24000",
        (*_audio(4, rate=24000), "-c:a", "mp2", "-b:a", "64k", "-f", "mp2"),
        note="layer II at an MPEG-2 rate",
    ),
]


def _ts(name: str, args: tuple[str, ...], **kw: object) -> Case:
    return Case(name, (*args, "-f", "mpegts"), "ts", **kw)  # type: ignore[arg-type]


def _seconds(n: float) -> tuple[str, ...]:
    return (*_video(n), *_audio(n))


# MPEG-TS for trial playback: B-frames (PTS out of decode order), audio sent in
# PES packets grouped after their video, M2TS, and PTS that wrap past 2**33.
TS_LIST: list[Case] = [
    _ts("ts_h264_aac", (*_seconds(6), *AV, *H264_BFRAMES, *AAC)),
    _ts("ts_h264_mp3", (*_seconds(6), *AV, *H264, *MP3), audio_codecs=("mp3",)),
    _ts(
        "ts_h264_two_audio",
        (
            *_video(6),
            *_audio(6),
            *_audio(6, freq=660),
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-map",
            "2:a",
            *H264,
            "-c:a:0",
            "aac",
            "-c:a:1",
            "ac3",
        ),
        audio_codecs=("aac", "ac3"),
    ),
    _ts("ts_mp2_audio_only", (*_audio(6), "-c:a", "mp2"), has_video=False, audio_codecs=("mp2",)),
    _ts(
        "ts_h264_aac_pts_wrap",
        (*_seconds(6), *AV, *H264, *AAC, "-output_ts_offset", "95441.5"),
        note="PTS pass 2**33 (95443.7 s) about 2 s in",
    ),
    Case(
        "m2ts_h264_aac",
        (*_seconds(6), *AV, *H264, *AAC, "-mpegts_m2ts_mode", "1", "-f", "mpegts"),
        "m2ts",
        note="192-byte packets",
    ),
]

MP4_CASES: dict[str, Case] = {c.name: c for c in MP4_LIST}
FLV_CASES: dict[str, Case] = {c.name: c for c in FLV_LIST}
MP3_CASES: dict[str, Case] = {c.name: c for c in MP3_LIST}
TS_CASES: dict[str, Case] = {c.name: c for c in TS_LIST}
CASES: dict[str, Case] = {**MP4_CASES, **FLV_CASES, **MP3_CASES, **TS_CASES}
assert len(CASES) == len(MP4_LIST) + len(FLV_LIST) + len(MP3_LIST) + len(TS_LIST), "duplicates"


# --- generation ----------------------------------------------------------------


@functools.cache
def ffmpeg_version() -> str:
    """The first line of `ffmpeg -version` (part of every cache key)."""
    out = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, check=True).stdout
    return out.splitlines()[0] if out else "unknown"


@functools.cache
def cache_key(name: str) -> str:
    """A short hash of everything that determines the bytes of case `name`."""
    case = CASES[name]
    deps = [cache_key(dep) for a in case.args for dep in _CASE_REF.findall(a)]
    material = "\0".join([RECIPE_VERSION, ffmpeg_version(), *case.args, *deps])
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def path_of(name: str) -> Path:
    """Where case `name` lives in the cache (whether or not it exists yet)."""
    case = CASES[name]
    return CACHE_DIR / f"{name}-{cache_key(name)}.{case.ext}"


@functools.cache
def media(name: str) -> Path:
    """The path of case `name`, generating it first when the cache lacks it."""
    if name not in CASES:
        raise KeyError(f"no test media case {name!r}")
    final = path_of(name)
    if final.exists():
        return final
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with _locked(final.with_suffix(final.suffix + ".lock")):
        if final.exists():  # another worker made it while we waited
            return final
        # The muxer is chosen by `-f` in every recipe, so the temporary name's
        # extension does not matter; same directory, so os.replace is atomic.
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            proc = subprocess.run(
                CASES[name].command(str(tmp)), capture_output=True, text=True, timeout=300
            )
            if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size == 0:
                raise RuntimeError(
                    f"ffmpeg failed to generate test case {name} "
                    f"(exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
                )
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    return final


class _locked:
    """An exclusive `fcntl` lock on `path` for the duration of a `with`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def generate_all(names: list[str] | None = None) -> Iterator[tuple[str, Path]]:
    """Generate (or find) every case, yielding (name, path) as each is ready."""
    for name in names if names is not None else list(CASES):
        yield name, media(name)


if __name__ == "__main__":
    # `python tests/media_matrix.py` warms the cache and reports timings.
    import sys
    import time

    t0 = time.monotonic()
    for case_name, case_path in generate_all(sys.argv[1:] or None):
        print(f"{time.monotonic() - t0:7.2f}s  {case_name:36s} {case_path.stat().st_size:>10d}")
