"""`vodedge serve` and `vodedge purge`: the node configuration from flags, then the edge."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from vodedge.config import NodeConfig, load_toml, zero_config
from vodedge.config.limits import LIMIT_KEYS

if TYPE_CHECKING:
    from vodedge.edge.app import Edge

FLEET_SECRET_ENV = "VODEDGE_FLEET_SECRET"


def node_loader(args: argparse.Namespace) -> Callable[[], NodeConfig]:
    """A function that (re)reads the node configuration the flags describe."""

    def load() -> NodeConfig:
        if args.config:
            node = load_toml(args.config)
        elif args.origin:
            node = zero_config(args.origin)
        else:
            node = NodeConfig()  # every domain comes from the store
        # A certificate that stopped loading makes the file bad: a reload keeps the old.
        check_certificates(node, warn=False)
        return node.with_overrides(
            listen=getattr(args, "listen", None),
            admin_listen=getattr(args, "admin", None),
            listen_tls=getattr(args, "listen_tls", None),
            workers=getattr(args, "workers", None),
            cache_dir=args.cache_dir,
            cache_size=getattr(args, "cache_size", None),
            limits={
                key: value
                for key in LIMIT_KEYS
                if (value := getattr(args, f"limit_{key}", None)) is not None
            },
            role=getattr(args, "role", None),
            # From the environment, not a flag: flags show in `ps`.
            fleet_secret=os.environ.get(FLEET_SECRET_ENV) or None,
        )

    return load


def serve(args: argparse.Namespace) -> int:
    """Run the edge until SIGTERM/SIGINT: the file's or flags' settings, the store's domains."""
    from vodedge.control.store_config import certificates_dir, state_dir_for, store_loader
    from vodedge.control.stores import check_store_url, node_name, worker_store
    from vodedge.node.serve import ServeOptions
    from vodedge.node.serve import serve as run
    from vodedge.node.sync import WorkerSync

    load_base = node_loader(args)
    node = load_base()
    state_dir = (
        Path(args.state_dir) if args.state_dir else state_dir_for(node.cache_dir)
    ).absolute()
    store_url = check_store_url(args.store) if args.store else None
    name = node_name(state_dir) if store_url else ""
    # What the workers follow: the node's SQLite store, or (a fleet node) its copy of
    # Redis, which one reader in the master keeps in step.
    store = worker_store(state_dir, bool(store_url))
    follower = None
    if store_url:
        from vodedge.control.follower import Follower
        from vodedge.control.redis_store import RedisStore
        from vodedge.control.replica import Replica

        follower = Follower(RedisStore(store_url, name), Replica(state_dir), node.workers)
    load = store_loader(
        load_base,
        store,
        from_file=bool(args.config),
        certificates_dir=certificates_dir(state_dir),
        before=None if follower is None else partial(follower.load, from_file=bool(args.config)),
    )
    node = load()
    check_certificates(node)
    store.set_workers(node.workers)
    listen = (node.listen.host, node.listen.port)
    listen_tls = (node.listen_tls.host, node.listen_tls.port) if node.listen_tls else None
    admin = (node.admin_listen.host, node.admin_listen.port) if node.admin_listen else None
    where = args.origin or args.config or f"the store in {store_url or state_dir}"

    async def follow_store(edge: Edge, index: int) -> None:
        own = worker_store(state_dir, bool(store_url))
        await WorkerSync(own, index, listen, state_dir, report=follower is None).run(edge)

    def url(host: str, port: int, scheme: str = "http") -> str:
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"

    def ready() -> None:
        extra = f", admin on {url(*admin)}/metrics" if admin else ""
        if listen_tls:
            extra = f", HTTPS on {url(*listen_tls, 'https')}/{extra}"
        sys.stderr.write(
            f"vodedge: serving {url(*listen)}/ from {where} with {node.workers} worker(s){extra}\n"
        )

    options = ServeOptions(
        load_config=load,
        listen=listen,
        admin=admin,
        workers=node.workers,
        cache_dir=node.cache_dir,
        cache_size=node.cache_size,
        access_log=None if args.access_log == "off" else args.access_log,
        loop=args.loop,
        ready=ready,
        listen_tls=listen_tls,
        state_dir=state_dir,
        store_url=store_url,
        node_name=name,
        worker_task=follow_store,
        master_task=None if follower is None else follower.run,
        access_keys=None if follower is None else follower.keys,
    )
    return run(options)


def check_certificates(node: NodeConfig, *, warn: bool = True) -> None:
    """Refuse a certificate that does not load (ValueError: one line); with `warn`,
    warn of an expired one, which clients will refuse."""
    import ssl
    from datetime import UTC, datetime

    from vodedge.control.certificates import iso_time, summarize
    from vodedge.edge.tls import domain_context

    domains = list(node.domains.values())
    if node.default_domain is not None:
        domains.append(node.default_domain)
    for domain in domains:
        certificate = domain.certificate
        if certificate is None:
            continue
        try:
            domain_context(certificate.cert_path, certificate.key_path)
            expires = summarize(certificate.cert_path).not_after
        except (OSError, ssl.SSLError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise ValueError(
                f"domain {domain.name}: certificate {certificate.cert_path} "
                f"with key {certificate.key_path} does not load: {reason}"
            ) from None
        if warn and expires <= datetime.now(UTC):
            sys.stderr.write(
                f"vodedge: warning: domain {domain.name}: certificate expired on "
                f"{iso_time(expires)}\n"
            )


def purge(args: argparse.Namespace) -> int:
    """Drop cached objects: a URL drops that object (every query variant), a URL ending
    in '/' everything under that directory."""
    from vodedge.edge.cache import DiskCache
    from vodedge.edge.resolve import cache_key

    node = node_loader(args)()
    cache = DiskCache(node.cache_dir / "store", node.cache_size)
    try:
        for url in args.urls:
            parts = urlsplit(url)
            domain = node.domain_for(parts.netloc)
            if domain is None or not parts.path.startswith("/"):
                sys.stderr.write(f"vodedge: error: {url}: no configured domain serves it\n")
                return 2
            key = cache_key(domain, parts.netloc, parts.path, {})
            if key.endswith("/"):
                dropped = cache.purge(key, prefix=True)
            else:
                dropped = cache.purge(key) + cache.purge(key + "?", prefix=True)
            print(f"{url}: {dropped} object(s) dropped")
    finally:
        cache.index.close()
    return 0
