"""`vodedge sign`: a signed URL, as a domain's aliauth function verifies it."""

from __future__ import annotations

import argparse
import sys
import time
from typing import TypeVar

KINDS = {"a": "type_a", "b": "type_b", "c": "type_c", "f": "type_f"}


P = TypeVar("P", bound=argparse.ArgumentParser)


def add_sign_command(commands: argparse._SubParsersAction[P]) -> None:
    """The `sign` subcommand's arguments."""
    sign = commands.add_parser(
        "sign", help="print a signed URL (aliauth types A, B, C, F)", description=(
            "The URL stays valid for --ttl seconds on a domain whose ali_auth_delta is "
            "--delta: the timestamp is the signing time shifted by ttl - delta."
        ),
    )  # fmt: skip
    sign.add_argument("url", metavar="URL")
    sign.add_argument("--type", required=True, choices=sorted(KINDS), help="the auth_type")
    sign.add_argument("--key", required=True, help="auth_key1 (or auth_key2)")
    sign.add_argument("--ttl", type=int, help="seconds the URL should stay valid (default: delta)")
    sign.add_argument("--delta", type=int, default=1800, help="the domain's ali_auth_delta")
    sign.add_argument(
        "--sign-args", default="", help="vodedge_signed_args: query parameters to sign, a,b"
    )
    sign.add_argument("--now", type=int, help="sign as at this UNIX time (default: now)")
    sign.add_argument("--rand", default="0", help="type A's rand (no '-')")
    sign.add_argument("--uid", default="0", help="type A's uid (no '-')")
    sign.add_argument("--sign-param", default="sign", help="type F's signature parameter")
    sign.add_argument("--time-param", default="time", help="type F's timestamp parameter")
    sign.add_argument("--time-format", choices=("hex", "dec"), default="hex", help="type F")
    sign.add_argument(
        "--in-query", action="store_true", help="type C: KEY1/KEY2 parameters, not path segments"
    )


def sign(args: argparse.Namespace) -> int:
    """Print the signed form of `args.url`."""
    # Imported here, not at the top: every command builds the parser this module adds to.
    from urllib.parse import urlsplit, urlunsplit

    from vodedge.config.functions import Function, check_function
    from vodedge.config.policy import url_auth_of
    from vodedge.config.urlauth import sign as sign_parts

    parts = urlsplit(args.url)
    if not parts.path.startswith("/"):
        raise ValueError(f"{args.url}: the URL needs a path starting with /")
    if "-" in args.rand or "-" in args.uid:
        raise ValueError("--rand and --uid must not contain '-'")
    function_args = {
        "auth_type": KINDS[args.type],
        "auth_key1": args.key,
        "ali_auth_delta": str(args.delta),
        "sign_param": args.sign_param,
        "time_param": args.time_param,
        "time_format": args.time_format,
    }
    if args.sign_args:
        function_args["vodedge_signed_args"] = args.sign_args
    auth = url_auth_of(check_function(Function.of("aliauth", **function_args)))
    assert auth is not None
    now = int(time.time()) if args.now is None else args.now
    ttl = args.delta if args.ttl is None else args.ttl
    path, query = sign_parts(
        auth,
        parts.path,
        parts.query,
        now + ttl - args.delta,
        rand=args.rand,
        uid=args.uid,
        c_in_query=args.in_query,
    )
    sys.stdout.write(urlunsplit((parts.scheme, parts.netloc, path, query, "")) + "\n")
    return 0
