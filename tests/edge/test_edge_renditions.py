"""Stored renditions (warm transformed outputs kept as files): the same bytes as the plan,
ranges on them, and never an old version's after a change or a purge."""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, concurrent_gets, running, wait_until
from edge_media import SAMPLES, cli_output

from vodedge.edge.cache_body import Body
from vodedge.edge.cache_index import Entry, ObjectMeta
from vodedge.edge.cache_store import RENDITION, Store
from vodedge.edge.renditions import Renditions
from vodedge.media.plan import Plan, Span

pytestmark = pytest.mark.xdist_group("edge_renditions")


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """Two workers on uvloop sharing one cache (a rendition one worker writes, the other
    serves); uvloop's sendfile path differs from asyncio's."""
    work = tmp_path_factory.mktemp("vodedge-renditions")
    with running(Vodedge(work, domains(origins), workers=2, loop="uvloop")) as server:
        yield server


def _rows(server: Vodedge, host: str, path: str) -> dict[str, Path]:
    """The cache index's rows of the object `host` + `path` and of its renditions."""
    key = host + path
    index = sqlite3.connect(f"file:{server.store / 'index.sqlite'}?mode=ro", uri=True)
    try:
        rows = index.execute("SELECT key, file FROM objects").fetchall()
    finally:
        index.close()
    return {k: Path(f) for k, f in rows if k == key or k.startswith(key + RENDITION)}


def _renditions(server: Vodedge, host: str, path: str) -> list[str]:
    return [k for k in _rows(server, host, path) if RENDITION in k]


def _warm(server: Vodedge, host: str, url: str, want: bytes) -> None:
    """Ask until a rendition is stored beside the object (talk.mp4's audio has 200 pieces)."""
    path = url.partition("?")[0]
    for _ in range(3):
        reply = server.get(host, url)
        assert reply.status == 200 and reply.body == want
    wait_until(lambda: _renditions(server, host, path), 30, "a rendition file")


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
    _warm(edge, "video.test", url, old)
    stored = _rows(edge, "video.test", path)
    assert "video.test" + path in stored and len(stored) >= 2, stored
    assert all(file.exists() for file in stored.values()), stored
    proc = edge.purge(f"http://video.test{path}")
    assert proc.returncode == 0 and "1 object(s)" in proc.stdout, proc.stdout + proc.stderr
    assert _rows(edge, "video.test", path) == {}
    assert [f for f in stored.values() if f.exists()] == [], "still on disk"
    origins.media.write(path.lstrip("/"), (SAMPLES / "tail-moov.mp4").read_bytes())
    for _ in range(4):
        assert edge.get("video.test", url).body == new
    # Nothing written from the purged version came back after the purge (a rendition
    # whose writing the purge overtook): its rows and files stay gone.
    now = _rows(edge, "video.test", path)
    assert not set(now.values()) & set(stored.values()), now
    assert not set(_renditions(edge, "video.test", path)) & set(stored), now
    assert [f for f in stored.values() if f.exists()] == [], "back on disk"


def test_a_rendition_written_across_a_purge_of_its_object_is_not_kept(tmp_path: Path) -> None:
    """A purge (another process: `vodedge purge`, a worker applying the API's refresh)
    that lands while a worker writes a rendition of the object: the rendition, made from
    the purged version, is not left on disk or in the index after it."""
    root = tmp_path / "store"
    store = Store(root, 1 << 30)
    data = os.urandom(300_000)
    key = "video.test/renditions/raced.mp4"
    tmp = store.temporary(store.digest(key))
    tmp.write_bytes(data)
    now = time.time()
    meta = ObjectMeta(key, len(data), '"v1"', None, "video/mp4", now, now + 3600)
    entry = Entry(meta, store.final_path(key, tmp))
    store.publish(entry, tmp)

    async def render_across_the_purge() -> None:
        renditions = Renditions(store, set())
        fd = os.open(entry.file, os.O_RDONLY)
        try:
            plan = Plan([Span(1000, 70_000), Span(200_000, 70_000)])
            renditions.store_plan(key, "audio", plan, Body(meta, fd, None, entry.file))
            other = Store(root, 1 << 30)  # its own index connection, as another process
            assert other.purge(key) == 1
            other.close()
            await asyncio.gather(*renditions.tasks)
        finally:
            os.close(fd)

    asyncio.run(render_across_the_purge())
    assert store.index.keys_with_prefix(key) == []
    assert sorted(root.glob("objects/*/*")) == []
    assert sorted(root.glob("tmp/*")) == []
    store.close()
