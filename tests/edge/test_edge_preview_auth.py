"""Trial playback of MP3 and MPEG-TS, and signed URLs, over HTTP against a real `vodedge serve`.

The preview outputs are held to what `vodedge clip --end N` writes (itself held to
ffmpeg by tests/test_mp3_preview.py and tests/test_ts_preview.py); signed URLs are
made by the independent signer in tests/url_signing.py, never by vodedge.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domain, function
from edge_harness import Reply, Vodedge, running
from edge_media import cli_output

from media_matrix import media
from url_signing import ref_sign

KEY1 = "aliyuncdnexp1234"
KEY2 = "SecondKeyForRotation2026"
DELTA = 120
PREVIEW = function("ali_video_preview", enable="on", ali_video_preview_argument="free_time")
SEEK_BYTES = function("video_seek", enable="on")  # FLV seeks by byte offset
KINDS = {"a": "type_a", "b": "type_b", "c": "type_c", "f": "type_f"}


def auth(kind: str, **extra: str) -> str:
    """An aliauth table for `kind`, with both keys and a short validity."""
    return function(
        "aliauth",
        auth_type=KINDS[kind],
        auth_key1=KEY1,
        auth_key2=KEY2,
        ali_auth_delta=str(DELTA),
        **extra,
    )


@pytest.fixture(scope="module")
def server(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """A vodedge with preview and signed-URL domains in front of nginx."""
    nginx = origins.nginx.url
    config = "".join(
        [
            domain("preview.test", nginx, function("ali_video_split", enable="on"), SEEK_BYTES,
                   PREVIEW),
            *(domain(f"signed-{k}.test", nginx, auth(k), PREVIEW) for k in ("a", "b", "c")),
            domain("signed-f.test", nginx, auth("f", sign_param="token", time_param="ts"),
                   PREVIEW),
            domain("locked.test", nginx, auth("a", vodedge_signed_args="free_time"), PREVIEW),
            domain("exempt.test", nginx,
                   auth("b", req_auth_ip_white="127.0.0.1", req_auth_ip_acl_xfwd="off")),
        ]
    )  # fmt: skip
    with running(Vodedge(tmp_path_factory.mktemp("vodedge-preview"), config)) as edge:
        yield edge


def publish(origins: Origins, name: str) -> tuple[str, Path]:
    """A generated case on nginx: its URL path and its file."""
    source = media(name)
    return origins.media.add(source, f"preview/{name}{source.suffix}"), source


def check_preview(reply: Reply, source: Path, seconds: str, tmp_path: Path, kind: str) -> None:
    """The reply is what `vodedge clip --end` writes, with exact length and ranges."""
    expected = cli_output("clip", source, tmp_path, "--end", seconds)
    assert expected.output is not None, expected.error
    assert reply.status == 200, (reply, reply.body[:200])
    assert reply.header("Content-Type") == kind
    assert reply.header("Content-Length") == str(len(expected.output))
    assert reply.body == expected.output
    assert len(reply.body) < source.stat().st_size


@pytest.mark.parametrize(
    ("name", "kind"),
    [("mp3_vbr_xing", "audio/mpeg"), ("mp3_cbr_info_id3v1", "audio/mpeg"),
     ("ts_h264_aac", "video/mp2t"), ("m2ts_h264_aac", "video/mp2t")],
)  # fmt: skip
def test_preview_of_mp3_and_ts(
    server: Vodedge, origins: Origins, name: str, kind: str, tmp_path: Path
) -> None:
    """`?free_time=N` on MP3 and TS: the first N seconds, as the CLI cuts them; Range too."""
    path, source = publish(origins, name)
    reply = server.get("preview.test", f"{path}?free_time=1.5")
    check_preview(reply, source, "1.5", tmp_path, kind)
    server.prime("preview.test", path)
    warm = server.get("preview.test", f"{path}?free_time=1.5", {"Range": "bytes=100-1099"})
    assert warm.status == 206
    assert warm.header("Content-Range") == f"bytes 100-1099/{len(reply.body)}"
    assert warm.body == reply.body[100:1100]
    head = server.get("preview.test", f"{path}?free_time=1.5", method="HEAD")
    assert head.header("Content-Length") == str(len(reply.body))
    # Without the argument, the file as it is; a bad length is a clear 400.
    assert server.get("preview.test", path).body == source.read_bytes()
    bad = server.get("preview.test", f"{path}?free_time=0")
    assert (bad.status, bad.header("X-Vodedge-Error")) == (400, "invalid_seek")


def test_flv_preview_on_a_byte_seek_domain(
    server: Vodedge, origins: Origins, tmp_path: Path
) -> None:
    """A preview alone is not a seek: it works where FLV seeks are byte offsets."""
    path, source = publish(origins, "flv_h264_aac_10s_kfindex")
    server.prime("preview.test", path)
    reply = server.get("preview.test", f"{path}?free_time=2")
    check_preview(reply, source, "2", tmp_path, "video/x-flv")
    combined = server.get("preview.test", f"{path}?free_time=2&start=13")
    assert (combined.status, combined.header("X-Vodedge-Error")) == (400, "invalid_seek")


def _get_signed(server: Vodedge, kind: str, path: str, when: int, **kw: object) -> Reply:
    host = f"signed-{kind}.test"
    options = {"sign_param": "token", "time_param": "ts"} if kind == "f" else {}
    signed_path, query = ref_sign(kind, str(kw.pop("key", KEY1)), path, when, **options, **kw)  # type: ignore[arg-type]
    return server.get(host, signed_path + (f"?{query}" if query else ""))


@pytest.mark.parametrize("kind", ["a", "b", "c", "f"])
def test_signed_urls(server: Vodedge, origins: Origins, kind: str) -> None:
    """Signed URLs of every type: served, and 403 with a code when missing, expired,
    tampered with or signed with another key; key 2 accepted; the signature reaches
    neither the cache key nor the origin."""
    path = origins.media.write(f"signed/{kind}/clip.bin", bytes(range(256)) * 40)
    host = f"signed-{kind}.test"
    now = int(time.time())
    first = _get_signed(server, kind, path, now)
    assert first.status == 200, (first, first.body[:200])
    assert first.body == bytes(range(256)) * 40
    again = _get_signed(server, kind, path, now - 30, key=KEY2)
    assert again.status == 200 and again.header("X-Cache") == "HIT", again
    hits = origins.nginx.settled_hits(path)
    assert [hit.target for hit in hits] == [path], "the origin saw the signature"
    missing = server.get(host, path)
    assert (missing.status, missing.header("X-Vodedge-Error")) in (
        (403, "auth_missing"),
        (403, "auth_malformed"),
    )
    # B keeps only the minute: sign far enough back to be past expiry whatever the second.
    expired = _get_signed(server, kind, path, now - DELTA - 65)
    assert (expired.status, expired.header("X-Vodedge-Error")) == (403, "auth_expired")
    wrong = _get_signed(server, kind, path, now, key="NotAConfiguredKey0000")
    assert (wrong.status, wrong.header("X-Vodedge-Error")) == (403, "auth_invalid")
    other = origins.media.write(f"signed/{kind}/other.bin", b"other")
    signed_path, query = ref_sign(kind, KEY1, path, now, **(
        {"sign_param": "token", "time_param": "ts"} if kind == "f" else {}))  # fmt: skip
    moved = signed_path.replace("clip.bin", "other.bin"), query
    tampered = server.get(host, moved[0] + (f"?{moved[1]}" if moved[1] else ""))
    assert (tampered.status, tampered.header("X-Vodedge-Error")) == (403, "auth_invalid")
    assert not origins.nginx.hits(other)
    for reply in (missing, expired, wrong, tampered):
        assert reply.body.decode().startswith("denied by req auth")


def test_signed_preview_length_cannot_be_raised(server: Vodedge, origins: Origins) -> None:
    """With vodedge_signed_args=free_time the preview length is part of the signature."""
    path, source = publish(origins, "mp3_vbr_xing")
    now = int(time.time())
    signed_path, query = ref_sign("a", KEY1, path, now, query="free_time=1", signed=("free_time",))
    ok = server.get("locked.test", f"{signed_path}?{query}")
    assert ok.status == 200 and len(ok.body) < source.stat().st_size, ok
    for bad in (
        query.replace("free_time=1", "free_time=600"),
        query.replace("free_time=1&", ""),
        query + "&free_time=600",
    ):
        reply = server.get("locked.test", f"{signed_path}?{bad}")
        assert reply.status == 403, (bad, reply)
    # On a domain without the extension, the documented hash leaves free_time open.
    open_path, open_query = ref_sign("a", KEY1, path, now, query="free_time=1")
    raised = server.get("signed-a.test", f"{open_path}?{open_query.replace('=1&', '=600&')}")
    assert raised.status == 200 and raised.body == source.read_bytes()


def test_white_listed_address_needs_no_signature(server: Vodedge, origins: Origins) -> None:
    """req_auth_ip_white: the loopback client is let in unsigned; a signed URL it sends
    still has its signature taken out (type B: of the path)."""
    path = origins.media.write("signed/exempt.bin", b"exempt")
    reply = server.get("exempt.test", path)
    assert reply.status == 200 and reply.body == b"exempt"
    signed_path, _ = ref_sign("b", KEY1, path, int(time.time()))
    reply = server.get("exempt.test", signed_path)
    assert reply.status == 200 and reply.body == b"exempt"
    # Exempt from signing, not from the rest: forwarded-for does not count with xfwd off.
    stranger = server.get("signed-a.test", path, {"X-Forwarded-For": "127.0.0.1"})
    assert stranger.status == 403


def test_flv_preview_alone_on_plain_video_seek(
    server: Vodedge, origins: Origins, tmp_path: Path
) -> None:
    """The case found: FLV `?free_time=10` where video_seek takes byte offsets and no seek
    argument is given is a preview (the whole 10 s file, cut as the CLI cuts it); audio
    only combined with a preview is the CLI's audio extraction to N; Range and HEAD on
    both answer the preview's bytes and length."""
    path, source = publish(origins, "flv_h264_aac_10s_kfindex")
    server.prime("preview.test", path)
    whole = server.get("preview.test", f"{path}?free_time=10")
    expected = cli_output("clip", source, tmp_path, "--end", "10")
    assert expected.output is not None, expected.error
    assert (whole.status, whole.header("Content-Type")) == (200, "video/x-flv"), whole
    assert whole.body == expected.output
    audio = server.get("preview.test", f"{path}?free_time=2&ali_audio_only=1")
    extracted = cli_output("extract", source, tmp_path, "--end", "2")
    assert extracted.output is not None, extracted.error
    assert audio.status == 200, audio
    assert audio.header("Content-Length") == str(len(extracted.output))
    assert audio.body == extracted.output
    for query, body in (("free_time=2&ali_audio_only=1", audio.body), ("free_time=10", whole.body)):
        ranged = server.get("preview.test", f"{path}?{query}", {"Range": "bytes=50-549"})
        assert ranged.status == 206, ranged
        assert ranged.header("Content-Range") == f"bytes 50-549/{len(body)}"
        assert ranged.body == body[50:550]
        head = server.get("preview.test", f"{path}?{query}", method="HEAD")
        assert head.header("Content-Length") == str(len(body))


def test_signed_preview_length_cannot_be_raised_by_an_escaped_name(
    server: Vodedge, origins: Origins
) -> None:
    """`free%5Ftime` is `free_time` to the edge: a second, escaped copy of a signed
    parameter cannot carry another preview length past the signature."""
    path, source = publish(origins, "mp3_vbr_xing")
    now = int(time.time())
    signed_path, query = ref_sign("a", KEY1, path, now, query="free_time=1", signed=("free_time",))
    one = server.get("locked.test", f"{signed_path}?{query}")
    assert one.status == 200, one
    for extra in ("free%5Ftime=600", "free%5ftime=600", "%66ree_time=600"):
        for bad in (f"{extra}&{query}", f"{query}&{extra}"):
            reply = server.get("locked.test", f"{signed_path}?{bad}")
            assert reply.status == 403 or reply.body == one.body, (bad, reply)
            assert reply.body != source.read_bytes()


def test_mp4_previews_answer_range_and_head(
    server: Vodedge, origins: Origins, tmp_path: Path
) -> None:
    """MP4 previews, video and audio only: the CLI's bytes, exact Content-Length, and a
    Range or HEAD of each answers that output's bytes and length."""
    path, source = publish(origins, "mp4_h264_aac")
    server.prime("preview.test", path)
    cases = (
        ("free_time=1.5", cli_output("clip", source, tmp_path, "--end", "1.5"), "video/mp4"),
        (
            "free_time=1.5&ali_audio_only=1",
            cli_output("extract", source, tmp_path, "--end", "1.5"),
            "audio/mp4",
        ),
    )
    for query, expected, kind in cases:
        assert expected.output is not None, expected.error
        body = expected.output
        whole = server.get("preview.test", f"{path}?{query}")
        assert (whole.status, whole.header("Content-Type")) == (200, kind), whole
        assert whole.header("Content-Length") == str(len(body)) and whole.body == body
        ranged = server.get("preview.test", f"{path}?{query}", {"Range": "bytes=-300"})
        assert ranged.status == 206, ranged
        assert (
            ranged.header("Content-Range") == f"bytes {len(body) - 300}-{len(body) - 1}/{len(body)}"
        )
        assert ranged.body == body[-300:]
        head = server.get("preview.test", f"{path}?{query}", method="HEAD")
        assert head.header("Content-Length") == str(len(body)) and head.body == b""


def test_m4a_preview_without_audio_only(server: Vodedge, origins: Origins, tmp_path: Path) -> None:
    """An audio-only M4A asked for a preview as a player links it (no ali_audio_only):
    the CLI's audio cut to N, with its exact length."""
    path, source = publish(origins, "m4a_aac")
    reply = server.get("preview.test", f"{path}?free_time=2")
    expected = cli_output("extract", source, tmp_path, "--end", "2")
    assert expected.output is not None, expected.error
    assert reply.status == 200, reply
    assert reply.header("Content-Length") == str(len(expected.output))
    assert reply.body == expected.output
    assert len(reply.body) < source.stat().st_size
