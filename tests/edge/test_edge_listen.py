"""The listening page, CORS (set_resp_header), the track choice and the preview cap, over
HTTP against a real `vodedge serve` (the browser's view is tests/listen/)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
from edge_config import Origins, domain, function
from edge_harness import Reply, Vodedge, running
from edge_media import cli_output
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_matrix import media
from oracle import audio_framemd5, audio_summary, demux_errors, framemd5, probe

PAGE = "/_vodedge/listen"
SPLIT = function("ali_video_split", enable="on")
LISTEN = function("vodedge_listen_page", enable="on")
CAPPED = function(
    "ali_video_preview", enable="on", ali_video_preview_argument="free_time",
    vodedge_preview_max="1",
)  # fmt: skip
PLAYER = "https://player.example"


def header(key: str, value: str, **extra: str) -> str:
    """One set_resp_header rule."""
    return function("set_resp_header", key=key, value=value, **extra)


@pytest.fixture(scope="module")
def zero(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """`vodedge serve --origin DIR`: the page is on in zero-config mode."""
    work = tmp_path_factory.mktemp("vodedge-listen-zero")
    server = Vodedge(work, "", origin=str(origins.media.root))
    with running(server) as edge:
        yield edge


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Domains with CORS, a preview cap, and one without the page.

    (That a signed preview length cannot be raised is test_edge_preview_auth's.)"""
    nginx = origins.nginx.url
    config = "".join(
        [
            domain("off.test", nginx, SPLIT),
            domain("cors.test", nginx, SPLIT, LISTEN, header("Access-Control-Allow-Origin", "*"),
                   header("X-Served-By", "edge-7"), header("Server-Timing", "x",
                   header_operation_type="delete")),
            domain("checked.test", nginx, SPLIT,
                   header("Access-Control-Allow-Origin", f"{PLAYER},https://other.example",
                          access_origin_control="on"),
                   header("Access-Control-Max-Age", "600")),
            domain("capped.test", nginx, SPLIT, CAPPED),
        ]
    )  # fmt: skip
    with running(Vodedge(tmp_path_factory.mktemp("vodedge-listen"), config)) as server:
        yield server


def publish(origins: Origins, name: str) -> tuple[str, Path]:
    """A generated matrix case on the origins: its URL path and its file."""
    source = media(name)
    return origins.media.add(source, f"listen/{name}{source.suffix}"), source


def page(server: Vodedge, src: str, host: str = "listen.test") -> Reply:
    """The listening page for `src` (sent percent-encoded, as a browser would)."""
    return server.get(host, f"{PAGE}?src={quote(src, safe='/')}")


def test_page_in_zero_config(zero: Vodedge, origins: Origins) -> None:
    """The page names its file, loads only this node's assets, and forbids the rest (CSP)."""
    path, _ = publish(origins, "mp4_h264_aac")
    reply = page(zero, path)
    assert reply.status == 200, reply
    assert reply.header("Content-Type") == "text/html; charset=utf-8"
    csp = reply.header("Content-Security-Policy") or ""
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, csp
    text = reply.body.decode()
    assert f'data-src="{path}"' in text
    assert f'data-audio-src="{path}?ali_audio_only=1"' in text
    refs = re.findall(r'(?<![-\w])(?:src|href)="([^"]*)"', text)
    assert refs and all(r.startswith("/_vodedge/static/") or r == "data:," for r in refs), refs
    assert "mpegts" not in text  # MP4 plays natively
    for ref in refs[1:]:
        asset = zero.get("listen.test", html.unescape(ref))
        assert asset.status == 200, (ref, asset)
        assert asset.header("Cache-Control") == "public, max-age=31536000, immutable"
        etag = asset.header("ETag")
        assert etag is not None
        again = zero.get("listen.test", html.unescape(ref), {"If-None-Match": etag})
        assert again.status == 304


def test_byte_counter_is_served_beside_the_page(zero: Vodedge) -> None:
    """The service worker that counts bytes: in the page's scope, never cached for long."""
    text = page(zero, "/listen/a.mp4").body.decode()
    assert 'data-counter="/_vodedge/listen-counter.js"' in text
    assert 'data-counter-scope="/_vodedge/"' in text
    worker = zero.get("listen.test", "/_vodedge/listen-counter.js")
    assert worker.status == 200
    assert worker.header("Content-Type") == "text/javascript; charset=utf-8"
    assert worker.header("Cache-Control") == "no-cache"
    assert b'addEventListener("fetch"' in worker.body


def test_flv_page_loads_the_vendored_mpegts(zero: Vodedge, origins: Origins) -> None:
    """An FLV page loads mpegts.js from the node; its licence is served beside it."""
    path, _ = publish(origins, "flv_h264_aac")
    text = page(zero, path).body.decode()
    found = re.search(r'<script src="(/_vodedge/static/mpegts-1\.8\.2/mpegts\.js\?v=\w+)"', text)
    assert found, text
    script = zero.get("listen.test", found.group(1))
    assert script.status == 200
    assert script.header("Content-Type") == "text/javascript; charset=utf-8"
    assert b"mpegts" in script.body[:2000]
    licence = zero.get("listen.test", "/_vodedge/static/mpegts-1.8.2/LICENSE")
    assert licence.status == 200 and b"Apache License" in licence.body
    missing = zero.get("listen.test", "/_vodedge/static/nothing.js")
    assert (missing.status, missing.header("X-Vodedge-Error")) == (404, "not_found")


HOSTILE = [
    None,  # absent
    "",
    "talk.mp4",
    "http://evil.example/talk.mp4",
    "//evil.example/talk.mp4",
    "/talk.txt",
    "/a\\b.mp4",
    "/../secret.mp4",
    "/a/%2e%2e/secret.mp4",
    "/talk.mp4#x",
    '/"><script>alert(1)</script>.mp4',
    "/<img src=x onerror=alert(1)>.mp4",
    "/%zz.mp4",
    "/ talk.mp4",
    "/talk\u00e9.mp4",
    "/" + "a" * 3000 + ".mp4",
    "/_vodedge/listen.mp4",
]


@pytest.mark.parametrize("src", HOSTILE)
def test_bad_src_is_400_with_a_code(zero: Vodedge, src: str | None) -> None:
    """Only a path on this domain, naming an MP4 or FLV file; never echoed unescaped."""
    target = PAGE if src is None else f"{PAGE}?src={quote(src, safe='')}"
    for where in (target, target.replace(PAGE, PAGE + "/info", 1)):
        reply = zero.get("listen.test", where)
        assert (reply.status, reply.header("X-Vodedge-Error")) == (400, "bad_listen_src"), reply
        assert reply.header("Content-Type") == "text/plain; charset=utf-8"
        assert b"<" not in reply.body and len(reply.body.splitlines()) == 1, reply.body


def test_src_twice_is_refused(zero: Vodedge) -> None:
    """Two `src` are two answers to one question."""
    reply = zero.get("listen.test", f"{PAGE}?src=/a.mp4&src=/b.mp4")
    assert (reply.status, reply.header("X-Vodedge-Error")) == (400, "bad_listen_src")


def test_quotes_and_ampersands_are_escaped(zero: Vodedge, origins: Origins) -> None:
    """Characters a URL may hold raw but HTML may not are escaped wherever src appears."""
    src = "/listen/it's(1)&x.mp4?a='1'&b=%22"
    text = page(zero, src).body.decode()
    assert src not in text
    assert f'data-src="{html.escape(src)}"' in text
    assert f'<p class="path" id="path">{html.escape(src)}</p>' in text
    assert text.count("<script") == 1  # listen.js, and nothing the URL brought


def test_page_off_is_the_origins_path(edge: Vodedge) -> None:
    """Without vodedge_listen_page the path is an ordinary one: the origin answers it."""
    reply = page(edge, "/listen/x.mp4", host="off.test")
    assert (reply.status, reply.header("X-Vodedge-Error")) == (404, "origin_status")


def test_info_and_track_choice_on_two_languages(zero: Vodedge, origins: Origins,
                                               tmp_path: Path) -> None:  # fmt: skip
    """The info names both languages; `vodedge_audio_track` keeps one audio track, bit for
    bit, in the audio-only output, its clips, and beside the video."""
    path, source = publish(origins, "mp4_two_languages")
    info = zero.get("listen.test", f"{PAGE}/info?src={quote(path)}")
    assert info.status == 200, info
    answer = json.loads(info.body)
    audio = [t for t in answer["tracks"] if t["kind"] == "audio"]
    assert [t["language"] for t in audio] == ["eng", "fra"]
    expected = probe(source)
    assert abs(answer["duration"] - float(expected["format"]["duration"])) < 0.1
    whole = zero.get("listen.test", f"{path}?ali_audio_only=1")
    assert answer["audio_only_bytes"] == len(whole.body)
    for index, track in enumerate(audio):
        reply = zero.get(
            "listen.test", f"{path}?ali_audio_only=1&vodedge_audio_track={track['id']}"
        )
        assert reply.status == 200, reply
        out = tmp_path / f"track{track['id']}.m4a"
        out.write_bytes(reply.body)
        summary = audio_summary(probe(out))
        assert [s[4] for s in summary] == [track["language"]]
        assert demux_errors(out) == ""
        assert framemd5(out, "0:a") == framemd5(source, f"0:a:{index}")
        assert len(reply.body) < len(whole.body)
    video_id = next(t["id"] for t in answer["tracks"] if t["kind"] == "video")
    for bad in ("abc", "0", "99", str(video_id), "1" * 12):
        reply = zero.get("listen.test", f"{path}?ali_audio_only=1&vodedge_audio_track={bad}")
        assert (reply.status, reply.header("X-Vodedge-Error")) == (400, "invalid_track"), bad
    # With a clip: the same cut of that one track (the clip of both is the oracle).
    both = tmp_path / "both.m4a"
    both.write_bytes(zero.get("listen.test", f"{path}?ali_audio_only=1&start=0.5&end=1.5").body)
    for index, track in enumerate(audio):
        query = f"ali_audio_only=1&start=0.5&end=1.5&vodedge_audio_track={track['id']}"
        clip = zero.get("listen.test", f"{path}?{query}")
        assert clip.status == 200, clip
        out = tmp_path / f"clip{track['id']}.m4a"
        out.write_bytes(clip.body)
        assert [s[4] for s in audio_summary(probe(out))] == [track["language"]]
        assert framemd5(out, "0:a") == framemd5(both, f"0:a:{index}")
    # Without audio only: the video with that one audio track (the page's video mode).
    for index, track in enumerate(audio):
        reply = zero.get("listen.test", f"{path}?vodedge_audio_track={track['id']}")
        assert (reply.status, reply.header("Content-Type")) == (200, "video/mp4"), reply
        out = tmp_path / f"video{track['id']}.mp4"
        out.write_bytes(reply.body)
        assert [s[4] for s in audio_summary(probe(out))] == [track["language"]]
        assert demux_errors(out) == ""
        assert framemd5(out, "0:v") == framemd5(source, "0:v")
        assert framemd5(out, "0:a") == framemd5(source, f"0:a:{index}")


def test_info_refuses_what_the_file_refuses(edge: Vodedge, zero: Vodedge, origins: Origins) -> None:
    """The info is resolved as the file's own request: a missing file is the origin's 404."""
    missing = zero.get("listen.test", f"{PAGE}/info?src=/listen/none.mp4")
    assert (missing.status, missing.header("X-Vodedge-Error")) == (404, "origin_status")


# --- CORS --------------------------------------------------------------------------------


def test_preflight_and_cors_headers(edge: Vodedge, origins: Origins) -> None:
    """A player on another site may fetch ranges: preflight answered, headers exposed."""
    path, source = publish(origins, "mp4_h264_aac")
    pre = edge.get("cors.test", path, {"Origin": PLAYER, "Access-Control-Request-Method": "GET",
                                       "Access-Control-Request-Headers": "range"},
                   method="OPTIONS")  # fmt: skip
    assert pre.status == 204, pre
    assert pre.header("Access-Control-Allow-Origin") == "*"
    assert "GET" in (pre.header("Access-Control-Allow-Methods") or "")
    assert "Range" in (pre.header("Access-Control-Allow-Headers") or "")
    assert pre.header("Access-Control-Max-Age") == "86400"
    assert pre.body == b""
    got = edge.get(
        "cors.test", f"{path}?ali_audio_only=1", {"Origin": PLAYER, "Range": "bytes=0-99"}
    )
    assert got.status == 206 and len(got.body) == 100
    assert got.header("Access-Control-Allow-Origin") == "*"
    exposed = [h.strip() for h in (got.header("Access-Control-Expose-Headers") or "").split(",")]
    assert {"Content-Range", "Content-Length", "Accept-Ranges"} <= set(exposed)
    assert got.header("X-Served-By") == "edge-7"
    # Errors carry them too, so a script can read why it was refused.
    bad = edge.get("cors.test", f"{path}?start=x", {"Origin": PLAYER})
    assert bad.header("Access-Control-Allow-Origin") == "*"
    assert len(source.read_bytes()) > 0


def test_checked_origins(edge: Vodedge, origins: Origins) -> None:
    """access_origin_control: the request's Origin is echoed only when listed."""
    path, _ = publish(origins, "mp4_h264_aac")
    ok = edge.get("checked.test", path, {"Origin": PLAYER, "Range": "bytes=0-9"})
    assert ok.header("Access-Control-Allow-Origin") == PLAYER
    assert "Origin" in (ok.header("Vary") or "")
    other = edge.get("checked.test", path, {"Origin": "https://evil.example", "Range": "bytes=0-9"})
    assert other.status == 206 and other.header("Access-Control-Allow-Origin") is None
    pre = edge.get("checked.test", path, {"Origin": PLAYER, "Access-Control-Request-Method": "GET"},
                   method="OPTIONS")  # fmt: skip
    assert (pre.status, pre.header("Access-Control-Max-Age")) == (204, "600")
    refused = edge.get("checked.test", path, {"Origin": "https://evil.example",
                                              "Access-Control-Request-Method": "GET"},
                       method="OPTIONS")  # fmt: skip
    assert (refused.status, refused.header("X-Vodedge-Error")) == (403, "cors_denied")
    # A domain without CORS still refuses OPTIONS.
    plain = edge.get("off.test", path, {"Origin": PLAYER, "Access-Control-Request-Method": "GET"},
                     method="OPTIONS")  # fmt: skip
    assert (plain.status, plain.header("X-Vodedge-Error")) == (405, "method_not_allowed")


# --- the preview cap ---------------------------------------------------------------------


def test_preview_is_capped_by_the_domain(edge: Vodedge, origins: Origins, tmp_path: Path) -> None:
    """`vodedge_preview_max = 1`: asking 100 seconds gets 1, for MP3 and audio-only M4A."""
    path, source = publish(origins, "mp3_cbr_info_id3v1")
    expected = cli_output("clip", source, tmp_path, "--end", "1")
    assert expected.output is not None, expected.error
    assert edge.get("capped.test", f"{path}?free_time=100").body == expected.output
    assert edge.get("capped.test", f"{path}?free_time=0.5").body != expected.output
    m4a, _ = publish(origins, "m4a_aac")
    capped = edge.get("capped.test", f"{m4a}?free_time=100&ali_audio_only=1")
    one = edge.get("capped.test", f"{m4a}?free_time=1&ali_audio_only=1")
    assert capped.status == 200 and capped.body == one.body


def test_m4a_audio_only_preview(edge: Vodedge, origins: Origins, tmp_path: Path) -> None:
    """M4A (AAC in MP4) audio only with a preview: the first N seconds' packets, exactly."""
    path, source = publish(origins, "m4a_aac")
    reply = edge.get("capped.test", f"{path}?free_time=1&ali_audio_only=1")
    assert reply.status == 200, reply
    assert reply.header("Content-Type") == "audio/mp4"
    assert reply.header("Content-Length") == str(len(reply.body))
    out = tmp_path / "preview.m4a"
    out.write_bytes(reply.body)
    assert demux_errors(out) == ""
    frame = 1024 / int(probe(source)["streams"][0]["sample_rate"])
    assert abs(float(probe(out)["format"]["duration"]) - 1.0) <= frame + 1e-6

    def packets(path: Path) -> list[tuple[str, ...]]:
        # Stream, dts, pts, size and hash: the last packet's duration is cut to the preview.
        rows = [line.split(",") for line in audio_framemd5(path).splitlines() if line[:1] != "#"]
        return [(r[0], r[1], r[2], r[4], r[5]) for r in rows]

    got = packets(out)
    assert got and packets(source)[: len(got)] == got
    ranged = edge.get("capped.test", f"{path}?free_time=1&ali_audio_only=1",
                      {"Range": "bytes=10-109"})  # fmt: skip
    assert ranged.status == 206 and ranged.body == reply.body[10:110]


class _Page(HTMLParser):
    """The page's script tags and its main element's data-src, as a browser parses them."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts = 0
        self.src: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts += 1
        if tag == "main":
            self.src = dict(attrs).get("data-src")


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.text(
        alphabet=st.sampled_from("/aZ.-_~!$&'()*+,;=:@?%#\"<>\\`{}| \t\n\x00\u00e9\u202e"),
        max_size=40,
    ).map(lambda tail: "/" + tail + ".mp4")
)
def test_any_src_is_a_clean_page_or_a_400(zero: Vodedge, src: str) -> None:
    """Whatever src a link carries: the page with src as its data, byte for byte, and one
    script; or a 400 with its code. Never a 500, never markup from the URL."""
    reply = zero.get("listen.test", f"{PAGE}?src={quote(src, safe='')}")
    assert reply.status in (200, 400), reply
    if reply.status == 400:
        assert reply.header("X-Vodedge-Error") == "bad_listen_src"
        return
    parsed = _Page()
    parsed.feed(reply.body.decode())
    assert parsed.src == src
    assert parsed.scripts == 1
