"""`vodedge keys add|remove|list --store URL`: a fleet's access keys, in its Redis.

Run by an operator who can reach Redis (the API cannot change keys: a leaked key must
not be able to mint others). Every node applies a change within a second and keeps
the keys in its copy, so it still authenticates while Redis is out of reach.
"""

from __future__ import annotations

import argparse
import sys
from typing import TypeVar

P = TypeVar("P", bound=argparse.ArgumentParser)

SECRET_ENV = "VODEDGE_NEW_ACCESS_KEY_SECRET"


def add_keys_command(commands: argparse._SubParsersAction[P]) -> None:
    """The `keys` subcommand and its verbs."""
    keys = commands.add_parser("keys", help="a fleet's API access keys, in its Redis (--store)")
    verbs = keys.add_subparsers(dest="verb", required=True, prog=keys.prog)
    add = verbs.add_parser(
        "add",
        help="add a key, or give an existing id a new secret (rotation); the secret is"
        f" ${SECRET_ENV}, or made and printed once",
    )
    add.add_argument("key_id", metavar="ID")
    add.add_argument("--read-only", action="store_true", help="Describe* actions only")
    add.add_argument("--rate", type=float, help="calls per second (default 200)")
    remove = verbs.add_parser("remove", help="remove a key: every node refuses it within 1 s")
    remove.add_argument("key_id", metavar="ID")
    verbs.add_parser("list", help="ids and rights (never secrets)")
    for verb in (add, remove, verbs.choices["list"]):
        verb.add_argument("--store", required=True, help="the fleet's redis:// URL")


def keys(args: argparse.Namespace) -> int:
    """Run `vodedge keys VERB`."""
    import os
    import secrets  # here: every command builds the parser this module adds to

    from vodedge.config.keys import DEFAULT_RATE, AccessKey
    from vodedge.control.redis_store import RedisStore
    from vodedge.control.store import StoreUnavailable
    from vodedge.control.stores import check_store_url

    store = RedisStore(check_store_url(args.store), "vodedge-keys")
    try:
        if args.verb == "add":
            given = os.environ.get(SECRET_ENV)
            secret = given or secrets.token_urlsafe(30)
            rate = DEFAULT_RATE if args.rate is None else args.rate
            store.put_access_key(AccessKey(args.key_id, secret, args.read_only, rate))
            if not given:
                sys.stdout.write(f"{args.key_id} {secret}\n")
            return 0
        if args.verb == "remove":
            if not store.delete_access_key(args.key_id):
                raise ValueError(f"no access key {args.key_id} in {args.store}")
            return 0
        for key in store.access_keys():
            rights = "read-only" if key.read_only else "full"
            sys.stdout.write(f"{key.id}\t{rights}\t{key.rate:g}/s\n")
        return 0
    except StoreUnavailable as exc:
        raise ValueError(f"{args.store}: {exc}") from None
    finally:
        store.close()
