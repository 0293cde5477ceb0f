"""Audio extraction and seeking over HTTP: every matrix case and shared file, byte for byte
against what `vodedge extract`/`clip` write, with the ffmpeg oracle for a few."""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from edge_config import Origins
from edge_harness import Reply, Vodedge
from edge_media import SHARED_MEDIA, CliResult, cli_output, url_name

from media_matrix import FLV_CASES, MP4_CASES, media
from oracle import audio_framemd5, first_diff, probe, streams_of

pytestmark = pytest.mark.xdist_group("edge_audio")

MP4_NAMES = [name for name, case in MP4_CASES.items() if not case.slow]
FLV_NAMES = list(FLV_CASES)
ORACLE_CASES = ["mp4_h264_aac", "mp4_two_languages", "mp4_frag_default_base_moof", "m4a_aac"]


def _shared_rows() -> list[dict[str, str]]:
    manifest = SHARED_MEDIA / "MANIFEST.tsv"
    if not manifest.is_file():
        return []
    with manifest.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


SHARED_ROWS = _shared_rows()


@pytest.fixture(scope="module")
def published(
    origins: Origins, edge: Vodedge, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[Path, str], tuple[str, CliResult]]:
    """`published(file, name)`: the file on nginx (its URL path), and what `vodedge
    extract` makes of it (memoised)."""
    out_dir = tmp_path_factory.mktemp("cli-out")
    done: dict[str, tuple[str, CliResult]] = {}

    def publish(source: Path, name: str) -> tuple[str, CliResult]:
        if name not in done:
            done[name] = (origins.media.add(source, name), cli_output("extract", source, out_dir))
        return done[name]

    return publish


def _assert_same_result(reply: Reply, expected: CliResult, content_type: str) -> None:
    """HTTP says what the CLI says: the same bytes, or a one-line 4xx where the CLI failed."""
    if expected.output is None:
        assert 400 <= reply.status < 500, (reply, expected.error)
        assert reply.header("X-Vodedge-Error"), reply
        assert reply.body.decode().count("\n") == 1, reply.body
        return
    assert reply.status == 200, (reply, reply.body[:200])
    assert reply.header("Content-Type") == content_type
    assert reply.header("Content-Length") == str(len(expected.output))
    assert reply.body == expected.output, "HTTP output differs from `vodedge extract`"
    assert reply.header("Accept-Ranges") == "bytes"
    assert reply.header("ETag")


@pytest.mark.parametrize("name", MP4_NAMES)
def test_mp4_matrix_case_over_http(
    edge: Vodedge, published: Callable[[Path, str], tuple[str, CliResult]], name: str
) -> None:
    """?ali_audio_only=1 gives exactly `vodedge extract`'s file, or its error as a 4xx."""
    case = MP4_CASES[name]
    path, expected = published(media(name), url_name(case))
    # The first request plans over the object as it fills, the second over the cache.
    for _ in ("miss", "hit"):
        reply = edge.get("video.test", path + "?ali_audio_only=1")
        _assert_same_result(reply, expected, "audio/mp4")
    assert reply.header("X-Cache") in (None, "HIT")
    if case.error is not None:
        assert expected.output is None and reply.header("X-Vodedge-Error") == case.error


@pytest.mark.parametrize("name", ORACLE_CASES)
def test_mp4_output_passes_the_ffmpeg_oracle(
    edge: Vodedge,
    published: Callable[[Path, str], tuple[str, CliResult]],
    tmp_path: Path,
    name: str,
) -> None:
    """ffmpeg sees the input's audio packets, and no video, in the HTTP body."""
    source = media(name)
    path, _ = published(source, url_name(MP4_CASES[name]))
    reply = edge.get("video.test", path + "?ali_audio_only=1")
    out = tmp_path / f"http{source.suffix}"
    out.write_bytes(reply.body)
    want, got = audio_framemd5(source), audio_framemd5(out)
    assert got == want, first_diff(want, got)
    assert not streams_of(probe(out), "video")


@pytest.mark.parametrize("name", ["mp4_h264_aac", "mp4_frag_dash_sidx", "mp4_two_languages"])
def test_ranges_and_conditionals_on_the_extracted_output(
    edge: Vodedge, published: Callable[[Path, str], tuple[str, CliResult]], name: str
) -> None:
    """Range at random offsets = slices of the whole output; If-Range, If-None-Match, HEAD."""
    path, expected = published(media(name), url_name(MP4_CASES[name]))
    full = expected.output
    assert full is not None
    url = path + "?ali_audio_only=1"
    whole = edge.get("video.test", url)
    etag = whole.header("ETag")
    assert etag and etag != edge.get("video.test", path, method="HEAD").header("ETag")
    rng = random.Random(name)
    size = len(full)
    ranges = [(0, 0), (size - 1, size - 1), (0, size - 1)]
    ranges += [tuple(sorted(rng.sample(range(size), 2))) for _ in range(8)]
    for first, last in ranges:
        reply = edge.get("video.test", url, {"Range": f"bytes={first}-{last}"})
        assert reply.status == 206, (first, last, reply)
        assert reply.body == full[first : last + 1], (first, last)
        assert reply.header("Content-Range") == f"bytes {first}-{last}/{size}"
        assert reply.header("ETag") == etag
    suffix = edge.get("video.test", url, {"Range": "bytes=-1000"})
    assert suffix.status == 206 and suffix.body == full[-1000:]
    assert edge.get("video.test", url, {"Range": f"bytes={size}-"}).status == 416
    matching = edge.get("video.test", url, {"Range": "bytes=100-199", "If-Range": etag})
    assert matching.status == 206 and matching.body == full[100:200]
    stale = edge.get("video.test", url, {"Range": "bytes=100-199", "If-Range": '"stale"'})
    assert stale.status == 200 and stale.body == full
    not_modified = edge.get("video.test", url, {"If-None-Match": etag})
    assert not_modified.status == 304 and not_modified.body == b""
    head = edge.get("video.test", url, method="HEAD")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(size)
    assert head.header("Content-Type") == "audio/mp4"
    assert head.header("ETag") == etag


@pytest.mark.parametrize(
    "row",
    [pytest.param(row, id=row["file"]) for row in SHARED_ROWS if not row["file"].endswith(".flv")]
    or [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED_MEDIA} is absent"))],
)
def test_shared_mp4_over_http(
    edge: Vodedge,
    published: Callable[[Path, str], tuple[str, CliResult]],
    row: dict[str, str],
) -> None:
    """Real files from other muxers: HTTP and the CLI agree, and `expect` holds."""
    source = SHARED_MEDIA / row["file"]
    path, expected = published(source, f"shared/{row['file']}")
    for _ in ("miss", "hit"):
        reply = edge.get("video.test", path + "?ali_audio_only=1")
        _assert_same_result(reply, expected, "audio/mp4")
    if row["expect"] == "audio":
        assert expected.output is not None, expected.error
    if row["expect"] == "error":
        assert expected.output is None


# --- FLV -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", FLV_NAMES)
def test_flv_matrix_case_over_http_once_cached(
    edge: Vodedge, published: Callable[[Path, str], tuple[str, CliResult]], name: str
) -> None:
    """A cached FLV: Content-Length and exactly `vodedge extract`'s bytes (or its error)."""
    path, expected = published(media(name), url_name(FLV_CASES[name]))
    edge.prime("video.test", path)  # a miss is streamed instead (tested below)
    reply = edge.get("video.test", path + "?ali_audio_only=1")
    _assert_same_result(reply, expected, "video/x-flv")


@pytest.mark.parametrize(
    "file",
    [row["file"] for row in SHARED_ROWS if row["file"].endswith(".flv")]
    or [pytest.param(None, marks=pytest.mark.skip(reason=f"{SHARED_MEDIA} is absent"))],
)
def test_shared_flv_over_http(
    edge: Vodedge, published: Callable[[Path, str], tuple[str, CliResult]], file: str
) -> None:
    """Real FLVs: HTTP and the CLI agree."""
    path, expected = published(SHARED_MEDIA / file, f"shared/{file}")
    edge.prime("video.test", path)  # a miss is streamed instead
    _assert_same_result(edge.get("video.test", path + "?ali_audio_only=1"), expected, "video/x-flv")


@pytest.mark.parametrize("name", ["flv_h264_aac", "flv_h264_mp3", "flv_h264_aac_10s_kfindex"])
def test_flv_miss_is_streamed_chunked_with_the_audio_packets(
    edge: Vodedge, origins: Origins, tmp_path: Path, name: str
) -> None:
    """On a miss the FLV is filtered as it arrives (chunked); the audio packets are the
    input's; once cached the same URL has a Content-Length."""
    source = media(name)
    path = origins.media.add(source, f"flv-miss/{name}.flv")
    origins.fault.behave(path, chunk=16 << 10, drip_after=0, interval=0.01)
    reply = edge.get("faulty.test", path + "?ali_audio_only=1")
    assert reply.status == 200 and reply.complete, reply
    assert reply.header("X-Cache") == "MISS"
    assert reply.header("Content-Length") is None
    assert reply.header("Transfer-Encoding") == "chunked"
    assert reply.header("Content-Type") == "video/x-flv"
    out = tmp_path / "streamed.flv"
    out.write_bytes(reply.body)
    want, got = audio_framemd5(source), audio_framemd5(out)
    assert got == want, first_diff(want, got)
    assert not streams_of(probe(out), "video")
    edge.prime("faulty.test", path)  # the fill, stored
    cached = edge.get("faulty.test", path + "?ali_audio_only=1")
    assert cached.header("X-Cache") == "HIT"
    assert cached.header("Content-Length") == str(len(cached.body))
    assert cached.body == cli_output("extract", source, tmp_path).output


def test_flv_range_on_a_miss_waits_for_the_exact_output(
    edge: Vodedge, origins: Origins, tmp_path: Path
) -> None:
    """A Range needs the output's size: on a miss it is answered from the plan, exactly."""
    source = media("flv_h264_aac_10s_kfindex")
    path = origins.media.add(source, "flv-miss/ranged.flv")
    origins.fault.behave(path, chunk=32 << 10, drip_after=0, interval=0.005)
    want = cli_output("extract", source, tmp_path).output
    assert want is not None
    reply = edge.get("faulty.test", path + "?ali_audio_only=1", {"Range": "bytes=100-9999"})
    assert reply.status == 206, reply
    assert reply.header("Content-Range") == f"bytes 100-9999/{len(want)}"
    assert reply.body == want[100:10000]


# --- seeking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "query", "command", "options"),
    [
        ("video.test", "start=0.5&end=1.5", "clip", ("--start", "0.5", "--end", "1.5")),
        ("video.test", "start=1", "clip", ("--start", "1")),
        ("video.test", "end=0.8", "clip", ("--end", "0.8")),
        (
            "video.test",
            "ali_audio_only=1&start=0.5&end=1.5",
            "extract",
            ("--start", "0.5", "--end", "1.5"),
        ),
        ("seek.test", "from=0.5&to=1.5", "clip", ("--start", "0.5", "--end", "1.5")),
        ("seek.test", "ali_audio_only=1&from=0.25", "extract", ("--start", "0.25")),
        # Past the end: the CLI's error is a 4xx; near the end: a tiny output.
        ("video.test", "start=999", "clip", ("--start", "999")),
        ("video.test", "ali_audio_only=1&start=999", "extract", ("--start", "999")),
        ("video.test", "start=1.9&end=1.95", "clip", ("--start", "1.9", "--end", "1.95")),
        ("video.test", "ali_audio_only=1&start=1.99", "extract", ("--start", "1.99")),
    ],
)
@pytest.mark.parametrize("name", ["mp4_h264_aac", "mp4_h264_bframes_aac", "mp4_frag_hybrid"])
def test_mp4_seeking_matches_the_cli(
    edge: Vodedge,
    origins: Origins,
    published: Callable[[Path, str], tuple[str, CliResult]],
    tmp_path: Path,
    name: str,
    host: str,
    query: str,
    command: str,
    options: tuple[str, ...],
) -> None:
    """start/end (or the domain's own names) give `vodedge clip`/`extract --start/--end`."""
    source = media(name)
    path, _ = published(source, url_name(MP4_CASES[name]))
    expected = cli_output(command, source, tmp_path, *options)
    reply = edge.get(host, f"{path}?{query}")
    content_type = "audio/mp4" if command == "extract" else "video/mp4"
    _assert_same_result(reply, expected, content_type)


def test_seek_names_are_per_domain(
    edge: Vodedge, published: Callable[[Path, str], tuple[str, CliResult]]
) -> None:
    """On a domain whose seek parameters are from/to, `start` is no seek at all."""
    path, _ = published(media("mp4_h264_aac"), url_name(MP4_CASES["mp4_h264_aac"]))
    # Unconsumed parameters are part of the cache key: this is an object of its own.
    edge.prime("seek.test", path + "?start=1&end=1.5")
    reply = edge.get("seek.test", path + "?start=1&end=1.5")
    assert reply.status == 200
    assert reply.body == media("mp4_h264_aac").read_bytes()


def _flv_reference(source: Path, start: int | None, end: int | None, audio_only: bool) -> bytes:
    """The media layer's byte-offset clip of an FLV (the CLI speaks seconds only)."""
    from vodedge.media.flv.plan import flv_clip_plan
    from vodedge.media.reading import run_bytes

    data = source.read_bytes()
    plan = run_bytes(
        flv_clip_plan(len(data), start, end, by_time=False, audio_only=audio_only), data
    )
    return plan.render(data)


@pytest.mark.parametrize("audio_only", [False, True])
@pytest.mark.parametrize("bounds", [(100_000, None), (None, 150_000), (50_000, 200_000)])
def test_flv_byte_offset_seeking(
    edge: Vodedge,
    published: Callable[[Path, str], tuple[str, CliResult]],
    bounds: tuple[int | None, int | None],
    audio_only: bool,
) -> None:
    """FLV start/end are byte offsets unless flv_seek_by_time: the media layer's clip."""
    source = media("flv_h264_aac_10s_kfindex")
    path, _ = published(source, url_name(FLV_CASES["flv_h264_aac_10s_kfindex"]))
    # Cached first: a miss streams (chunked, onMetaData without filesize/keyframes);
    # this test is about the cached answer, the plan's bytes with Content-Length.
    edge.prime("video.test", path)
    start, end = bounds
    query = "&".join(
        part
        for part in (
            "ali_audio_only=1" if audio_only else "",
            f"start={start}" if start is not None else "",
            f"end={end}" if end is not None else "",
        )
        if part
    )
    edge.prime("video.test", path)  # a miss is streamed (next test)
    reply = edge.get("video.test", f"{path}?{query}")
    assert reply.status == 200, reply
    assert reply.body == _flv_reference(source, start, end, audio_only)
    assert reply.header("Content-Length") == str(len(reply.body))


def test_flv_byte_offset_past_the_end_is_400(
    edge: Vodedge, published: Callable[[Path, str], tuple[str, CliResult]]
) -> None:
    """A byte offset beyond the file is an invalid seek, not an empty file."""
    source = media("flv_h264_aac_10s_kfindex")
    path, _ = published(source, url_name(FLV_CASES["flv_h264_aac_10s_kfindex"]))
    edge.prime("video.test", path)
    beyond = source.stat().st_size + 1000
    for query in (f"start={beyond}", f"ali_audio_only=1&start={beyond}"):
        reply = edge.get("video.test", f"{path}?{query}")
        assert reply.status == 400 and reply.header("X-Vodedge-Error") == "invalid_seek", reply


def _flv_tags(data: bytes) -> list[tuple[int, int, bytes]]:
    """(type, timestamp, payload) of every tag after the file header."""
    tags, position = [], 13
    while position + 11 <= len(data):
        kind, size = data[position], int.from_bytes(data[position + 1 : position + 4], "big")
        stamp = int.from_bytes(data[position + 4 : position + 7], "big") | data[position + 7] << 24
        tags.append((kind, stamp, data[position + 11 : position + 11 + size]))
        position += 11 + size + 4
    return tags


@pytest.mark.parametrize("audio_only", [False, True])
def test_flv_byte_offset_clip_streamed_on_a_miss(
    edge: Vodedge, origins: Origins, audio_only: bool
) -> None:
    """On a miss the clip is filtered as it arrives: chunked, the same audio and video tags
    as the cached clip's (only onMetaData may say less, its sizes not being known yet)."""
    source = media("flv_h264_aac_10s_kfindex")
    path = origins.media.add(source, f"flv-miss/clip-{audio_only}.flv")
    origins.fault.behave(path, chunk=32 << 10, drip_after=0, interval=0.005)
    query = ("ali_audio_only=1&" if audio_only else "") + "start=100000&end=300000"
    reply = edge.get("faulty.test", f"{path}?{query}")
    assert reply.status == 200 and reply.complete, reply
    assert reply.header("X-Cache") == "MISS" and reply.header("Content-Length") is None
    want = _flv_reference(source, 100_000, 300_000, audio_only)
    assert reply.body[:13] == want[:13], "FLV header"
    streamed = [tag for tag in _flv_tags(reply.body) if tag[0] != 18]
    planned = [tag for tag in _flv_tags(want) if tag[0] != 18]
    assert streamed == planned


@pytest.mark.parametrize(
    ("query", "command", "options"),
    [
        ("fs=2&fe=6", "clip", ("--start", "2", "--end", "6")),
        ("ali_audio_only=1&fs=3", "extract", ("--start", "3")),
        ("ali_audio_only=1&fs=9.9", "extract", ("--start", "9.9")),
        ("fs=999", "clip", ("--start", "999")),
    ],
)
def test_flv_seeking_by_time_with_custom_names(
    edge: Vodedge,
    published: Callable[[Path, str], tuple[str, CliResult]],
    tmp_path: Path,
    query: str,
    command: str,
    options: tuple[str, ...],
) -> None:
    """flv_seek_by_time: seconds, the same clip as the CLI's."""
    source = media("flv_h264_aac_10s_kfindex")
    path, _ = published(source, url_name(FLV_CASES["flv_h264_aac_10s_kfindex"]))
    edge.prime("seek.test", path)
    expected = cli_output(command, source, tmp_path, *options)
    _assert_same_result(edge.get("seek.test", f"{path}?{query}"), expected, "video/x-flv")


def test_preview_ends_at_n_seconds(
    edge: Vodedge,
    origins: Origins,
    published: Callable[[Path, str], tuple[str, CliResult]],
    tmp_path: Path,
) -> None:
    """ali_video_preview: ?trial=1 is the first second, as `clip --end 1` makes it."""
    from edge_config import PREVIEW_ARG

    source = media("mp4_h264_aac")
    path, _ = published(source, url_name(MP4_CASES["mp4_h264_aac"]))
    edge.prime("preview.test", path)
    reply = edge.get("preview.test", f"{path}?{PREVIEW_ARG}=1")
    _assert_same_result(reply, cli_output("clip", source, tmp_path, "--end", "1"), "video/mp4")
    out = tmp_path / "preview.mp4"
    out.write_bytes(reply.body)
    duration = float(probe(out)["format"]["duration"])
    assert 0.9 <= duration <= 1.2, duration
    audio = edge.get("preview.test", f"{path}?{PREVIEW_ARG}=1&ali_audio_only=1")
    expected = cli_output("extract", source, tmp_path, "--end", "1")
    _assert_same_result(audio, expected, "audio/mp4")
    # A seek past the preview's end is refused; a seek inside it is cut at the end.
    assert edge.get("preview.test", f"{path}?{PREVIEW_ARG}=1&start=1.5").status == 400
    inside = edge.get("preview.test", f"{path}?{PREVIEW_ARG}=1&start=0.5&end=1.8")
    clip = cli_output("clip", source, tmp_path, "--start", "0.5", "--end", "1")
    _assert_same_result(inside, clip, "video/mp4")


def test_audio_track_without_sample_description_is_a_4xx(
    edge: Vodedge,
    published: Callable[[Path, str], tuple[str, CliResult]],
    tmp_path: Path,
) -> None:
    """An audio track with no `stsd`: the CLI's refusal, as the mapped 4xx with its code."""
    import mp4_rewrite as rw

    source = tmp_path / "no-stsd.mp4"
    source.write_bytes(rw.without_audio_stsd(media("mp4_h264_aac").read_bytes()))
    path, expected = published(source, "hostile/no-stsd.mp4")
    assert expected.output is None and "stsd" in (expected.error or ""), expected
    reply = edge.get("video.test", path + "?ali_audio_only=1")
    _assert_same_result(reply, expected, "audio/mp4")
    assert reply.status == 422 and reply.header("X-Vodedge-Error") == "malformed_media", reply
    assert b"no sample description (stsd)" in reply.body
