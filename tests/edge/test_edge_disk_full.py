"""A full disk (issue 12, class 3): the cache on a 50 MB filesystem of its own.

Space is counted in allocated blocks and made before a fill writes (least recently
used objects go); when it cannot be made the object is served from the origin
uncached. Never a 500, never a temporary file left, and an object larger than the
whole filesystem still arrives complete from a single origin request.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import Vodedge, concurrent_gets, running, wait_until

pytestmark = pytest.mark.xdist_group("edge_disk_full")

FS_SIZE = 50 << 20
OBJECT = 8 << 20
HUGE = 60 << 20


@pytest.fixture(scope="module")
def small_fs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A 50 MB tmpfs mounted for the cache (skipped where mounting is not allowed)."""
    mount = tmp_path_factory.mktemp("small-fs")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={FS_SIZE}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture(scope="module")
def full(origins: Origins, small_fs: Path) -> Iterator[Vodedge]:
    """Two workers whose cache lives on the small filesystem (the bound is far above it)."""
    work = small_fs / "vodedge"
    server = Vodedge(work, domains(origins), workers=2, cache_size="10GiB")
    with running(server):
        yield server


def _objects(origins: Origins, prefix: str, count: int, size: int) -> list[tuple[str, bytes]]:
    out = []
    for n in range(count):
        data = os.urandom(size)
        out.append((origins.media.write(f"disk/{prefix}-{n}.bin", data), data))
    return out


def _leftovers(server: Vodedge) -> list[str]:
    return server.tmp_files()


def _gets(origins: Origins, path: str) -> int:
    return sum(1 for hit in origins.nginx.settled_hits(path) if hit.method == "GET")


def _stored_bytes(server: Vodedge) -> int:
    return sum(f.stat().st_blocks * 512 for f in server.object_files())


def test_misses_beyond_the_disk_evict_and_are_served(full: Vodedge, origins: Origins) -> None:
    """Ten 8 MiB objects through a 50 MB cache, one after the other: every one 200 with its
    bytes, the disk never over-full, older objects evicted for newer ones."""
    objects = _objects(origins, "seq", 10, OBJECT)
    statuses: Counter[tuple[int, str | None]] = Counter()
    for path, data in objects:
        reply = full.get("video.test", path)
        statuses[(reply.status, reply.header("X-Cache"))] += 1
        assert reply.status == 200 and reply.complete and reply.body == data, reply
    wait_until(lambda: _leftovers(full) == [], 5, "no temporary files")
    stored = _stored_bytes(full)
    files = len(full.object_files())
    print(f"[disk sequential] statuses={dict(statuses)} stored_bytes={stored} files={files}")
    assert stored <= FS_SIZE
    last_path, last = objects[-1]
    full.prime("video.test", last_path)
    assert full.get("video.test", last_path).body == last


def test_concurrent_misses_on_a_full_disk(full: Vodedge, origins: Origins) -> None:
    """Twelve 8 MiB misses at once over two workers (96 MiB into 50 MB): all 200 with
    their bytes, each MISS (stored) or BYPASS (no room), no temporary file left."""
    objects = _objects(origins, "burst", 12, OBJECT)
    replies = concurrent_gets(full.port, [("video.test", p, {}) for p, _ in objects], timeout=60)
    statuses = Counter((r.status, r.header("X-Cache")) for r in replies)
    print(f"[disk concurrent] statuses={dict(statuses)}")
    for reply, (_, data) in zip(replies, objects, strict=True):
        assert reply.status == 200 and reply.complete and reply.body == data, reply
        assert reply.header("X-Cache") in ("MISS", "BYPASS")
    wait_until(lambda: _leftovers(full) == [], 10, f"no temporary files: {_leftovers(full)}")
    assert _stored_bytes(full) <= FS_SIZE


def test_an_object_larger_than_the_disk_arrives_whole_from_one_origin_pull(
    full: Vodedge, origins: Origins
) -> None:
    """60 MiB on a 50 MB filesystem: 200, every byte, one origin GET per request, nothing
    left on disk; asking for its audio is a 503 with a reason, not a 500."""
    ((path, data),) = _objects(origins, "huge", 1, HUGE)
    for attempt in (1, 2):
        reply = full.get("video.test", path, timeout=60)
        assert reply.status == 200 and reply.complete and len(reply.body) == HUGE
        assert reply.body == data and reply.header("X-Cache") == "BYPASS", reply
        assert _gets(origins, path) == attempt
    print(f"[disk huge] bytes_delivered={len(reply.body)} origin_gets={_gets(origins, path)}")
    ranged = full.get("video.test", path, {"Range": "bytes=0-99"}, timeout=60)
    assert ranged.status in (200, 206) and data.startswith(ranged.body)
    assert _leftovers(full) == []


def test_a_disk_filled_by_someone_else(full: Vodedge, origins: Origins, small_fs: Path) -> None:
    """Another program takes every free block: misses evict what they can and are served,
    or pass through; none is a 500, none leaves a temporary file."""
    filler = small_fs / "filler"
    free = shutil.disk_usage(small_fs).free
    with open(filler, "wb") as out:
        try:
            os.posix_fallocate(out.fileno(), 0, free)
        except OSError:
            out.write(b"\0" * (free - (1 << 20)))
    try:
        objects = _objects(origins, "crowded", 4, OBJECT)
        statuses: Counter[tuple[int, str | None]] = Counter()
        for path, data in objects:
            reply = full.get("video.test", path)
            statuses[(reply.status, reply.header("X-Cache"))] += 1
            assert reply.status == 200 and reply.complete and reply.body == data, reply
        audio = full.get("video.test", objects[0][0] + "?ali_audio_only=1")
        assert audio.status != 500, audio
        # Answers never given before (new metric series) on the full disk: no worker dies
        # (metrics are written through mmap, where a full disk is a SIGBUS).
        workers = full.worker_pids()
        for n in range(20):
            assert full.get(f"nohost{n}.test", "/x").status == 403
            assert full.get("video.test", f"/disk/absent-{n}.bin").status == 404
            assert full.get("video.test", "/x", method="POST").status == 405
        assert full.worker_pids() == workers and "exited" not in full.log_text()
        print(f"[disk foreign filler] statuses={dict(statuses)}")
        assert _leftovers(full) == []
    finally:
        filler.unlink()


def test_stored_sizes_are_allocated_blocks(full: Vodedge, origins: Origins) -> None:
    """The index counts each stored object by its file's allocated blocks."""
    import sqlite3

    ((path, _),) = _objects(origins, "blocks", 1, 100_000)
    full.prime("video.test", path)
    db = sqlite3.connect(f"file:{full.store / 'index.sqlite'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT file, size, disk FROM objects WHERE key LIKE ?", ("%" + path,))
        ((file, size, disk),) = rows.fetchall()
    finally:
        db.close()
    assert size == 100_000 and disk == Path(file).stat().st_blocks * 512 and disk >= size
