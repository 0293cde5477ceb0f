"""The media subcommands (extract, clip, inspect) and the dispatch of every command."""

from __future__ import annotations

import argparse
import os
import sys

from vodedge.cli.files import LocalSource, atomic_output, write_plan
from vodedge.media.errors import InvalidSeek, MediaError
from vodedge.media.outputs import Wanted, plan_reading
from vodedge.media.plan import Plan

# json, pathlib and the seconds parser are imported where used: `vodedge extract` is
# timed against ffmpeg as a whole process, start-up included.


def _fail(message: str) -> int:
    sys.stderr.write(f"vodedge: error: {message}\n")
    return 2


def _seconds(text: str | None, name: str) -> float | None:
    if text is None:
        return None
    from vodedge.media.seeking import parse_seconds  # its regex is compiled on import

    return parse_seconds(text, name)


def run(args: argparse.Namespace) -> int:
    """Run the parsed command; bad input is one line on stderr and exit code 2."""
    try:
        if args.command in ("extract", "clip"):
            return extract(
                args.input,
                args.output,
                start=_seconds(args.start, "start"),
                end=_seconds(args.end, "end"),
                audio_only=args.command == "extract",
                max_moov=args.max_moov,
            )
        if args.command == "inspect":
            return inspect(args.input, as_json=args.json, boxes=args.boxes)
        if args.command == "sign":
            from vodedge.cli.signing import sign

            return sign(args)
        if args.command == "keys":
            from vodedge.cli.keys import keys

            return keys(args)
        if args.command == "serve":
            from vodedge.cli.serving import serve

            return serve(args)
        if args.command == "purge" and (args.config or args.origin):
            from vodedge.cli.serving import purge

            return purge(args)
        if args.command in ("domain", "config", "push", "purge"):
            from vodedge.cli import api_commands

            return api_commands.run(args)
    except BrokenPipeError:
        # The reader of our stdout went away (`| head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MediaError as exc:
        return _fail(f"{args.input if 'input' in args else ''}: {exc}".lstrip(": "))
    except ValueError as exc:  # configuration errors (ConfigFileError is one) and bad flags
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    except KeyboardInterrupt:
        return 130
    return _fail(f"unknown command {args.command}")


def plan_of(
    source: LocalSource,
    *,
    start: float | None,
    end: float | None,
    audio_only: bool,
    max_moov: int,
) -> Plan:
    """The plan of a local file's audio-only rendition and/or clip, by its content."""
    from vodedge.media.sniff import looks_like_flv, looks_like_mpeg_audio, looks_like_mpeg_ts

    head = source.head(400)
    if looks_like_mpeg_ts(head) or looks_like_mpeg_audio(head):
        # MP3 and MPEG-TS have one video function, trial playback: the first --end seconds.
        if audio_only or start is not None or end is None:
            raise InvalidSeek("MP3 and MPEG-TS files are cut with `clip --end N` only")
        container = "ts" if looks_like_mpeg_ts(head) else "mp3"
    else:
        if start is None and end is None and not audio_only:
            raise InvalidSeek("a clip needs --start or --end")
        container = "flv" if looks_like_flv(head) else "mp4"
    # The command line speaks seconds; FLV byte offsets are for URLs (flv_seek_by_time off).
    wanted = Wanted(container, audio_only=audio_only, start=start, end=end, by_time=True)
    return source.parse(plan_reading(wanted, source.size, max_moov=max_moov))


def extract(
    input_path: str,
    output_path: str,
    *,
    start: float | None = None,
    end: float | None = None,
    audio_only: bool = True,
    max_moov: int = 64 << 20,
) -> int:
    """Write the audio-only rendition (or clip) of `input_path` to `output_path`."""
    with LocalSource(input_path) as source:
        plan = plan_of(source, start=start, end=end, audio_only=audio_only, max_moov=max_moov)
        with atomic_output(output_path) as fd:
            write_plan(plan, source, fd, progress=True)
    return 0


def _human(n: int) -> str:
    return f"{n:,}"


def inspect(input_path: str, *, as_json: bool, boxes: bool) -> int:
    """Print what the file holds."""
    from vodedge.media.mp4.summary import box_tree, mp4_summary
    from vodedge.media.sniff import looks_like_flv

    with LocalSource(input_path) as source:
        if looks_like_flv(source.head()):
            return _inspect_flv(source, input_path, as_json=as_json)
        summary = source.parse(mp4_summary(source.size))
        tree = source.parse(box_tree(source.size)) if boxes else None
    if as_json:
        import json

        out = summary.to_dict()
        if tree is not None:
            from dataclasses import asdict

            out["boxes"] = [asdict(node) for node in tree]
        json.dump(out, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    name = os.path.basename(input_path)
    brands = " ".join(summary.compatible_brands)
    brand = summary.brand or "-"
    print(f"{name}: ISO BMFF, brand {brand} ({brands}), {_human(summary.size)} bytes")
    print(
        f"moov: at the {summary.moov_position}, offset {_human(summary.moov_offset)}, "
        f"{_human(summary.moov_size)} bytes; fragments: {summary.fragments}"
    )
    print(
        f"{'track':>5}  {'kind':<9} {'codec':<5} {'lang':<4} "
        f"{'duration':>10} {'samples':>8} {'bytes':>13}"
    )
    for track in summary.tracks:
        duration = "-" if track.duration is None else f"{track.duration:.3f} s"
        samples = "-" if track.samples is None else str(track.samples)
        size = "-" if track.bytes is None else _human(track.bytes)
        print(
            f"{track.id:>5}  {track.kind:<9} {track.codec:<5} {track.language:<4} "
            f"{duration:>10} {samples:>8} {size:>13}"
        )
    if summary.audio_only_bytes is not None and summary.saved_share is not None:
        print(
            f"audio only: {_human(summary.audio_only_bytes)} bytes "
            f"({(1 - summary.saved_share) * 100:.1f} % of the file, saves "
            f"{summary.saved_share * 100:.1f} %)"
        )
    else:
        print(f"audio only: not possible ({summary.audio_only_error})")
    for note in summary.notes:
        print(f"note: {note}")
    if tree is not None:
        print("boxes:")
        stack = [(node, 1) for node in reversed(tree)]
        while stack:
            node, depth = stack.pop()
            print(f"{'  ' * depth}{node.type}  @{node.offset}  {_human(node.size)} bytes")
            stack.extend((child, depth + 1) for child in reversed(node.children))
    return 0


def _inspect_flv(source: LocalSource, input_path: str, *, as_json: bool) -> int:
    from vodedge.media.flv import flv_summary

    summary = source.parse(flv_summary(source.size))
    if as_json:
        import json

        json.dump({"format": "flv", **summary.to_dict()}, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    name = os.path.basename(input_path)
    flags = [kind for kind, on in (("audio", summary.header_has_audio),
                                   ("video", summary.header_has_video)) if on]  # fmt: skip
    print(f"{name}: FLV version {summary.version} ({'+'.join(flags) or 'no'} flagged), "
          f"{_human(summary.size)} bytes")  # fmt: skip
    duration = "-" if summary.duration is None else f"{summary.duration:.3f} s"
    if summary.keyframe_index_entries is not None:
        index = f"{summary.keyframe_index_entries} entries"
    elif summary.metadata is not None and "keyframes" in summary.metadata:
        index = "unreadable"
    else:
        index = "none (seeking by time scans the tags)"
    print(f"duration: {duration}; keyframes index in onMetaData: {index}")
    print(f"audio codecs: {', '.join(summary.audio_codecs) or '-'}; "
          f"video codecs: {', '.join(summary.video_codecs) or '-'}")  # fmt: skip
    print(f"{'tags':<8} {'count':>8} {'bytes':>13}")
    for kind, tally in summary.tags.items():
        print(f"{kind:<8} {tally.count:>8} {_human(tally.bytes):>13}")
    if summary.truncated:
        print(f"truncated: {summary.truncated}")
    if summary.audio_only_bytes is not None and summary.size:
        share = summary.audio_only_bytes / summary.size
        print(f"audio only: {_human(summary.audio_only_bytes)} bytes ({share * 100:.1f} % "
              f"of the file, saves {(1 - share) * 100:.1f} %)")  # fmt: skip
    else:
        print(f"audio only: not possible ({summary.audio_only_error})")
    return 0
