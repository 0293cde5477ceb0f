"""vodedge benchmarks, side by side with the tools a user would otherwise pick (`make bench`)."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import cold
import edge
import hit
import lean_clip
import media
import seek
from harness import (
    REPO,
    SCRATCH,
    VENV_BIN,
    Command,
    LoadMeter,
    Row,
    Section,
    Stats,
    compare,
    fmt_seconds,
    machine_info,
    time_in_process,
    wait_for_quiet,
    write_markdown,
)

PYTHON = str(VENV_BIN / "python")
VODEDGE = str(VENV_BIN / "vodedge")
TARGET_EXTRACT_RATIO = 0.5


def ratio(a: Stats | str, b: Stats | str) -> str:
    """a / b of two medians, or empty when either failed."""
    if isinstance(a, Stats) and isinstance(b, Stats) and b.median > 0:
        return f"{a.median / b.median:.2f}"
    return ""


def cpu_note(label: str, a: Stats | str, b: Stats | str) -> list[str]:
    """The CPU-time ratio of two contenders (steadier than wall time on a shared machine)."""
    if not (isinstance(a, Stats) and isinstance(b, Stats)):
        return []
    ca, cb = a.cpu_median, b.cpu_median
    if not ca or not cb:
        return []
    note = f"{label}: CPU-time ratio {ca / cb:.2f} ({fmt_seconds(ca)} vs {fmt_seconds(cb)})"
    if a.discarded:
        note += f"; {a.discarded} rounds repeated because the machine was busy"
    return [note]


def timing_row(label: str, result: Stats | str, command: Command, ratio_text: str = "") -> Row:
    """A table row for a subprocess contender (or its failure)."""
    if isinstance(result, str):
        return Row(label, "-", "", command.shell, result)
    cpu = result.cpu_median
    detail = f"best {fmt_seconds(result.best)}, IQR {fmt_seconds(result.spread)}"
    if cpu is not None:
        detail += f", CPU {fmt_seconds(cpu)}"
    return Row(label, fmt_seconds(result.median), ratio_text, command.shell, detail)


def check_outputs(source: Path, outputs: dict[str, Path]) -> list[str]:
    """Notes saying whether each tool's output carries exactly the source's audio packets."""
    want = media.audio_digest(source)
    notes = []
    for label, path in outputs.items():
        if not path.exists():
            continue
        got = media.audio_digest(path)
        verdict = "identical audio packets" if got == want else f"AUDIO DIFFERS ({got})"
        notes.append(f"{label} output: {path.stat().st_size / 1e6:.2f} MB, {verdict}")
    return notes


# -- benchmark 1 (issue 2): whole-process audio extraction of a 720p MP4 ----------------


def baseline_command(
    baseline: tuple[Path, str] | None, argv: list[str], out: Path
) -> list[Command]:
    """`vodedge` run on another commit's src/ (same venv, PYTHONPATH first), if asked."""
    if baseline is None:
        return []
    src, commit = baseline
    label = f"vodedge {commit.split()[0]}"
    return [Command(label, [VODEDGE, *argv, str(out)], (out,), (("PYTHONPATH", str(src)),))]


def baseline_rows(
    baseline: list[Command], results: dict[str, Stats | str], ff: Stats | str
) -> tuple[list[Row], list[str]]:
    """The baseline's row and CPU note, placed beside the current tree's."""
    rows = [timing_row(f"{c.label} extract (baseline)", results[c.label], c,
                       ratio(results[c.label], ff)) for c in baseline]  # fmt: skip
    notes = [n for c in baseline for n in cpu_note(f"{c.label} / ffmpeg", results[c.label], ff)]
    return rows, notes


def bench_extract(runs: int, warmup: int, baseline: tuple[Path, str] | None = None) -> Section:
    """`vodedge extract` against `ffmpeg -vn -c:a copy`, whole process, 5-minute 720p MP4."""
    source = media.ensure(media.MP4_720P)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    out_ff = SCRATCH / "extract.ffmpeg.mp4"
    out_vd = SCRATCH / "extract.vodedge.mp4"
    ffmpeg = Command(
        "ffmpeg",
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-vn", "-c:a", "copy", str(out_ff)],
        (out_ff,),
    )
    vodedge = Command("vodedge", [VODEDGE, "extract", str(source), "-o", str(out_vd)], (out_vd,))
    # Floors: what any Python CLI pays before doing work (interpreter, site,
    # argparse and our imports), to show how much of the budget is left.
    python_floor = Command("python -c pass", [PYTHON, "-c", "pass"])
    cli_floor = Command("vodedge --version", [VODEDGE, "--version"])
    out_base = SCRATCH / "extract.baseline.mp4"
    before = baseline_command(baseline, ["extract", str(source), "-o"], out_base)
    commands = [ffmpeg, vodedge, *before, python_floor, cli_floor]
    print(f"\nbenchmark extract: {runs} interleaved runs of {len(commands)} commands", flush=True)
    results = compare(commands, runs, warmup)
    ff = results["ffmpeg"]
    rows = [
        timing_row("ffmpeg -vn -c:a copy", ff, ffmpeg, "1.00" if isinstance(ff, Stats) else ""),
        timing_row("vodedge extract", results["vodedge"], vodedge, ratio(results["vodedge"], ff)),
        *baseline_rows(before, results, ff)[0],
        timing_row("(floor) python -c pass", results["python -c pass"], python_floor,
                   ratio(results["python -c pass"], ff)),
        timing_row("(floor) vodedge --version", results["vodedge --version"], cli_floor,
                   ratio(results["vodedge --version"], ff)),
    ]  # fmt: skip
    notes = [f"target: vodedge / ffmpeg <= {TARGET_EXTRACT_RATIO}"]
    notes += cpu_note("vodedge / ffmpeg", results["vodedge"], ff)
    notes += baseline_rows(before, results, ff)[1]
    checked = {"ffmpeg": out_ff, "vodedge": out_vd, **{c.label: out_base for c in before}}
    notes += check_outputs(source, checked)
    return Section(
        "extract",
        "Audio extraction, 5-minute 720p MP4 (issue 2), whole process",
        [media.describe(source)],
        rows,
        notes,
    )


# -- benchmark 2 (issue 2): the plan of a 30-minute MP4 with a ~650 kB moov ------------


def plan_builder(fd: int) -> tuple[Callable[[], object], dict[str, int]]:
    """A function building the audio plan of the file `fd` with pread, and what one reads."""
    from vodedge.media.mp4.audio import audio_plan
    from vodedge.media.reading import run

    size = os.fstat(fd).st_size
    counts = {"requests": 0, "bytes": 0}

    def counting_read(offset: int, length: int) -> bytes:
        data = os.pread(fd, length, offset)
        counts["requests"] += 1
        counts["bytes"] += len(data)
        return data

    plan = run(audio_plan(size), counting_read)
    counts["pieces"] = len(plan.pieces)
    counts["size"] = plan.size

    def build() -> object:
        return run(audio_plan(size), lambda offset, length: os.pread(fd, length, offset))

    return build, counts


def bench_plan(runs: int, warmup: int) -> Section:
    """Plan build in-process, and whole-process inspect/extract, on the 30-minute MP4."""
    head = media.ensure(media.MP4_LONG)
    tail = media.ensure(media.MP4_LONG_TAIL)
    rows: list[Row] = []
    notes: list[str] = []
    print("\nbenchmark plan: in-process plan builds", flush=True)
    in_process: dict[str, Stats] = {}
    for where, path in (("head", head), ("tail", tail)):
        with path.open("rb") as file:
            build, counts = plan_builder(file.fileno())
            stats = time_in_process(build, max(runs * 3, 30), warmup + 2)
        in_process[where] = stats
        rows.append(
            Row(
                f"vodedge audio_plan, moov at {where} (in-process)",
                fmt_seconds(stats.median),
                "",
                "",
                f"best {fmt_seconds(stats.best)}, {counts['requests']} reads "
                f"({counts['bytes'] / 1e3:.0f} kB), {counts['pieces']} pieces, "
                f"output {counts['size'] / 1e6:.2f} MB",
            )
        )
    SCRATCH.mkdir(parents=True, exist_ok=True)
    commands: list[Command] = []
    for where, path in (("head", head), ("tail", tail)):
        out_ff = SCRATCH / f"plan.ffmpeg.{where}.mp4"
        out_vd = SCRATCH / f"plan.vodedge.{where}.mp4"
        commands += [
            Command(
                f"ffmpeg -vn -c:a copy, moov at {where}",
                ["ffmpeg", "-v", "error", "-y", "-i", str(path), "-vn", "-c:a", "copy",
                 str(out_ff)],
                (out_ff,),
            ),
            Command(
                f"vodedge extract, moov at {where}",
                [VODEDGE, "extract", str(path), "-o", str(out_vd)],
                (out_vd,),
            ),
        ]  # fmt: skip
    commands += [
        Command("ffprobe -show_streams", ["ffprobe", "-v", "error", "-show_format",
                                          "-show_streams", str(head)]),
        Command("vodedge inspect", [VODEDGE, "inspect", str(head)]),
    ]  # fmt: skip
    print(f"benchmark plan: {runs} interleaved runs of {len(commands)} commands", flush=True)
    results = compare(commands, runs, warmup)
    by_label = {c.label: c for c in commands}
    for where in ("head", "tail"):
        ff_label = f"ffmpeg -vn -c:a copy, moov at {where}"
        vd_label = f"vodedge extract, moov at {where}"
        ff, vd = results[ff_label], results[vd_label]
        rows.append(timing_row(ff_label, ff, by_label[ff_label], "1.00"))
        rows.append(timing_row(vd_label, vd, by_label[vd_label], ratio(vd, ff)))
        notes += cpu_note(f"vodedge / ffmpeg, moov at {where}", vd, ff)
        if isinstance(ff, Stats):
            share = in_process[where].median / ff.median
            rows[0 if where == "head" else 1].ratio = f"{share:.2f}"
            notes.append(
                f"plan build, moov at {where}: {fmt_seconds(in_process[where].median)} "
                f"= {share:.2f} x ffmpeg's whole extraction of the same file"
            )
    probe, insp = results["ffprobe -show_streams"], results["vodedge inspect"]
    rows.append(timing_row("ffprobe -show_format -show_streams", probe,
                           by_label["ffprobe -show_streams"], "1.00"))  # fmt: skip
    rows.append(timing_row("vodedge inspect", insp, by_label["vodedge inspect"],
                           ratio(insp, probe)))  # fmt: skip
    notes += check_outputs(
        head,
        {
            "ffmpeg (head)": SCRATCH / "plan.ffmpeg.head.mp4",
            "vodedge (head)": SCRATCH / "plan.vodedge.head.mp4",
            "vodedge (tail)": SCRATCH / "plan.vodedge.tail.mp4",
        },
    )
    notes.append("in-process ratios are the plan build over ffmpeg's whole-process extraction")
    return Section(
        "plan",
        "30-minute MP4 with a large moov (issue 2): plan build and whole process",
        [media.describe(head), media.describe(tail)],
        rows,
        notes,
    )


# -- benchmark 3 (issue 3): FLV audio extraction throughput ----------------------------


# The read size of the streaming filter: a typical socket/origin read.
FLV_CHUNK = 64 << 10


def flv_in_process() -> list[tuple[str, Callable[[Path, BinaryIO | None], object]]]:
    """vodedge's FLV audio paths, in-process: the streaming filter and the plan, if present.

    Each takes the source and an optional sink; timed runs pass no sink (the
    output is counted, as a socket would take it), the check run writes a file.
    """
    try:
        from vodedge.media.flv.filters import FlvAudioFilter
        from vodedge.media.flv.plan import flv_audio_plan
        from vodedge.media.plan import Span
        from vodedge.media.reading import run
    except ImportError:
        return []

    def stream(path: Path, sink: BinaryIO | None) -> object:
        # Fresh bytes per read, as from a socket.
        produced = 0
        flt = FlvAudioFilter()
        with path.open("rb", buffering=0) as file:
            while chunk := file.read(FLV_CHUNK):
                for part in flt.feed(chunk):
                    produced += len(part)
                    if sink:
                        sink.write(part)
        for part in flt.close():
            produced += len(part)
            if sink:
                sink.write(part)
        return produced

    def plan(path: Path, sink: BinaryIO | None) -> object:
        size = path.stat().st_size
        with path.open("rb") as file:
            fd = file.fileno()
            result = run(flv_audio_plan(size), lambda offset, length: os.pread(fd, length, offset))
            if sink:
                for piece in result.pieces:
                    if isinstance(piece, Span):
                        piece = os.pread(fd, piece.length, piece.offset)
                    sink.write(piece)
        return result

    return [
        (f"vodedge FlvAudioFilter, {FLV_CHUNK >> 10} KiB feeds (in-process)", stream),
        ("vodedge flv_audio_plan, cached file (in-process)", plan),
    ]


def mb_per_s(size: int, result: Stats | str) -> str:
    """Input megabytes per second of a median time."""
    return f"{size / 1e6 / result.median:.0f} MB/s" if isinstance(result, Stats) else "-"


def bench_flv(runs: int, warmup: int, baseline: tuple[Path, str] | None = None) -> Section:
    """FLV audio extraction throughput (MB/s of input) against ffmpeg -f flv."""
    source = media.ensure(media.FLV_720P)
    size = source.stat().st_size
    SCRATCH.mkdir(parents=True, exist_ok=True)
    out_ff = SCRATCH / "flv.ffmpeg.flv"
    out_vd = SCRATCH / "flv.vodedge.flv"
    ffmpeg = Command(
        "ffmpeg",
        ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-vn", "-c:a", "copy", "-f", "flv",
         str(out_ff)],
        (out_ff,),
    )  # fmt: skip
    vodedge = Command("vodedge", [VODEDGE, "extract", str(source), "-o", str(out_vd)], (out_vd,))
    out_base = SCRATCH / "flv.baseline.flv"
    before = baseline_command(baseline, ["extract", str(source), "-o"], out_base)
    commands = [ffmpeg, vodedge, *before]
    print(f"\nbenchmark flv: {runs} interleaved runs of {len(commands)} commands", flush=True)
    results = compare(commands, runs, warmup)
    ff, vd = results["ffmpeg"], results["vodedge"]
    rows = [
        timing_row("ffmpeg -vn -c:a copy -f flv", ff, ffmpeg, "1.00"),
        timing_row("vodedge extract", vd, vodedge, ratio(vd, ff)),
        *baseline_rows(before, results, ff)[0],
    ]
    rows[0].median += f" ({mb_per_s(size, ff)})"
    if isinstance(vd, Stats):
        rows[1].median += f" ({mb_per_s(size, vd)})"
    paths = flv_in_process()
    if not paths:
        rows.append(Row("vodedge FLV filter (in-process)", "-", "", "",
                        "skipped: vodedge.media.flv.filters not available"))  # fmt: skip
    checked: dict[str, Path] = {"ffmpeg": out_ff, "vodedge": out_vd}
    checked.update({c.label: out_base for c in before})
    for number, (label, func) in enumerate(paths):

        def once(func: Callable[[Path, BinaryIO | None], object] = func) -> object:
            return func(source, None)

        checked[label] = SCRATCH / f"flv.inprocess{number}.flv"
        with checked[label].open("wb") as sink:
            func(source, sink)

        stats = time_in_process(once, runs, warmup)
        rows.append(
            Row(
                label,
                f"{fmt_seconds(stats.median)} ({mb_per_s(size, stats)})",
                ratio(stats, ff),
                "",
                f"best {fmt_seconds(stats.best)}, CPU {fmt_seconds(stats.cpu_median or 0)}",
            )
        )
    notes = ["ratio is time / ffmpeg's time (below 1 is faster); MB/s is of input"]
    notes += cpu_note("vodedge / ffmpeg", vd, ff)
    notes += baseline_rows(before, results, ff)[1]
    notes += check_outputs(source, checked)
    return Section(
        "flv",
        "FLV audio extraction throughput, 5-minute 720p FLV (issue 3)",
        [media.describe(source)],
        rows,
        notes,
    )


def source_tree(rev: str) -> tuple[Path, str]:
    """src/ of commit `rev`, extracted once under .cache/bench-src and built as `make`
    builds it (compiled with mypyc where setup.py and a compiler allow); its short hash.

    Others may be editing the working tree: a commit is a fixed thing to measure.
    """
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = REPO / ".cache" / "bench-src" / commit
    built = target / ".built"
    if not built.is_file():
        target.mkdir(parents=True, exist_ok=True)
        names = subprocess.run(
            ["git", "-C", str(REPO), "ls-tree", "--name-only", commit],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        wanted = ["src"] + [n for n in ("setup.py", "pyproject.toml", "README.md") if n in names]
        archive = subprocess.run(
            ["git", "-C", str(REPO), "archive", commit, *wanted], capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        if "setup.py" in wanted:  # the commit compiles its clip planner: as `make` would
            subprocess.run(
                [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                cwd=target,
                check=True,
                capture_output=True,
            )
        built.touch()
    return target / "src", f"{commit} (src/ of that commit, {build_of(target / 'src')})"


def build_of(src: Path) -> str:
    """Whether the source tree `src` runs its compiled modules or pure Python, and
    whether those are stale (a source changed since the build: the old code runs)."""
    if not any((src / "vodedge" / "media" / "mp4").glob("fastclip.*.so")):
        return "pure Python"
    manifest = src / "vodedge" / "_native.json"
    built = json.loads(manifest.read_text()) if manifest.is_file() else {"sources": {}}
    changed = [
        path
        for path, digest in built["sources"].items()
        if not (src / path).is_file()
        or hashlib.sha256((src / path).read_bytes()).hexdigest() != digest
    ]
    how = "compiled with mypyc"
    if any((src / "vodedge" / "media" / "mp4").glob("clipper.*.so")):
        how += " and Cython (the warm clip's planner)"
    if changed or not built["sources"]:
        return f"{how}, STALE (rebuild with make): {changed or 'no build record'}"
    return how


BENCHMARKS = (
    "extract",
    "plan",
    "flv",
    "seek",
    "seek-floor",
    "edge-hit",
    "edge-throughput",
    "edge-ttfb",
    "edge-slow-clients",
    "cold",
)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks (default: all), print tables, write bench/out/results.md."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("benchmarks", nargs="*", help=f"some of {', '.join(BENCHMARKS)}")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command (>= 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per command first")
    parser.add_argument("--wrk-seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (seek, hit)")
    parser.add_argument("--hit-seconds", type=int, default=3, help="s per wrk run (edge-hit)")
    parser.add_argument("--hit-rounds", type=int, default=5, help="interleaved runs of edge-hit")
    edge_defaults = edge.EdgeOptions()
    parser.add_argument(
        "--edge-connections",
        default=",".join(map(str, edge_defaults.connections)),
        help="wrk concurrencies of edge-throughput, comma-separated",
    )
    parser.add_argument("--edge-seconds", type=int, default=edge_defaults.seconds,
                        help="seconds per wrk run of edge-throughput")  # fmt: skip
    parser.add_argument("--edge-rounds", type=int, default=edge_defaults.rounds,
                        help="interleaved wrk runs per server and concurrency")  # fmt: skip
    parser.add_argument("--ttfb-samples", type=int, default=edge_defaults.ttfb_samples)
    parser.add_argument("--slow-clients", type=int, default=edge_defaults.slow_clients)
    parser.add_argument("--slow-rate", type=int, default=edge_defaults.slow_rate,
                        help="bytes/s each slow client reads")  # fmt: skip
    parser.add_argument("--slow-seconds", type=float, default=edge_defaults.slow_seconds)
    parser.add_argument("--finish-seconds", type=float, default=edge_defaults.finish_seconds,
                        help="how long slow clients may then read freely to the end")  # fmt: skip
    parser.add_argument("--slow-loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="vodedge's event loop in edge-slow-clients")  # fmt: skip
    parser.add_argument("--server-nofile", type=int, default=None,
                        help="run vodedge with this soft descriptor limit (e.g. 1024)")  # fmt: skip
    parser.add_argument(
        "--vodedge-src",
        type=Path,
        default=None,
        help="run the edge benchmarks on this source tree (e.g. `git archive REV src | tar x`)",
    )
    parser.add_argument(
        "--vodedge-rev",
        default=None,
        help="run the edge benchmarks on this commit's src/ (extracted under .cache/bench-src)",
    )
    parser.add_argument("--label", default="", help="kept apart in results.md, e.g. 'before'")
    parser.add_argument(
        "--baseline",
        default=None,
        metavar="REV",
        help="extract, flv: also time `vodedge extract` on this commit's src/, interleaved",
    )
    cold.add_arguments(parser.add_argument_group("cold (issue 13)"))
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=60.0,
        help="wait up to this many seconds for other processes to go idle before each benchmark",
    )
    args = parser.parse_args(argv)
    chosen = args.benchmarks or list(BENCHMARKS)
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    edge_options = edge.EdgeOptions(
        seconds=args.edge_seconds,
        rounds=args.edge_rounds,
        connections=tuple(int(c) for c in args.edge_connections.split(",")),
        ttfb_samples=args.ttfb_samples,
        slow_clients=args.slow_clients,
        slow_rate=args.slow_rate,
        slow_seconds=args.slow_seconds,
        finish_seconds=args.finish_seconds,
        vodedge_src=args.vodedge_src.resolve() if args.vodedge_src else None,
        commit=None if args.vodedge_src is None else f"source tree {args.vodedge_src}",
        server_nofile=args.server_nofile,
        slow_loop=args.slow_loop,
        label=args.label,
    )
    if args.vodedge_rev:
        edge_options.vodedge_src, edge_options.commit = source_tree(args.vodedge_rev)
    baseline = source_tree(args.baseline) if args.baseline else None
    for key, value in machine_info().items():
        print(f"{key:>8}: {value}")
    sections = []
    for name in BENCHMARKS:
        if name not in chosen:
            continue
        before = wait_for_quiet(args.quiet_wait)
        if before >= 0.2:
            print(f"\nwarning: other processes use {before:.1f} cores; timings will be noisy")
        meter = LoadMeter()
        if name == "extract":
            section = bench_extract(args.runs, args.warmup, baseline)
        elif name == "plan":
            section = bench_plan(args.runs, args.warmup)
        elif name == "flv":
            section = bench_flv(args.runs, args.warmup, baseline)
        elif name == "seek":
            section = seek.bench_seek(args.wrk_seconds, args.connections)
        elif name == "seek-floor":
            section = lean_clip.compare(args.wrk_seconds, args.connections, rounds=2)
        elif name == "edge-hit":
            section = hit.bench_hit(args.hit_seconds, args.connections, args.hit_rounds)
        elif name == "edge-throughput":
            section = edge.bench_throughput(edge_options)
        elif name == "edge-ttfb":
            section = edge.bench_ttfb(edge_options)
        elif name == "cold":
            section = cold.bench_cold(args, edge_options.vodedge_src)
            if edge_options.commit:
                section.commit = edge_options.commit
        else:
            section = edge.bench_slow_clients(edge_options)
        # How to run this benchmark again with the same options.
        options = [a for a in (sys.argv[1:] if argv is None else argv) if a not in BENCHMARKS]
        section.notes.append(
            "run: " + shlex.join([".venv/bin/python", "bench/run.py", name, *options])
        )
        # Others may share the machine; say how busy it was so noisy runs are visible.
        section.notes.append(
            f"other processes kept {meter.other_cores():.2f} of {os.cpu_count()} cores busy "
            "during this benchmark"
        )
        section.print()
        section.save()
        sections.append(section)
    print(f"\nmarkdown: {write_markdown()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
