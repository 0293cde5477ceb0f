"""Stored renditions (warm transformed outputs kept as files): the same bytes as the plan,
ranges on them, and never an old version's after a change or a purge."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, concurrent_gets, running, wait_until
from edge_media import SAMPLES, cli_output

pytestmark = pytest.mark.xdist_group("edge_renditions")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Two workers on uvloop sharing one cache (a rendition one worker writes, the other
    serves); uvloop's sendfile path differs from asyncio's."""
    work = tmp_path_factory.mktemp("vodedge-renditions")
    with running(Vodedge(work, domains(origins), workers=2, loop="uvloop")) as server:
        yield server


def _stored(server: Vodedge) -> int:
    return len(server.object_files())


def _warm(server: Vodedge, host: str, url: str, want: bytes) -> None:
    """Ask until a rendition is stored beside the object (talk.mp4's audio has 200 pieces)."""
    before = _stored(server)
    for _ in range(3):
        reply = server.get(host, url)
        assert reply.status == 200 and reply.body == want
    wait_until(lambda: _stored(server) > before, 5, "a rendition file")


def test_a_rendition_serves_the_plans_bytes(
    edge: Vodedge, origins: Origins, tmp_path: Path
) -> None:
    """Once stored: the same body, ETag and Content-Length; ranges are slices of it."""
    path = origins.media.add(SAMPLES / "talk.mp4", "renditions/talk.mp4")
    want = cli_output("extract", SAMPLES / "talk.mp4", tmp_path).output
    assert want is not None
    url = path + "?ali_audio_only=1"
    first = edge.get("video.test", url)
    _warm(edge, "video.test", url, want)
    replies = concurrent_gets(edge.port, [("video.test", url, {})] * 8)
    for reply in replies:
        assert reply.body == want
        assert reply.header("ETag") == first.header("ETag")
        assert reply.header("Content-Length") == str(len(want))
        assert reply.header("Content-Type") == "audio/mp4"
    rng = random.Random(7)
    etag = first.header("ETag") or ""
    for _ in range(10):
        a, b = sorted(rng.sample(range(len(want)), 2))
        reply = edge.get("video.test", url, {"Range": f"bytes={a}-{b}", "If-Range": etag})
        assert reply.status == 206 and reply.body == want[a : b + 1], (a, b)
    assert edge.get("video.test", url, {"If-None-Match": etag}).status == 304


def test_a_new_version_never_gets_the_old_rendition(
    edge: Vodedge, origins: Origins, tmp_path: Path
) -> None:
    """max-age=1: the origin's object changes; its audio changes with it."""
    path = origins.media.add(SAMPLES / "talk.mp4", "renditions/changing.mp4")
    origins.fault.behave(path, cache_control="max-age=1")
    url = path + "?ali_audio_only=1"
    old = cli_output("extract", SAMPLES / "talk.mp4", tmp_path).output
    new = cli_output("extract", SAMPLES / "tail-moov.mp4", tmp_path).output
    assert old is not None and new is not None and old != new
    edge.get("faulty.test", url)
    _warm(edge, "faulty.test", url, old)
    origins.media.write(path.lstrip("/"), (SAMPLES / "tail-moov.mp4").read_bytes())
    edge.wait_expired("faulty.test", path)
    for _ in range(4):
        reply = edge.get("faulty.test", url)
        assert reply.status == 200 and reply.body == new, reply.header("X-Cache")


def test_a_purge_drops_the_renditions(edge: Vodedge, origins: Origins, tmp_path: Path) -> None:
    """After `vodedge purge URL` nothing of the object is left on disk, and a changed
    origin object is what the next audio request extracts."""
    path = origins.media.add(SAMPLES / "talk.mp4", "renditions/purged.mp4")
    url = path + "?ali_audio_only=1"
    old = cli_output("extract", SAMPLES / "talk.mp4", tmp_path).output
    new = cli_output("extract", SAMPLES / "tail-moov.mp4", tmp_path).output
    assert old is not None and new is not None
    edge.get("video.test", url)
    before = _stored(edge)
    _warm(edge, "video.test", url, old)
    assert _stored(edge) == before + 1
    proc = edge.purge(f"http://video.test{path}")
    assert proc.returncode == 0 and "1 object(s)" in proc.stdout, proc.stdout + proc.stderr
    assert _stored(edge) == before - 1, "the object or its rendition is still on disk"
    origins.media.write(path.lstrip("/"), (SAMPLES / "tail-moov.mp4").read_bytes())
    for _ in range(4):
        assert edge.get("video.test", url).body == new
