"""The command-line shape of the API commands (`domain`, `config`, `push`, and `purge`'s
API flags); kept apart from the client so that other commands start fast."""

from __future__ import annotations

import argparse
from typing import TypeVar  # commands.py imports typing too: no start-up cost

P = TypeVar("P", bound=argparse.ArgumentParser)


def add_endpoint_options(parser: argparse.ArgumentParser) -> None:
    """--endpoint and the access key flags (else VODEDGE_ENDPOINT, VODEDGE_ACCESS_KEY_*)."""
    parser.add_argument(
        "--endpoint", help="the API, e.g. http://127.0.0.1:9090 ($VODEDGE_ENDPOINT)"
    )
    parser.add_argument("--access-key-id", help="($VODEDGE_ACCESS_KEY_ID)")
    parser.add_argument(
        "--access-key-secret", help="($VODEDGE_ACCESS_KEY_SECRET; prefer the variable)"
    )


def add_commands(commands: argparse._SubParsersAction[P]) -> None:
    """The `domain`, `config` and `push` commands (`purge` is shared with the cache CLI)."""
    domain = commands.add_parser("domain", help="add, list, show, start, stop, delete domains")
    actions = domain.add_subparsers(
        dest="verb", required=True, parser_class=type(domain), prog=domain.prog
    )
    add = actions.add_parser("add", help="accelerate a domain (AddCdnDomain)")
    add.add_argument("domain")
    add.add_argument(
        "--origin",
        action="append",
        metavar="HOST[:PORT]",
        help="an origin IP address or domain name (repeat for more; port 443 is HTTPS)",
    )
    add.add_argument("--sources", help="the API's Sources JSON instead of --origin")
    add.add_argument("--cdn-type", default="video", help="CdnType (default video)")
    listing = actions.add_parser("list", help="every domain (DescribeUserDomains)")
    listing.add_argument("--json", action="store_true", help="the API's answers as JSON")
    show = actions.add_parser("show", help="one domain in full (DescribeCdnDomainDetail)")
    show.add_argument("domain")
    simple = [
        actions.add_parser("start", help="serve a stopped domain again (StartCdnDomain)"),
        actions.add_parser("stop", help="stop serving a domain: 403 (StopCdnDomain)"),
        actions.add_parser("delete", help="forget a domain (DeleteCdnDomain)"),
    ]
    for parser in simple:
        parser.add_argument("domain")

    config = commands.add_parser("config", help="set, get, delete a domain's functions")
    verbs = config.add_subparsers(
        dest="verb", required=True, parser_class=type(config), prog=config.prog
    )
    set_ = verbs.add_parser("set", help="set a function (BatchSetCdnDomainConfig)")
    set_.add_argument("domain", help="a domain, or several separated by commas")
    set_.add_argument("function", help="e.g. ali_video_split")
    set_.add_argument("args", nargs="*", metavar="ARG=VALUE")
    set_.add_argument("--config-id", help="update this ConfigId instead of adding one")
    get = verbs.add_parser("get", help="a domain's functions (DescribeCdnDomainConfigs)")
    get.add_argument("domain")
    get.add_argument("functions", nargs="*", metavar="FUNCTION")
    get.add_argument("--json", action="store_true", help="the API's answer as JSON")
    delete = verbs.add_parser("delete", help="drop functions (DeleteSpecificConfig)")
    delete.add_argument("domain")
    delete.add_argument("which", nargs="+", metavar="CONFIG_ID|FUNCTION")

    push = commands.add_parser("push", help="prefetch URLs into the cache (PushObjectCache)")
    push.add_argument("urls", nargs="+", metavar="URL")
    push.add_argument("--wait", action="store_true", help="wait until the objects are cached")
    for parser in (add, listing, show, set_, get, delete, push, *simple):
        add_endpoint_options(parser)
