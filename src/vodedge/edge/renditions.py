"""Renditions: a transform's output stored as one file, so a warm request is one sendfile."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace

from vodedge.edge.cache_body import Body
from vodedge.edge.cache_index import Entry, ObjectMeta
from vodedge.edge.cache_store import RENDITION, Store
from vodedge.media.plan import Plan
from vodedge.planfile import write_plan_file

# Renditions never expire by themselves: they go with their object (purge) or by LRU.
# An expiry (a refresh without Force) leaves them: a rendition is named by its object's
# version, and is only opened once that object was served, so revalidated when stale.
RENDITION_TTL = 10 * 365 * 86400


def _write_rendition(plan: Plan, src: int, path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        write_plan_file(plan, src, fd)
        if os.fstat(fd).st_size != plan.size:
            raise OSError(f"a rendition came out at {os.fstat(fd).st_size} of {plan.size} bytes")
    finally:
        os.close(fd)


class Renditions:
    """Stored transform outputs, written in the background (in-process dedup)."""

    def __init__(self, store: Store, tasks: set[asyncio.Task[None]]) -> None:
        self.store = store
        self.tasks = tasks
        self._rendering: set[str] = set()

    def open(self, key: str, tag: str) -> Body | None:
        """The stored output of transform `tag` on object `key`, or None."""
        rkey = key + RENDITION + tag
        entry = self.store.lookup(rkey, time.time())
        fd = self.store.open_entry(entry) if entry is not None else None
        if entry is None or fd is None:
            return None
        self.store.touch(rkey, time.time())
        return Body(entry.meta, fd, None, entry.file)

    def store_plan(self, key: str, tag: str, plan: Plan, source: Body) -> None:
        """Write the plan's output to a file in the background and index it, so that
        later requests are one sendfile instead of thousands."""
        rkey = key + RENDITION + tag
        if rkey in self._rendering:
            return
        self._rendering.add(rkey)
        src = os.dup(source.fd)
        task = asyncio.get_running_loop().create_task(self._render(rkey, plan, src, source.meta))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        sparse = source.sparse
        if sparse is not None:
            # Held (with it, its readers' lock) until written: the request may end first,
            # and a trim must not punch holes in extents the rendition is still copying.
            sparse.users += 1
            task.add_done_callback(lambda _done: sparse.release())

    async def _render(self, rkey: str, plan: Plan, src: int, meta: ObjectMeta) -> None:
        digest = self.store.digest(rkey)
        tmp = self.store.temporary(digest)
        try:
            with self.store.try_lock(digest) as held:
                if not held:
                    return  # another worker renders it
                done = self.store.index.get(rkey)
                if done is not None and done.meta.size == plan.size:
                    return  # another worker rendered it since this request looked
                if not self.store.fits(plan.size) or not self.store.make_room(plan.size, rkey):
                    return  # no room: the plan is served as it is
                await asyncio.get_running_loop().run_in_executor(
                    None, _write_rendition, plan, src, str(tmp)
                )
                rendered = replace(
                    meta,
                    key=rkey,
                    size=plan.size,
                    expires_at=meta.stored_at + RENDITION_TTL,
                    ranges=True,
                )
                self.store.publish(Entry(rendered, self.store.final_path(rkey, tmp)), tmp)
                # A purge of the object since it was stored dropped the renditions there
                # were then; this one, written from the purged version, goes too.
                if self.store.index.purged_since(rkey.partition(RENDITION)[0], meta.stored_at):
                    self.store.drop(rkey)
        except OSError:
            pass  # a rendition is an optimisation: without it the plan is served
        finally:
            tmp.unlink(missing_ok=True)
            os.close(src)
            self._rendering.discard(rkey)
