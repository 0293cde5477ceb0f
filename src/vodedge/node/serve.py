"""Running the edge: a master process, N workers sharing one socket, an admin listener."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aiohttp import web
    from aiohttp.web_protocol import RequestHandler

    from vodedge.config import NodeConfig
    from vodedge.config.keys import AccessKey
    from vodedge.edge.app import Edge

ACCESS_FLUSH_SECONDS = 2.0
# Connections with no request in progress (silent, half-sent headers, idle keep-alive)
# are closed after the idle_timeout setting (aiohttp has no request-header timeout,
# and its keep-alive default is an hour); checked this often.
SWEEP_SECONDS = 2.0
# On SIGTERM the master waits this long past the workers' shutdown_timeout.
SHUTDOWN_GRACE = 5.0
PR_SET_PDEATHSIG = 1


@dataclass
class ServeOptions:
    """What `vodedge serve` was asked to do, after the config file and flags."""

    load_config: Callable[[], NodeConfig]
    listen: tuple[str, int]
    admin: tuple[str, int] | None
    workers: int
    cache_dir: Path
    cache_size: int
    access_log: str | None  # a path, "-" for stdout, None for off
    loop: str = "asyncio"  # or "uvloop"
    ready: Callable[[], None] | None = None
    # The last configuration that loaded: the master keeps it current, and workers
    # (re)started later inherit it through fork even while the file is broken.
    config: NodeConfig | None = None
    listen_tls: tuple[str, int] | None = None  # HTTPS for domains with a certificate
    # Sockets of the master's own (the admin listener) that workers forked later must
    # close: a worker outliving its master must not keep them bound.
    masters_only: list[int] = field(default_factory=list)
    # Where the control plane keeps its store (None: no store).
    state_dir: Path | None = None
    # A fleet's shared store (a redis:// URL) instead of the state directory's SQLite,
    # and this node's name in it.
    store_url: str | None = None
    node_name: str = ""
    # Run in each worker beside the server, given the worker's Edge and index: the
    # control plane's loop that keeps `edge.config` and the cache in step with its store.
    worker_task: Callable[[Edge, int], Coroutine[Any, Any, None]] | None = None
    # Run in the master beside the workers: a fleet node's one reader of Redis.
    master_task: Callable[[], Coroutine[Any, Any, None]] | None = None
    # The API's access keys given the current configuration (a fleet's are in Redis);
    # None: the configuration's own.
    access_keys: Callable[[NodeConfig], tuple[AccessKey, ...]] | None = None

    def current(self) -> NodeConfig:
        """The configuration in force (serve() loads it before anything runs)."""
        assert self.config is not None, "the configuration is loaded first"
        return self.config


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' (or ':PORT', or '[v6]:PORT') to a pair; ValueError when malformed."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"listen address must be HOST:PORT, not {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def bind(address: tuple[str, int]) -> socket.socket:
    """A listening socket the workers share."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def _open_access_log(target: str | None) -> int | None:
    if target is None:
        return None
    if target == "-":
        return sys.stdout.fileno()
    return os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)


async def _worker(
    sock: socket.socket, options: ServeOptions, index: int, tls_sock: socket.socket | None
) -> None:
    from aiohttp import web

    from vodedge.edge import accesslog
    from vodedge.edge.app import Edge, make_server
    from vodedge.edge.cache import DiskCache
    from vodedge.edge.resources import (
        CappedSite,
        RateLimitedLog,
        connection_cap,
        install_loop_log,
    )
    from vodedge.edge.source import OriginPool

    loop = asyncio.get_running_loop()
    install_loop_log(loop, RateLimitedLog(f"vodedge: worker {index}"))
    accesslog.configure(_open_access_log(options.access_log))
    # aiohttp logs every malformed request with a traceback: clients could flood the
    # log, and bad input is answered with a 400 anyway.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    limits = options.current().limits
    cache = DiskCache(options.cache_dir / "store", options.cache_size, limits.min_free_space)
    edge = Edge(options.current(), cache, origins=OriginPool(limits), limits=limits)
    runner = web.ServerRunner(
        make_server(edge, lane=limits.lane, keepalive_timeout=limits.idle_timeout),
        handle_signals=False,
        shutdown_timeout=limits.shutdown_timeout,
    )
    await runner.setup()
    # One cap for both listeners: they share the worker's descriptors.
    cap = connection_cap(limits.max_connections)
    await CappedSite(runner, sock, cap).start()
    if tls_sock is not None:
        from vodedge.edge.tls import SniContexts, stderr_log

        contexts = SniContexts(lambda: edge.config, stderr_log)
        contexts.refresh()
        await CappedSite(
            runner,
            tls_sock,
            cap,
            handshake_timeout=limits.idle_timeout,
            ssl_context=contexts.context,
        ).start()
    sweeper = loop.create_task(_close_idle(runner, limits.idle_timeout))
    follower = loop.create_task(options.worker_task(edge, index)) if options.worker_task else None
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def reload() -> None:
        try:
            edge.config = options.load_config()
        except Exception as exc:  # a bad new config keeps the old one serving
            sys.stderr.write(f"vodedge: worker {index}: config not reloaded: {exc}\n")

    loop.add_signal_handler(signal.SIGHUP, reload)
    # A reload asked for while we started was held back (see serve): take it now.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ACCESS_FLUSH_SECONDS)
        edge.cache.flush_accesses()
    sweeper.cancel()
    if follower is not None:
        follower.cancel()
    await runner.cleanup()
    await edge.close()


async def _close_idle(runner: web.BaseRunner, idle_timeout: float) -> None:
    """Close connections that have had no request in progress for `idle_timeout`."""
    loop = asyncio.get_running_loop()
    idle_since: dict[RequestHandler, float] = {}
    while True:
        await asyncio.sleep(min(SWEEP_SECONDS, idle_timeout / 2))
        server = runner.server
        if server is None:
            continue
        now = loop.time()
        current = set(server.connections)
        for handler in current:
            # aiohttp keeps this flag while a handler runs (our responses stream inside it).
            if getattr(handler, "_request_in_progress", True):
                idle_since.pop(handler, None)
                continue
            # The lane answers without that flag: its last answer counts as activity.
            since = max(idle_since.setdefault(handler, now), getattr(handler, "active_at", 0.0))
            idle_since[handler] = since
            if now - since > idle_timeout:
                handler.force_close()
        for handler in [h for h in idle_since if h not in current]:
            del idle_since[handler]


def _worker_main(
    sock: socket.socket,
    options: ServeOptions,
    index: int,
    tls_sock: socket.socket | None,
    master: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master decides when we stop
    for fd in options.masters_only:
        with contextlib.suppress(OSError):
            os.close(fd)
    # A worker whose master died stops (SIGTERM: its listener closes at once, responses
    # in flight finish), so that a new master can bind the same addresses.
    _on_parent_death(signal.SIGTERM)
    if os.getppid() != master:  # it died before we asked
        return
    if options.loop == "uvloop":
        import uvloop

        uvloop.run(_worker(sock, options, index, tls_sock))
    else:
        asyncio.run(_worker(sock, options, index, tls_sock))


def _on_parent_death(sig: int) -> None:
    """Have the kernel send `sig` to this process when its parent exits."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0) != 0:
        sys.stderr.write(f"vodedge: prctl(PR_SET_PDEATHSIG) failed: {ctypes.get_errno()}\n")


async def _admin(
    address: tuple[str, int], options: ServeOptions
) -> tuple[web.AppRunner, list[int]]:
    from aiohttp import web
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client import multiprocess as prom_multiprocess

    from vodedge.control.api import MAX_REQUEST_LINE, Api, no_actions
    from vodedge.control.calls import Dispatch
    from vodedge.control.keys import CurrentKeys
    from vodedge.control.nonces import NonceStore

    # As in the workers: a malformed request is answered 400, not logged with a traceback.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)

    async def metrics(request: web.Request) -> web.Response:
        registry = CollectorRegistry()
        prom_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def health(request: web.Request) -> web.Response:
        # For a balancer's checks: can this node serve (a configuration, a cache it can write)?
        if options.config is None:
            return web.Response(status=503, text="no configuration loaded\n")
        if not os.access(options.cache_dir, os.W_OK | os.X_OK):
            return web.Response(status=503, text="the cache directory is not writable\n")
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", health)
    dispatch: Dispatch = no_actions
    if options.state_dir is not None:
        from vodedge.control import usage
        from vodedge.control.actions import make_dispatch
        from vodedge.control.node_address import node_cname
        from vodedge.control.stores import open_store

        # The workers' counters, sampled into the usage store while the listener runs.
        usage_store = usage.open_usage(options.state_dir, options.store_url)
        seconds = usage.sample_seconds(os.environ.get(usage.SAMPLE_SECONDS_ENV))
        metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        node = options.node_name or socket.gethostname()
        app.cleanup_ctx.append(usage.sampling(usage_store, metrics_dir, seconds, node))
        dispatch = make_dispatch(
            open_store(options.state_dir, options.store_url, options.node_name),
            usage_store,
            node_cname(options.listen, os.environ),
        )
    # Kept with the state, not the cache: wiping a cache must not reopen replays.
    nonces = NonceStore((options.state_dir or options.cache_dir) / "api-nonces.sqlite")
    api = Api(dispatch, CurrentKeys(lambda: _access_keys(options), os.environ), nonces)
    api.add_routes(app)
    from vodedge.control.console.routes import Console
    from vodedge.control.console.sessions import SESSION_SECONDS_ENV, Sessions, session_seconds

    Console(api, Sessions(session_seconds(os.environ.get(SESSION_SECONDS_ENV)))).add_routes(app)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, max_line_size=MAX_REQUEST_LINE
    )

    async def sweep(app: web.Application) -> AsyncIterator[None]:
        # Silent or half-sent requests are closed here too, as in the workers.
        sweeper = asyncio.create_task(_close_idle(runner, options.current().limits.idle_timeout))
        yield
        sweeper.cancel()

    app.cleanup_ctx.append(sweep)
    await runner.setup()
    site = web.TCPSite(runner, address[0], address[1])
    await site.start()
    return runner, [s.fileno() for s in getattr(site._server, "sockets", ())]


def _access_keys(options: ServeOptions) -> tuple[AccessKey, ...]:
    if options.access_keys is not None:
        return options.access_keys(options.current())
    return tuple(options.current().access_keys)


def _metrics_dir(cache_dir: Path) -> Path:
    """Where the workers' metric files live: in memory (/dev/shm) when there is one.

    prometheus_client writes them through mmap: on a full disk the first write to a new
    page kills the process with SIGBUS, so they must not share the cache's filesystem.
    The name follows the cache directory, so a restart after kill -9 reuses (and
    clears) the same one.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        tag = hashlib.sha256(str(cache_dir.resolve()).encode()).hexdigest()[:16]
        return shm / f"vodedge-metrics-{tag}"
    return cache_dir / "metrics"


# This process's id, kept current at fork: what its metric values are written under.
_PID = [os.getpid()]
_AT_FORK: list[bool] = []


def _this_pid() -> int:
    return _PID[0]


def _forked() -> None:
    _PID[0] = os.getpid()


def metric_values() -> None:
    """Multiprocess metric values that ask the process's id of `_PID` instead of the
    kernel: prometheus_client checks it on every write (a getpid system call each, six
    per clip response) to follow a fork. Called once PROMETHEUS_MULTIPROC_DIR is set and
    before any metric is made; again, or without that directory, it changes nothing."""
    from prometheus_client import values

    current = values.ValueClass
    if not getattr(current, "_multiprocess", False) or getattr(current, "_vodedge_pid", False):
        return
    _PID[0] = os.getpid()
    if not _AT_FORK:
        os.register_at_fork(after_in_child=_forked)
        _AT_FORK.append(True)
    kept = values.MultiProcessValue(process_identifier=_this_pid)  # type: ignore[no-untyped-call]
    kept._vodedge_pid = True
    values.ValueClass = kept


def serve(options: ServeOptions) -> int:
    """Run until SIGTERM/SIGINT; SIGHUP reloads the configuration in every worker."""
    metrics_dir = _metrics_dir(options.cache_dir)
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    # prometheus_client picks its storage when first imported: set this first.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    metric_values()
    from vodedge.edge.cache import DiskCache
    from vodedge.edge.resources import raise_descriptor_limit

    raise_descriptor_limit()  # inherited by the workers
    # SIGHUP's default action kills: hold it back until handlers are in place (the
    # mask is inherited by the workers, which release it once they can reload).
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    options.config = options.load_config()  # refuse a bad config before anything listens
    if options.admin is not None:
        from vodedge.control.keys import KeyRing, check_admin_keys

        check_admin_keys(*options.admin, KeyRing.of(_access_keys(options), os.environ))
    store = options.cache_dir / "store"
    recovering = DiskCache(store, options.cache_size)
    recovering.recover()
    recovering.index.close()
    sock = bind(options.listen)
    tls_sock = bind(options.listen_tls) if options.listen_tls else None
    context = multiprocessing.get_context("fork")
    workers: dict[int, BaseProcess] = {}

    def start(index: int) -> None:
        process = context.Process(
            target=_worker_main,
            args=(sock, options, index, tls_sock, os.getpid()),
            name=f"vodedge-worker-{index}",
        )
        process.start()
        workers[index] = process

    for index in range(options.workers):
        start(index)
    try:
        return asyncio.run(_supervise(options, workers, start))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _remove_orphans(options: ServeOptions) -> None:
    from vodedge.edge.cache_store import Store

    store = Store(options.cache_dir / "store", options.cache_size)
    try:
        store.remove_orphans()
    finally:
        store.close()


async def _supervise(
    options: ServeOptions, workers: dict[int, BaseProcess], start: Callable[[int], None]
) -> int:
    from vodedge.edge.resources import RateLimitedLog, install_loop_log

    loop = asyncio.get_running_loop()
    log = RateLimitedLog("vodedge")
    install_loop_log(loop, log)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def forward_hup() -> None:
        try:
            options.config = options.load_config()
        except Exception as exc:  # the workers keep serving the last good configuration
            sys.stderr.write(f"vodedge: config not reloaded: {exc}\n")
            return
        for process in workers.values():
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)

    loop.add_signal_handler(signal.SIGHUP, forward_hup)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    admin: web.AppRunner | None = None
    if options.admin:
        admin, options.masters_only = await _admin(options.admin, options)
    follower = loop.create_task(options.master_task()) if options.master_task else None
    if options.ready is not None:
        options.ready()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
        for index, process in list(workers.items()):
            if not process.is_alive() and not stop.is_set():
                # A worker dying over and over must not flood the log either.
                log.write(
                    "worker exited", f"worker {index} exited ({process.exitcode}); restarting it"
                )
                # What its fills left is removed before a new worker takes its place.
                await loop.run_in_executor(None, _remove_orphans, options)
                start(index)
    for process in workers.values():
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    for process in workers.values():
        await loop.run_in_executor(
            None, process.join, options.current().limits.shutdown_timeout + SHUTDOWN_GRACE
        )
        if process.is_alive():
            process.kill()
    if follower is not None:
        follower.cancel()
    if admin is not None:
        await admin.cleanup()
    return 0
