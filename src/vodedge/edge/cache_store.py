"""The cache's files and rows: lookups, locks, publishing, purges and LRU eviction.

Objects live as plain files under `objects/`, one SQLite row each (see
cache_index); fills write under `tmp/` and are renamed into place when complete.
An `fcntl` lock per object (under `locks/`) says which process fills it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import os
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

from vodedge.edge.cache_index import CacheIndex, Entry

# Renditions (a transform's output stored as one file) are keyed by the object's key,
# this separator (control characters never reach keys: such paths are refused) and a tag.
RENDITION = "\x1frendition:"
# Index rows read this recently are reused without asking SQLite (see lookup).
HOT_SECONDS = 1.0
HOT_ENTRIES = 4096
# Free space kept on the cache's filesystem for the index and fills' metadata.
MIN_FREE = 2 << 20
FALLOC_FL_KEEP_SIZE = 1
EVICT_BATCH = 64
# Ranges of a sparse object smaller than this get no blocks allocated ahead.
RESERVE_MIN = 64 << 10


def _allocated(path: Path) -> int:
    """Bytes of disk blocks `path` holds (0 if it is gone)."""
    try:
        return os.stat(path).st_blocks * 512
    except OSError:
        return 0


@functools.cache
def _fallocate64() -> Callable[[int, int, int, int], int]:
    import ctypes

    call = ctypes.CDLL(None, use_errno=True).fallocate64
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong]
    return call


def _fallocate(fd: int, length: int, offset: int = 0) -> None:
    """Allocate `length` bytes of blocks at `offset` of `fd` without changing its size
    (readers and followers go by the size); OSError(ENOSPC) when the filesystem has no
    room."""
    import ctypes

    if _fallocate64()(fd, FALLOC_FL_KEEP_SIZE, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@contextlib.contextmanager
def try_lock(path: Path) -> Iterator[bool]:
    """Hold the `flock` of `path` if no other process does; yields whether held.

    The lock file is removed by whoever releases it, so a lock taken on a file that
    was removed meanwhile is no lock: it is taken again on the current file.
    """
    for _attempt in range(8):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
                yield False
                return
            try:
                current = os.stat(path).st_ino
            except FileNotFoundError:
                current = -1
            if current != os.fstat(fd).st_ino:
                continue  # removed by its last holder after we opened it
            try:
                yield True
            finally:
                path.unlink(missing_ok=True)  # still held: nobody else can own it
            return
        finally:
            os.close(fd)  # releases the lock
    yield False


class Store:
    """Objects on disk under `root`, at most `max_bytes` of them, least recently used out."""

    def __init__(self, root: Path, max_bytes: int, min_free: int = MIN_FREE) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.min_free = min_free
        for sub in ("objects", "tmp", "locks"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.index = CacheIndex(root / "index.sqlite")
        self._accesses: dict[str, float] = {}
        self._hot: dict[str, tuple[float, Entry]] = {}

    # --- names and locks ---------------------------------------------------------------

    @staticmethod
    def digest(key: str) -> str:
        """The file-name-safe name of a key."""
        return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:40]

    def temporary(self, digest: str) -> Path:
        """A fresh temporary file name for an object being written."""
        return self.root / "tmp" / f"{digest}.{secrets.token_hex(6)}.part"

    def meta_file(self, digest: str) -> Path:
        """Where a running fill describes itself to processes that follow it."""
        return self.root / "tmp" / f"{digest}.meta"

    def try_lock(self, digest: str) -> contextlib.AbstractContextManager[bool]:
        """Hold the object's fill lock if no other process does; yields whether held."""
        return try_lock(self.root / "locks" / f"{digest}.lock")

    # --- start-up and housekeeping -------------------------------------------------

    def remove_orphans(self) -> int:
        """Remove the temporary files of fills no process runs any more (their
        writer died); how many. Safe while other workers fill: theirs are locked."""
        removed = 0
        for part in (self.root / "tmp").iterdir():
            digest = part.name.split(".", 1)[0]
            with self.try_lock(digest) as held:
                if held:
                    part.unlink(missing_ok=True)
                    removed += 1
        # A lock file nobody holds is removed by taking it (try_lock's release).
        for lock in (self.root / "locks").iterdir():
            with try_lock(lock) as held:
                removed += held
        return removed

    def recover(self) -> int:
        """Remove what crashed fills left and rows whose file is gone; how many. Only
        while no worker runs (an object renamed into place is indexed just after)."""
        removed = self.remove_orphans()
        known = self.index.files()
        for name in known:
            if not os.path.exists(name):
                key = self._key_of_file(name)
                if key is not None:
                    self.index.delete(key)
                    removed += 1
        for shard in (self.root / "objects").iterdir():
            for file in shard.iterdir():
                if str(file) not in known:
                    file.unlink(missing_ok=True)  # renamed into place, row never written
                    removed += 1
        return removed

    def _key_of_file(self, name: str) -> str | None:
        row = self.index._db.execute("SELECT key FROM objects WHERE file = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def touch(self, key: str, now: float) -> None:
        """Note an access (written to the index in batches)."""
        self._accesses[key] = now

    def flush_accesses(self) -> None:
        """Write batched last-access times to the index (lost if it cannot be written:
        they only order eviction)."""
        if self._accesses:
            accesses, self._accesses = self._accesses, {}
            with contextlib.suppress(sqlite3.Error):
                self.index.touch(accesses)

    def expire(self, keys: list[str]) -> int:
        """Mark objects stale: kept, but revalidated with the origin before being served
        again (a refresh without Force); how many there were."""
        for key in keys:
            self._hot.pop(key, None)
        return self.index.expire(keys)

    def purge(self, key_or_prefix: str, *, prefix: bool = False) -> int:
        """Drop one object (and its renditions) or every object under a prefix; how
        many objects were dropped."""
        self.index.record_purge(key_or_prefix, prefix)
        self._hot.clear()
        if prefix:
            rows = self.index.delete_prefix(key_or_prefix)
        else:
            file = self.index.delete(key_or_prefix)
            rows = [(key_or_prefix, file)] if file is not None else []
            rows += self.index.delete_prefix(key_or_prefix + RENDITION)
        for _, file in rows:
            file.unlink(missing_ok=True)
        return sum(1 for key, _ in rows if RENDITION not in key)

    def drop(self, key: str) -> None:
        """Forget one stored object and remove its file (no purge is recorded)."""
        file = self.index.delete(key)
        self._hot.pop(key, None)
        if file is not None:
            file.unlink(missing_ok=True)

    def usage(self) -> int:
        """Disk space the cache takes: stored objects, and running or orphaned fills."""
        tmp = sum(_allocated(part) for part in (self.root / "tmp").iterdir())
        return self.index.total_size() + tmp

    def _filesystem(self) -> tuple[int, int]:
        """The cache filesystem's size and the space free for us, in bytes."""
        info = os.statvfs(self.root)
        return info.f_blocks * info.f_frsize, info.f_bavail * info.f_frsize

    def _evict_one(self, keep: str) -> bool:
        """Drop the least recently used object (never `keep`); False if there is none.

        Its file goes before its row: on a full disk the index may be unable to write
        until it does, and a row whose file is gone is dropped when next read.
        """
        try:
            for key, _ in self.index.oldest(2):
                entry = self.index.get(key) if key != keep else None
                if entry is None:
                    continue
                existed = entry.file.exists()
                entry.file.unlink(missing_ok=True)
                self._hot.pop(key, None)
                try:
                    self.index.delete_entry(entry)
                except sqlite3.Error:
                    return existed  # progress only if a file went
                return True
        except sqlite3.Error:
            pass  # the index cannot be read: nothing to evict
        return False

    def evict(self, keep: str) -> None:
        """Drop least recently used objects (never `keep`) until under the bound, running
        and orphaned fills counted."""
        total = self.usage()
        while total > self.max_bytes:
            victims = [(k, s) for k, s in self.index.oldest(EVICT_BATCH) if k != keep]
            if not victims:
                return
            for key, size in victims:
                file = self.index.delete(key)
                if file is not None:
                    file.unlink(missing_ok=True)
                    self._hot.pop(key, None)
                total -= size
                if total <= self.max_bytes:
                    return

    def fits(self, length: int) -> bool:
        """Whether an object of `length` bytes could be stored at all (eviction aside)."""
        capacity, _ = self._filesystem()
        return length <= self.max_bytes and length + self.min_free <= capacity

    def reserve(self, fd: int, length: int, key: str, offset: int = 0) -> bool:
        """Allocate the blocks of a `length`-byte fill (at `offset`: a range of a sparse
        object) to `fd` before writing, evicting least recently used objects to make room
        within the bound and on the disk. False when room cannot be made: the object is
        served without being stored."""
        try:
            if not self.fits(length):
                return False
            while self.usage() + length > self.max_bytes:
                if not self._evict_one(key):
                    return False
        except sqlite3.Error:
            return False
        while True:
            _, free = self._filesystem()
            if free - length >= self.min_free:
                try:
                    _fallocate(fd, length, offset)
                    return True
                except OSError as exc:
                    if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS):
                        return True  # no preallocation here: free space was checked
                    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                        raise
            if not self._evict_one(key):
                return False

    def reserve_ranges(self, fd: int, ranges: list[tuple[int, int]], key: str) -> bool:
        """`reserve` for several ranges of a sparse object's file: room made once for
        them all, blocks allocated for the bigger ones (a few bytes need no reservation
        beyond the free space kept)."""
        if len(ranges) == 1:
            return self.reserve(fd, ranges[0][1] - ranges[0][0], key, ranges[0][0])
        total = sum(end - start for start, end in ranges)
        try:
            if not self.fits(total):
                return False
            while self.usage() + total > self.max_bytes:
                if not self._evict_one(key):
                    return False
            if not self.make_room(total, key):
                return False
            for start, end in ranges:
                if end - start >= RESERVE_MIN:
                    _fallocate(fd, end - start, start)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.ENOSYS):
                return True
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return False
            raise
        except sqlite3.Error:
            return False
        return True

    def make_room(self, length: int, key: str) -> bool:
        """Evict until `length` more bytes fit on the disk (a fill of unknown length that
        met a full disk); False if they cannot."""
        while True:
            _, free = self._filesystem()
            if free - length >= self.min_free:
                return True
            if not self._evict_one(key):
                return False

    # --- lookups and publishing -----------------------------------------------------------

    def open_entry(self, entry: Entry) -> int | None:
        """A descriptor of the entry's file, None (and the row gone) if it is not the
        file its row describes any more."""
        try:
            fd = os.open(entry.file, os.O_RDONLY)
        except FileNotFoundError:
            # Replaced, purged or evicted since the row was read: the row goes only if
            # it still names this file (another worker may have stored a newer one).
            self.index.delete_entry(entry)
            self._hot.pop(entry.meta.key, None)
            return None
        if os.fstat(fd).st_size != entry.meta.size:
            os.close(fd)  # never serve a file that disagrees with its row
            self.index.delete_entry(entry)
            self._hot.pop(entry.meta.key, None)
            entry.file.unlink(missing_ok=True)
            return None
        return fd

    def lookup(self, key: str, now: float) -> Entry | None:
        """The index row of `key`, from memory when read less than HOT_SECONDS ago.

        Files are unlinked whenever their row changes object (replace, purge,
        evict), so a remembered row whose file still opens still holds that object;
        only a revalidation elsewhere can be missed, for HOT_SECONDS at most.
        """
        hot = self._hot.get(key)
        if hot is not None and now - hot[0] < HOT_SECONDS:
            return hot[1]
        entry = self.index.get(key)
        if entry is None or entry.partial:
            self._hot.pop(key, None)  # a sparse object's row changes as its extents land
        else:
            if len(self._hot) >= HOT_ENTRIES:
                self._hot.clear()
            self._hot[key] = (now, entry)
        return entry

    def forget_hot(self, key: str) -> None:
        """Make the next lookup of `key` read the index."""
        self._hot.pop(key, None)

    def publish(self, entry: Entry, tmp: Path) -> None:
        """Move a complete temporary file into place as `entry.file` and index it; the
        version it replaces goes, and LRU objects go while over the bound."""
        entry.file.parent.mkdir(exist_ok=True)
        os.replace(tmp, entry.file)
        replaced = self.index.put(entry, _allocated(entry.file))
        self._hot.pop(entry.meta.key, None)
        if replaced is not None:
            replaced.unlink(missing_ok=True)
        self.evict(keep=entry.meta.key)

    def final_path(self, key: str, tmp: Path) -> Path:
        """Where the temporary file `tmp` of `key` is published (same token: same version)."""
        digest = self.digest(key)
        return self.root / "objects" / digest[:2] / tmp.name.removesuffix(".part")

    def close(self) -> None:
        """Write pending accesses and close the index."""
        self.flush_accesses()
        self.index.close()
