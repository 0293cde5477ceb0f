"""The stores: the contract both keep (records, optimistic writes, ConfigIds, file imports,
certificates, task queries), run against SQLite and a real redis-server, each through two
handles (two workers, or two nodes); then what only the embedded store does: per-worker
acknowledgements, durability settings, two writer processes that must not lose an update."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from vodedge.config import Function
from vodedge.control.redis_store import RedisStore
from vodedge.control.sqlite_store import STORE_FILE, SqliteStore
from vodedge.control.store import (
    Certificate,
    ControlStore,
    DomainExists,
    Source,
    StaleRecord,
    TaskQuery,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "fleet"))

from redis_harness import RedisServer
from store_records import record

# Another handle on the same store: another worker's (SQLite) or another node's (Redis).
Opener = Callable[[], ControlStore]


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "state")


@pytest.fixture(params=["sqlite", "redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens handles on one store of each kind."""
    handles: list[SqliteStore | RedisStore] = []
    if request.param == "sqlite":

        def sqlite() -> ControlStore:
            handles.append(SqliteStore(tmp_path / "state"))
            return handles[-1]

        yield sqlite
    else:
        server = RedisServer(tmp_path / "redis")
        server.start()

        def redis() -> ControlStore:
            handles.append(RedisStore(server.url, f"node-{len(handles)}"))
            return handles[-1]

        try:
            yield redis
        finally:
            server.stop()
    for handle in handles:
        handle.close()


# --- the contract of both stores --------------------------------------------------------


def test_domains_round_trip(opener: Opener) -> None:
    """What one handle adds, another reads back whole; ids, times and ConfigIds are the
    store's."""
    a, b = opener(), opener()
    split = Function.of("ali_video_split", enable="on")
    added = a.add_domain(record(functions=(split,), description="talks"))
    got = b.domain("video.example.com")
    assert got == added
    assert got is not None and got.domain_id >= 1 and got.created > 0 and got.revision == 1
    assert got.functions[0].config_id is not None
    assert got.functions[0].args == split.args and got.description == "talks"
    with pytest.raises(DomainExists):
        b.add_domain(record())
    second = b.add_domain(record("a.example.com"))
    assert second.domain_id != got.domain_id
    assert [d.name for d in a.domains()] == ["a.example.com", "video.example.com"]
    assert a.delete_domain("a.example.com") and not b.delete_domain("a.example.com")
    assert b.domain("a.example.com") is None


def test_every_write_moves_the_version(opener: Opener) -> None:
    """Workers and nodes follow the version: each kind of change must move it."""
    a, b = opener(), opener()
    seen = [b.version()]
    stored = a.add_domain(record())
    seen.append(b.version())
    a.update_domains([replace(stored, status="offline")])
    seen.append(b.version())
    a.add_task("file", [("video.example.com", "video.example.com/a.mp4")], False)
    seen.append(b.version())
    a.put_certificate(Certificate("video.example.com", "c", "CERT", "KEY"))
    seen.append(b.version())
    a.delete_domain("video.example.com")
    seen.append(b.version())
    assert seen == sorted(set(seen)), seen


def test_a_stale_write_is_refused_and_nothing_is_written(opener: Opener) -> None:
    """update_domains compares revisions: of two writers that read the same record, the
    second is refused (and retries), and a refused batch writes none of its records."""
    a, b = opener(), opener()
    one = a.add_domain(record())
    two = a.add_domain(record("b.example.com"))
    a.update_domains([replace(one, description="first")])
    with pytest.raises(StaleRecord):
        b.update_domains([replace(two, description="x"), replace(one, description="second")])
    assert b.domain("video.example.com").description == "first"  # type: ignore[union-attr]
    assert b.domain("b.example.com") == two


def test_config_ids_are_unique_and_kept(opener: Opener) -> None:
    """New functions get fresh ConfigIds; functions that have one keep it."""
    store = opener()
    ttl = Function.of("path_based_ttl_set", ttl="60", path="/a")
    stored = store.add_domain(record(functions=(ttl, ttl)))
    ids = [f.config_id for f in stored.functions]
    assert len(set(ids)) == 2 and None not in ids
    again = store.update_domains([replace(stored, functions=(*stored.functions, ttl))])[0]
    assert [f.config_id for f in again.functions][:2] == ids
    assert again.functions[2].config_id not in ids


def test_task_query_filters_and_pages(opener: Opener) -> None:
    """Filters combine; pages are newest first; counts are per kind for quotas."""
    store = opener()
    first = store.add_task("file", [("a.com", "a.com/1"), ("a.com", "a.com/2")], False)
    store.add_task("preload", [("b.com", "b.com/1")], False)
    assert store.tasks(TaskQuery(task_id=first))[0] == 2
    assert [t.path for t in store.tasks(TaskQuery(domain="b.com"))[1]] == ["b.com/1"]
    total, page = store.tasks(TaskQuery(page=2, size=2))
    assert total == 3 and [t.path for t in page] == ["a.com/1"]
    assert store.tasks(TaskQuery(path="a.com/2", kind="file"))[0] == 1
    assert store.task_counts_since(0) == {"file": 2, "preload": 1}


def test_file_domains_are_imported_only_where_the_file_changed(opener: Opener) -> None:
    """The TOML file seeds the store; later, the API's changes stand until the file's own
    entry for that domain changes; a domain dropped from the file goes."""
    store = opener()
    a, b = record("a.example.com"), record("b.example.com")
    assert store.import_file_domains([a, b]) == ["a.example.com", "b.example.com"]
    stored = store.domain("a.example.com")
    assert stored is not None
    store.update_domains([replace(stored, status="offline")])  # the API stops a
    assert store.import_file_domains([a, b]) == []  # same file: the API's change stands
    assert store.domain("a.example.com").status == "offline"  # type: ignore[union-attr]
    changed = replace(a, sources=(Source("ipaddr", "127.0.0.2", 8000),))
    assert store.import_file_domains([changed]) == ["a.example.com", "b.example.com"]
    now = store.domain("a.example.com")
    assert now is not None and now.status == "online" and now.sources == changed.sources
    assert store.domain("b.example.com") is None
    store.add_domain(record("api.example.com"))  # the API's own domains are never touched
    store.import_file_domains([])
    assert [d.name for d in store.domains()] == ["api.example.com"]


def test_certificates_need_a_domain_and_go_with_it(opener: Opener) -> None:
    """A certificate belongs to a stored domain and is deleted with it; another handle
    reads it; its key is not in its repr."""
    store, other = opener(), opener()
    with pytest.raises(KeyError):
        store.put_certificate(Certificate("nowhere.example.com", "c", "CERT", "KEY"))
    store.add_domain(record())
    store.put_certificate(Certificate("video.example.com", "c", "CERT", "KEY", "off"))
    got = other.certificate("video.example.com")
    assert got is not None and (got.key_pem, got.ssl_protocol) == ("KEY", "off")
    assert other.certificates() == [got]
    assert "KEY" not in repr(got)
    store.delete_domain("video.example.com")
    assert other.certificates() == [] and other.certificate("video.example.com") is None


# --- the embedded store only ------------------------------------------------------------


def test_refreshes_complete_when_every_worker_applied_them(store: SqliteStore) -> None:
    """A refresh is Complete once each of the node's workers acknowledged it."""
    store.set_workers(2)
    task = store.add_task("directory", [("v.example.com", "v.example.com/dir/")], True)
    assert [t.task_id for t in store.pending_refreshes(0)] == [task]
    store.ack_refreshes([task], 0)
    assert store.pending_refreshes(0) == []
    total, [row] = store.tasks(TaskQuery(task_id=task))
    assert (total, row.status, row.process, row.force) == (1, "Refreshing", "50%", True)
    store.ack_refreshes([task], 1)
    _, [row] = store.tasks(TaskQuery(task_id=task))
    assert (row.status, row.process) == ("Complete", "100%")
    assert store.pending_refreshes(1) == []


def test_preloads_are_taken_once(store: SqliteStore) -> None:
    """Two workers never fetch the same preload; a restarted worker hands its back."""
    store.add_task("preload", [("v.example.com", f"v.example.com/{i}") for i in range(3)], False)
    first = store.claim_preloads(0, 2)
    second = store.claim_preloads(1, 5)
    assert len(first) == 2 and len(second) == 1
    assert not {t.row for t in first} & {t.row for t in second}
    store.finish_preload(second[0].row, False, "the node answered 404")
    store.release_preloads(0)
    assert {t.row for t in store.claim_preloads(1, 5)} == {t.row for t in first}
    _, rows = store.tasks(TaskQuery(status="Failed"))
    assert [r.description for r in rows] == ["the node answered 404"]


def test_the_file_is_private_and_durable(store: SqliteStore) -> None:
    """Keys live in the store: mode 0600. WAL with synchronous=FULL: a commit is on disk."""
    path = store.path
    assert path.name == STORE_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    store.add_domain(record())
    for extra in path.parent.glob(STORE_FILE + "-*"):
        assert stat.S_IMODE(extra.stat().st_mode) == 0o600, extra
    db = store._db()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def _append_rules(state: Path, worker: int, count: int) -> None:
    """Read-modify-write the same domain `count` times, retrying on StaleRecord."""
    store = SqliteStore(state)
    for n in range(count):
        rule = Function.of("path_based_ttl_set", ttl="60", path=f"/w{worker}/{n}")
        while True:
            current = store.domain("video.example.com")
            assert current is not None
            try:
                store.update_domains([replace(current, functions=(*current.functions, rule))])
                break
            except StaleRecord:
                continue
    store.close()


def test_two_writer_processes_lose_no_update(tmp_path: Path) -> None:
    """Two processes appending to one domain at once: every append is there."""
    state = tmp_path / "state"
    SqliteStore(state).add_domain(record())
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_append_rules, args=(state, w, 40)) for w in (0, 1)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(60)
        assert process.exitcode == 0
    stored = SqliteStore(state).domain("video.example.com")
    assert stored is not None
    paths = sorted(f.arg("path") or "" for f in stored.functions)
    assert paths == sorted(f"/w{w}/{n}" for w in (0, 1) for n in range(40))
    assert len({f.config_id for f in stored.functions}) == 80


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    """A store made before fork works in the child (SQLite connections do not cross fork)."""
    store = SqliteStore(tmp_path / "state")
    store.add_domain(record())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            store.add_domain(record("child.example.com"))
            os.write(write, b"ok")
        except sqlite3.Error as exc:
            os.write(write, str(exc).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 100) == b"ok"
    assert store.domain("child.example.com") is not None


def test_finished_tasks_are_forgotten_after_three_days(store: SqliteStore) -> None:
    """Tasks older than the API describes are deleted as new ones come; unfinished ones
    stay until they finish."""
    store.set_workers(1)
    done = store.add_task("file", [("a.com", "a.com/done")], False)
    store.ack_refreshes([done], 0)
    store.set_workers(2)
    open_task = store.add_task("file", [("a.com", "a.com/open")], False)
    store._db().execute("UPDATE tasks SET created = created - 4 * 86400")
    store.add_task("file", [("a.com", "a.com/new")], False)
    paths = {t.path for t in store.tasks(TaskQuery(size=100))[1]}
    assert paths == {"a.com/open", "a.com/new"}
    assert store.pending_refreshes(0)[0].task_id == open_task
