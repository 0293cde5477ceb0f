"""The `vodedge` command line: thin over the media layer and the node.

This module only starts the command: the parser (argparse, typing) is imported by
`console_main` once the cyclic garbage collector is off for a one-shot command, as
every module a command imports is timed with it (`vodedge extract` against ffmpeg).
"""

from __future__ import annotations

import gc
import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing before gc.disable
if TYPE_CHECKING:
    from collections.abc import Sequence

# The README's command-line table says the same (tests/test_readme.py checks it).
EXTRACT_HELP = (
    "writes the audio-only file (MP4 family or FLV, by content), optionally clipped, in seconds"
)
CLIP_HELP = (
    "writes a clip with the video kept (keyframe-aligned start); for MP3 and MPEG-TS "
    "(by content) only --end N: the trial-playback cut the edge serves for ?<preview argument>=N"
)
INSPECT_HELP = "summarises an MP4 or FLV"


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
    "lane",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    from vodedge.cli.commands import run
    from vodedge.cli.parser import parser_for

    argv = sys.argv[1:] if argv is None else argv
    return run(parser_for(argv).parse_args(argv))


def console_main() -> None:
    """Entry point of the `vodedge` console script.

    One-shot commands are timed against ffmpeg as whole processes: they run
    without the cyclic garbage collector (their allocations are bounded and
    short-lived; it is off before their imports, which otherwise trigger it) and
    leave without tearing the heap down, once their output is flushed and closed.
    """
    argv = sys.argv[1:]
    # The command is the first word not an option (the top-level ones exit at once).
    if next((arg for arg in argv if not arg.startswith("-")), None) != "serve":
        gc.disable()
    from vodedge.cli.parser import parser_for

    args = parser_for(argv).parse_args(argv)
    from vodedge.cli.commands import run

    code = run(args)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    raise SystemExit(main())
