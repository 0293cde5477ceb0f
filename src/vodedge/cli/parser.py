"""The command line's argparse parser (imported once the garbage collector is settled)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from vodedge import __version__
from vodedge.cli import CLIP_HELP, EXTRACT_HELP, INSPECT_HELP, LIMIT_FLAGS


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size finds it (COLUMNS, stdout, 80)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help layout, sized without shutil.

    argparse makes a formatter for every add_argument (to check its metavar), and the
    default one imports shutil (with bz2 and lzma) to ask the terminal's width: a few
    ms of every run of `vodedge extract`, which is timed against ffmpeg.
    """

    terminal_width: int | None = None  # asked once

    def __init__(self, prog: str) -> None:
        if _Formatter.terminal_width is None:
            _Formatter.terminal_width = _columns() - 2
        super().__init__(prog, width=_Formatter.terminal_width)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"vodedge: error: {message}\n")
        raise SystemExit(2)


def parser_for(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command line's parser; when `argv` runs a media command, that command's alone
    (none for `--version`).

    Defining every command's arguments costs more than `vodedge extract`'s own imports
    (it is timed against ffmpeg as a whole process); errors print no usage, and a media
    command's help shows only its own arguments, so nothing the user sees changes.
    """
    parser = _Parser(
        prog="vodedge",
        description="A video edge node for MP4 and FLV: origin pull, a disk cache, and audio "
        "extraction and seeking on the fly. Bad input is one line on stderr and exit code 2.",
    )
    parser.add_argument("--version", action="version", version=f"vodedge {__version__}")
    # Every add_subparsers names its prog: argparse would otherwise lay out a usage line
    # to find it, importing shutil (and bz2, lzma) on every run of every command.
    commands = parser.add_subparsers(
        dest="command", required=True, parser_class=_Parser, metavar="COMMAND", prog=parser.prog
    )
    command = argv[0] if argv else ""
    if command in _MEDIA_COMMANDS:
        _MEDIA_COMMANDS[command](commands)
        return parser
    if command == "--version":  # answered before any command is looked at
        return parser
    for add in _MEDIA_COMMANDS.values():
        add(commands)
    _add_other_commands(commands)
    return parser


Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def _add_extract(commands: Commands) -> None:
    extract = commands.add_parser(
        "extract",
        help=EXTRACT_HELP,
        description=f"{EXTRACT_HELP[0].upper()}{EXTRACT_HELP[1:]}. " + _OUTPUT_NOTE,
    )
    _in_out(extract)
    extract.add_argument("--start", metavar="S", help="from this second (sample-precise)")
    extract.add_argument("--end", metavar="E", help="to this second")
    extract.add_argument("--max-moov", type=int, default=64 << 20, help=argparse.SUPPRESS)


def _add_clip(commands: Commands) -> None:
    clip = commands.add_parser(
        "clip",
        help=CLIP_HELP,
        description=f"{CLIP_HELP[0].upper()}{CLIP_HELP[1:]}. " + _OUTPUT_NOTE,
    )
    _in_out(clip, "an MP4 (MOV, M4A, 3GP...), FLV, MP3 or MPEG-TS")
    clip.add_argument("--start", metavar="S", help="from the keyframe at or before this second")
    clip.add_argument("--end", metavar="E", help="to this second")
    clip.add_argument("--max-moov", type=int, default=64 << 20, help=argparse.SUPPRESS)


def _add_inspect(commands: Commands) -> None:
    inspect = commands.add_parser(
        "inspect", help=INSPECT_HELP, description=f"{INSPECT_HELP[0].upper()}{INSPECT_HELP[1:]}."
    )
    inspect.add_argument("input", metavar="IN", help="an MP4 (MOV, M4A, 3GP...) or FLV file")
    inspect.add_argument("--json", action="store_true", help="machine-readable output")
    inspect.add_argument("--boxes", action="store_true", help="print the box tree")


# In the order `vodedge --help` lists them, before the others.
_MEDIA_COMMANDS: dict[str, Callable[[Commands], None]] = {
    "extract": _add_extract,
    "clip": _add_clip,
    "inspect": _add_inspect,
}


def _add_other_commands(commands: Commands) -> None:
    from vodedge.cli.api_parsers import add_commands, add_endpoint_options
    from vodedge.cli.keys import add_keys_command
    from vodedge.cli.signing import add_sign_command

    serve = commands.add_parser("serve", help="runs the edge server")
    _node_options(serve, required=False)
    serve.add_argument(
        "--state-dir",
        help="where the API's store lives (default: 'state' beside the cache directory)",
    )
    serve.add_argument(
        "--store",
        help="a fleet's shared store: redis://HOST:PORT/DB, rediss://... or"
        " redis+sentinel://HOST:PORT[,HOST:PORT]/SERVICE[/DB] (default: SQLite in --state-dir)",
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
    serve.add_argument(
        "--role",
        choices=("edge", "parent"),
        help="parent: never fetch through origins of kind vodedge (default: the file's, or edge);"
        " the fleet's secret comes from VODEDGE_FLEET_SECRET",
    )
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
    add_sign_command(commands)
    add_keys_command(commands)


_OUTPUT_NOTE = (
    "The output is written to a temporary file and renamed, so a failed run leaves nothing; "
    "outputs over 64 MiB draw a progress bar when stderr is a terminal."
)


def _in_out(
    parser: argparse.ArgumentParser, kinds: str = "an MP4 (MOV, M4A, 3GP...) or FLV"
) -> None:
    parser.add_argument("input", metavar="IN", help=f"{kinds} file, told apart by content")
    parser.add_argument("-o", "--output", metavar="OUT", required=True, help="the file to write")


def _node_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument("--config", help="a TOML file of domains (see examples/vodedge.toml)")
    source.add_argument("--origin", help="zero-config: serve every Host from this directory or URL")
    parser.add_argument(
        "--cache-dir",
        metavar="D",
        help="where the cache lives (default: var/cache under the current directory; "
        "with --config, the file's cache_dir)",
    )
