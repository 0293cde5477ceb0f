"""The `vodedge` command line: thin over the media layer (and, later, the edge)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Sequence

from vodedge import __version__
from vodedge.cli.api_parsers import add_commands, add_endpoint_options


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"vodedge: error: {message}\n")
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vodedge", description="A video edge node for MP4 and FLV.")
    parser.add_argument("--version", action="version", version=f"vodedge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    extract = commands.add_parser("extract", help="write the audio-only rendition of a file")
    extract.add_argument("input")
    extract.add_argument("-o", "--output", required=True)
    extract.add_argument("--start", help="clip from this second (sample-precise)")
    extract.add_argument("--end", help="clip to this second")
    extract.add_argument("--max-moov", type=int, default=64 << 20, help=argparse.SUPPRESS)

    clip = commands.add_parser("clip", help="write a keyframe-aligned clip, video kept")
    clip.add_argument("input")
    clip.add_argument("-o", "--output", required=True)
    clip.add_argument("--start", help="clip from the keyframe at or before this second")
    clip.add_argument("--end", help="clip to this second")
    clip.add_argument("--max-moov", type=int, default=64 << 20, help=argparse.SUPPRESS)

    inspect = commands.add_parser("inspect", help="summarise an MP4 or FLV file")
    inspect.add_argument("input")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument("--boxes", action="store_true", help="print the box tree")

    serve = commands.add_parser("serve", help="run the edge server")
    _node_options(serve, required=False)
    serve.add_argument(
        "--state-dir",
        help="where the API's store lives (default: 'state' beside the cache directory)",
    )
    serve.add_argument("--listen", help="HOST:PORT for clients (default 127.0.0.1:8080)")
    serve.add_argument("--admin", help="HOST:PORT for /metrics and the API (default off)")
    serve.add_argument("--listen-tls", help="HOST:PORT for HTTPS, certificate by SNI (default off)")
    serve.add_argument("--workers", help="worker processes (default: one per CPU)")
    serve.add_argument("--cache-size", help="disk cache bound, e.g. 10GiB")
    serve.add_argument(
        "--access-log", default="-", help="file for JSON access-log lines; '-' stdout, 'off'"
    )
    serve.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    for key in LIMIT_FLAGS:
        flag = "--" + key.replace("_", "-")
        serve.add_argument(flag, dest=f"limit_{key}", help=f"the [node] {key} setting")

    purge = commands.add_parser(
        "purge",
        help="drop cached objects by URL or directory URL: through the API"
        " (RefreshObjectCaches), or in a local cache with --config/--origin",
    )
    _node_options(purge, required=False)
    purge.add_argument("urls", nargs="+", metavar="URL", help="http://host/path, or .../dir/")
    purge.add_argument("--wait", action="store_true", help="API: wait until every worker purged")
    add_endpoint_options(purge)
    add_commands(commands)

    from vodedge.cli.signing import add_sign_command

    add_sign_command(commands)

    demo = commands.add_parser("demo", help="extract the audio of every sample in a directory")
    demo.add_argument("directory")
    demo.add_argument("--out", default="var/demo")
    return parser


# The [node] limits settable by flag (config.limits.LIMIT_KEYS, named here so that
# commands other than serve do not import the configuration package).
LIMIT_FLAGS = (
    "idle_timeout",
    "send_timeout",
    "origin_connect_timeout",
    "origin_read_timeout",
    "origin_deadline",
    "max_connections",
    "shutdown_timeout",
    "min_free_space",
)


def _node_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--config", help="a TOML file of domains (see examples/vodedge.toml)")
    source.add_argument("--origin", help="zero-config: serve every Host from this directory or URL")
    parser.add_argument("--cache-dir", help="where the cache lives (default var/cache)")


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = _parser().parse_args(argv)
    from vodedge.cli.commands import run

    return run(args)


def console_main() -> None:
    """Entry point of the `vodedge` console script.

    One-shot commands are timed against ffmpeg as whole processes: they run
    without the cyclic garbage collector (their allocations are bounded and
    short-lived) and leave without tearing the heap down, once their output is
    flushed and closed.
    """
    args = _parser().parse_args()
    if args.command != "serve":
        gc.disable()
    from vodedge.cli.commands import run

    code = run(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
