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
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

from vodedge.edge.cache_index import CacheIndex, Entry

# Renditions (a transform's output stored as one file) are keyed by the object's key,
# this separator (control characters never reach keys: such paths are refused) and a tag.
RENDITION = "\x1frendition:"
F_OFD_SETLK = getattr(fcntl, "F_OFD_SETLK", 37)
F_OFD_SETLKW = getattr(fcntl, "F_OFD_SETLKW", 38)
# Index rows read this recently are reused without asking SQLite (see lookup).
HOT_SECONDS = 1.0
HOT_ENTRIES = 4096
# Complete objects this small are kept in each worker's memory (SMALL_MEMORY at most),
# checked against their file by one stat per request (see small_bytes).
SMALL_OBJECT = 16 << 10
SMALL_MEMORY = 16 << 20
# Free space kept on the cache's filesystem for the index and fills' metadata.
MIN_FREE = 2 << 20
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
EVICT_BATCH = 64
# Objects looked at for the least recently used one that is not being read.
EVICT_LOOK = 8
# Ranges of a sparse object smaller than this get no blocks allocated ahead.
RESERVE_MIN = 64 << 10

# Partial eviction. The least recently used object goes first, as ever; a sparse one
# (some extents held: its readers all go through cache_sparse, which locks it, see
# READERS) of at least TRIM_MIN bytes loses its extents from the end backwards instead,
# only as many as the bound needs, and goes whole once nothing but its ends is left.
# Why from the end: which extents of an object are read is not recorded per extent
# (that would be a write per read), but viewers drop off as a video plays, so a later
# byte is read by fewer of them than an earlier one: the object's last held bytes are
# its coldest. Why its ends are kept (KEEP_ENDS at each): that is where containers keep
# what every request reads first, whatever it asks for: MP4's moov (head or tail) and
# first 64 KiB, FLV's header and onMetaData, MP3's ID3 tag; without them any return to
# the object costs a round trip to the origin before its first byte.
TRIM_MIN = 16 << 20
KEEP_ENDS = 4 << 20
# Trimmed runs are cut at this alignment (whole blocks go back to the filesystem).
TRIM_ALIGN = 1 << 20
# The lock byte of a sparse object's readers (far past any object's end, so it never
# meets the claims on its bytes): each process reading the object holds it shared;
# trimming takes it exclusively, or leaves the object alone.
READERS = 1 << 62


def readers_lock(fd: int, kind: int, wait: bool) -> bool:
    """Take (or release, F_UNLCK) the READERS byte of a sparse object's file as an OFD
    lock: fcntl.F_RDLCK for a reader, F_WRLCK for a trim. Without `wait`, False if
    another holds it; with it, waits (a trim holds it for milliseconds)."""
    request = struct.pack("hhqqi4x", kind, os.SEEK_SET, READERS, 1, 0)
    if wait:
        fcntl.fcntl(fd, F_OFD_SETLKW, request)
        return True
    try:
        fcntl.fcntl(fd, F_OFD_SETLK, request)
    except OSError:
        return False
    return True


def trimmed(extents: list[tuple[int, int]], size: int, need: int) -> list[tuple[int, int]]:
    """The ranges of `extents` (merged) a trim drops to free `need` bytes: from the end
    backwards, never within KEEP_ENDS of either end, cut at TRIM_ALIGN."""
    low, high = KEEP_ENDS, size - KEEP_ENDS
    out: list[tuple[int, int]] = []
    for start, end in reversed(extents):
        start, end = max(start, low), min(end, high)
        if end <= start:
            continue
        if end - start > need:
            cut = (end - need) // TRIM_ALIGN * TRIM_ALIGN
            start = max(start, cut)
        out.append((start, end))
        need -= end - start
        if need <= 0:
            break
    return out[::-1]


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


def _fallocate(fd: int, length: int, offset: int = 0, mode: int = FALLOC_FL_KEEP_SIZE) -> None:
    """Allocate `length` bytes of blocks at `offset` of `fd` without changing its size
    (readers and followers go by the size); OSError(ENOSPC) when the filesystem has no
    room. With FALLOC_FL_PUNCH_HOLE too: free them (the bytes read as zeros)."""
    import ctypes

    if _fallocate64()(fd, mode, offset, length) != 0:
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
        # Small objects' bytes by key, with the file and inode they were read from.
        self._small: dict[str, tuple[Path, int, bytes]] = {}
        self._small_total = 0

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

    def sweep(self, key: str, keep: Path | None = None) -> int:
        """Remove files of `key` that neither its row nor `keep` name; how many. The
        caller holds the object's fill lock, under which every file of it is made and
        indexed (a sparse object's file and row, a fill's rename and row): a file found
        without its row while the lock is free was left by a creator killed in between."""
        digest = self.digest(key)
        entry = self.index.get(key)
        named = None if entry is None else entry.file.name
        removed = 0
        for file in (self.root / "objects" / digest[:2]).glob(f"{digest}.*"):
            if file.name not in (named, None if keep is None else keep.name):
                file.unlink(missing_ok=True)
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

    def expire(self, keys: list[str], prefix: str | None = None) -> int:
        """Mark objects stale: kept, but revalidated with the origin before being served
        again (a refresh without Force); how many there were. Fills of them, or of keys
        under `prefix`, running now publish them stale."""
        for key in keys:
            self._hot.pop(key, None)
        return self.index.expire(keys, prefix)

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

    def _evict_one(self, keep: str, need: int = 0) -> bool:
        """Make room for `need` more bytes from the least recently used object (never
        `keep`) that no process reads: trim it (see TRIM_MIN) or drop it; one being
        read only when there is no other. False if there is none."""
        try:
            busy = None
            for key, _ in self.index.oldest(EVICT_LOOK):
                entry = self.index.get(key) if key != keep else None
                if entry is None:
                    continue
                if self._reading(entry):
                    busy = busy or entry  # in use: not the least recently used in truth
                    continue
                return bool(self._trim(entry, need)) or self._drop(entry)
            return busy is not None and self._drop(busy)
        except sqlite3.Error:
            pass  # the index cannot be read: nothing to evict
        return False

    def _drop(self, entry: Entry) -> bool:
        """Evict an object whole; whether that made progress.

        Its file goes before its row: on a full disk the index may be unable to write
        until it does, and a row whose file is gone is dropped when next read (readers
        keep their open file).
        """
        existed = entry.file.exists()
        entry.file.unlink(missing_ok=True)
        self._hot.pop(entry.meta.key, None)
        try:
            self.index.delete_entry(entry)
        except sqlite3.Error:
            return existed  # progress only if a file went
        return True

    @staticmethod
    def _reading(entry: Entry) -> bool:
        """Whether a process reads this sparse object now (holds its READERS lock)."""
        if not entry.partial:
            return False  # complete objects' readers take no lock (see _trim)
        try:
            fd = os.open(entry.file, os.O_RDWR)
        except OSError:
            return False
        try:
            return not readers_lock(fd, fcntl.F_WRLCK, wait=False)
        finally:
            os.close(fd)

    def _trim(self, entry: Entry, need: int) -> int:
        """Free about `need` bytes of a sparse object's blocks by dropping its coldest
        extents (see TRIM_MIN); how many bytes were freed, 0 when it cannot be trimmed
        (not sparse, too small, only its ends left, or being read).

        The extents leave the index first, durably, and only then are their blocks
        punched out: kill -9 or a power cut in between leaves bytes on disk that no
        extent claims, never an extent without its bytes. Readers cannot be reading
        them: each process reading the object holds its READERS lock, taken before it
        reads the extents, and the trim holds that lock exclusively throughout.
        """
        if need <= 0 or not entry.partial or entry.meta.size < TRIM_MIN:
            return 0
        try:
            fd = os.open(entry.file, os.O_RDWR)
        except OSError:
            return 0
        try:
            if not readers_lock(fd, fcntl.F_WRLCK, wait=False):
                return 0  # being read: dropping it whole (unlinking) is what is safe
            before = os.fstat(fd).st_blocks * 512
            dropped = self.index.drop_extents(
                entry, lambda extents: trimmed(extents, entry.meta.size, need)
            )
            if not dropped:
                return 0
            try:
                for start, end in dropped:
                    _fallocate(fd, end - start, start, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE)
            except OSError:
                return 0  # no hole punching here: the object goes whole
            after = os.fstat(fd).st_blocks * 512
            self.index.set_disk(entry, after)
            return max(before - after, 1)
        except sqlite3.Error:
            return 0
        finally:
            os.close(fd)  # releases the lock

    def evict(self, keep: str) -> None:
        """Drop (or trim) least recently used objects (never `keep`; sparse ones being
        read last) until under the bound, running and orphaned fills counted."""
        total = self.usage()
        spared: set[str] = set()  # being read: evicted only if nothing else is left
        spare = True
        while total > self.max_bytes:
            oldest = self.index.oldest(EVICT_BATCH + len(spared))
            victims = [(k, s) for k, s in oldest if k != keep and k not in spared]
            if not victims:
                if not spare or not spared:
                    return
                spare = False
                spared.clear()
                continue
            for key, size in victims:
                entry = self.index.get(key)
                if spare and entry is not None and self._reading(entry):
                    spared.add(key)
                    continue
                freed = 0 if entry is None else self._trim(entry, total - self.max_bytes)
                if freed:
                    total -= freed
                    break  # the same object may be trimmed again, or dropped: look again
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
            while (over := self.usage() + length - self.max_bytes) > 0:
                if not self._evict_one(key, over):
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
            if not self._evict_one(key, length + self.min_free - free):
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
            while (over := self.usage() + total - self.max_bytes) > 0:
                if not self._evict_one(key, over):
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
            if not self._evict_one(key, length + self.min_free - free):
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

    def small_bytes(self, entry: Entry) -> bytes | None:
        """All the bytes of a whole object of at most SMALL_OBJECT bytes, from memory while
        its file is the one they were read from: one stat instead of an open, an fstat, a
        read and a close. None when the entry is not such an object, or its file is not
        as its row says (the caller's open_entry then decides what that means)."""
        size = entry.meta.size
        if not 0 <= size <= SMALL_OBJECT or entry.partial:
            return None
        try:
            found = os.stat(entry.file)
        except OSError:
            return None
        if found.st_size != size:
            return None
        key = entry.meta.key
        kept = self._small.get(key)
        if kept is not None and kept[1] == found.st_ino:
            # The row remembered for a second holds the very Path kept: no
            # PurePath.__eq__ (Python) per HIT; a row read again is kept in its place.
            if kept[0] is entry.file:
                return kept[2]
            if kept[0] == entry.file:
                self._small[key] = (entry.file, kept[1], kept[2])
                return kept[2]
        try:
            fd = os.open(entry.file, os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_ino != found.st_ino:
                return None  # replaced since the stat: the next request reads it
            data = os.pread(fd, size, 0)
        finally:
            os.close(fd)
        if len(data) != size:
            return None
        if kept is not None:
            self._small_total -= len(kept[2])
            del self._small[key]
        while self._small and self._small_total + size > SMALL_MEMORY:
            oldest = next(iter(self._small))  # the first read goes first
            self._small_total -= len(self._small.pop(oldest)[2])
        self._small[key] = (entry.file, found.st_ino, data)
        self._small_total += size
        return data

    def forget_hot(self, key: str) -> None:
        """Make the next lookup of `key` read the index."""
        self._hot.pop(key, None)

    def publish(self, entry: Entry, tmp: Path, filled_since: float | None = None) -> None:
        """Move a complete temporary file into place as `entry.file` and index it (the
        caller holds the object's lock); the version it replaces goes, and LRU objects go
        while over the bound. A fill started at `filled_since` publishes stale if the
        object was expired since."""
        entry.file.parent.mkdir(exist_ok=True)
        os.replace(tmp, entry.file)
        # Files a killed creator left go before the row appears (the caller holds the
        # lock): whoever sees the new row sees no leftover beside it.
        self.sweep(entry.meta.key, keep=entry.file)
        replaced = self.index.put(entry, _allocated(entry.file), filled_since)
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
