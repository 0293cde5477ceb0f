"""Where vodedge's extraction time goes: start-up, imports, plan building, copying."""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyinstrument import Profiler

import media
from harness import SCRATCH, VENV_BIN, bench_env, fmt_seconds

PYTHON = str(VENV_BIN / "python")
VODEDGE = str(VENV_BIN / "vodedge")
# What the `extract` command imports beyond the console script's own start-up.
CLI_IMPORTS = "import vodedge.cli.parser, vodedge.cli.commands, vodedge.media.mp4.audio"


def median_wall(argv: list[str], runs: int = 11) -> float:
    """Median wall seconds of a subprocess (after one untimed run to warm caches)."""
    env = bench_env()
    subprocess.run(argv, env=env, capture_output=True, check=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def median_call(
    func: Callable[[], object], runs: int = 15, before: Callable[[], object] | None = None
) -> float:
    """Median wall seconds of an in-process call (after one untimed call); `before` is untimed."""
    if before:
        before()
    func()
    samples = []
    for _ in range(runs):
        if before:
            before()
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def startup(source: Path) -> None:
    """Whole-process layers: interpreter, console script + argparse, our imports, the work."""
    print("== start-up and whole process (median of 11, bytecode cached)")
    out = SCRATCH / "profile.vodedge.mp4"
    layers = [
        ("python -c pass", [PYTHON, "-c", "pass"]),
        ("python -c 'import argparse'", [PYTHON, "-c", "import argparse"]),
        ("vodedge --version", [VODEDGE, "--version"]),
        ("python -c '<extract imports>'", [PYTHON, "-c", CLI_IMPORTS]),
        ("vodedge extract (720p)", [VODEDGE, "extract", str(source), "-o", str(out)]),
    ]
    previous = 0.0
    for label, argv in layers:
        wall = median_wall(argv)
        print(f"   {label:<32} {fmt_seconds(wall):>9}   (+{fmt_seconds(max(wall - previous, 0))})")
        previous = wall
    # -X importtime: which of our modules (and what they pull in) cost the most.
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", CLI_IMPORTS],
        env=bench_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    entries = []
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if match:
            entries.append((int(match.group(1)), int(match.group(2)), match.group(4)))
    print("   imports by self time (-X importtime, µs; cumulative in brackets):")
    for self_us, cumulative_us, name in sorted(entries, reverse=True)[:12]:
        print(f"     {self_us:>6}  [{cumulative_us:>6}]  {name}")


def profile(label: str, func: Callable[[], object], repeat: int, lines: int) -> None:
    """pyinstrument over `repeat` warm calls: the call tree and the flat self-time list."""
    func()  # imports and first-touch costs stay out of the profile
    profiler = Profiler(interval=0.0001)
    profiler.start()
    for _ in range(repeat):
        func()
    profiler.stop()
    print(f"\n== pyinstrument: {label}, {repeat} warm calls (times are totals)")
    tree = profiler.output_text(unicode=True, color=False, short_mode=True)
    print("\n".join(tree.splitlines()[:lines]))
    flat = profiler.output_text(unicode=True, color=False, flat=True)
    print("   -- by self time:")
    # Skip pyinstrument's banner and its per-file "[self]" aggregates, which
    # double-count time already listed under the functions themselves.
    entries = [line for line in flat.splitlines() if re.match(r"\d+\.\d+ (?!\[self\])", line)]
    print("\n".join("   " + line for line in entries[:20]))


def per_request_vs_per_byte(source: Path, out: Path) -> None:
    """Split extraction into the per-request part (plan) and the per-byte/per-span copy."""
    from vodedge.cli.files import LocalSource, write_plan
    from vodedge.media.mp4.audio import audio_plan
    from vodedge.media.plan import Span

    print("\n== per-request vs per-byte costs (median of 15, in-process)")
    with LocalSource(str(source)) as src:
        plan = src.parse(audio_plan(src.size))
        spans = [piece for piece in plan.pieces if isinstance(piece, Span)]
        span_bytes = sum(span.length for span in spans)
        plan_time = median_call(lambda: src.parse(audio_plan(src.size)))

        def write_all() -> None:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                write_plan(plan, src, fd)
            finally:
                os.close(fd)

        def copy_once() -> None:
            # The same number of bytes in one kernel copy: the pure per-byte cost.
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                offset, left = spans[0].offset, span_bytes
                while left:
                    n = os.copy_file_range(src.fd, fd, left, offset)
                    offset, left = offset + n, left - n
            finally:
                os.close(fd)

        # A fresh output each time: truncating the last one would be timed too.
        def fresh() -> None:
            out.unlink(missing_ok=True)

        write_time = median_call(write_all, before=fresh)
        copy_time = median_call(copy_once, before=fresh)
    _, moov = media.moov_location(source)
    per_span = (write_time - copy_time) / max(len(spans), 1)
    print(f"   plan build (per request)   {fmt_seconds(plan_time):>9}  moov {moov / 1e3:.0f} kB "
          f"-> {plan_time / (moov / 1e3) * 1e6:.1f} µs per moov kB")  # fmt: skip
    average = span_bytes / max(len(spans), 1)
    print(f"   write plan ({len(spans)} spans)  {fmt_seconds(write_time):>9}  "
          f"{span_bytes / 1e6:.2f} MB, average span {average:.0f} B")  # fmt: skip
    print(f"   one copy of the same bytes {fmt_seconds(copy_time):>9}  "
          f"-> {span_bytes / copy_time / 1e9:.2f} GB/s per byte")  # fmt: skip
    print(f"   per-span overhead          {fmt_seconds(per_span):>9}  "
          f"(write plan - one copy) / spans")  # fmt: skip


def copy_strategies(source: Path, out: Path) -> None:
    """Ways to write a plan's many small spans, timed on the same plan (suggestions)."""
    import mmap

    from vodedge.cli.files import LocalSource
    from vodedge.media.mp4.audio import audio_plan
    from vodedge.media.plan import Span

    with LocalSource(str(source)) as src:
        plan = src.parse(audio_plan(src.size))
        spans = [(p.offset, p.length) for p in plan.pieces if isinstance(p, Span)]
        fd_in = src.fd
        iov_max = os.sysconf("SC_IOV_MAX")

        def into(write: Callable[[int], None]) -> Callable[[], None]:
            def run() -> None:
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                try:
                    write(fd)
                finally:
                    os.close(fd)

            return run

        def copy_file_range(fd: int) -> None:
            for offset, length in spans:
                while length:
                    n = os.copy_file_range(fd_in, fd, length, offset)
                    offset, length = offset + n, length - n

        def sendfile(fd: int) -> None:
            for offset, length in spans:
                while length:
                    n = os.sendfile(fd, fd_in, offset, length)
                    offset, length = offset + n, length - n

        def pread_join(fd: int) -> None:
            data = b"".join([os.pread(fd_in, length, offset) for offset, length in spans])
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]

        def mmap_writev(fd: int) -> None:
            with mmap.mmap(fd_in, 0, prot=mmap.PROT_READ) as mapped:
                view = memoryview(mapped)
                try:
                    for i in range(0, len(spans), iov_max):
                        batch = [view[o : o + n] for o, n in spans[i : i + iov_max]]
                        want = sum(n for _, n in spans[i : i + iov_max])
                        # Short writes are rare on regular files; finish them slowly.
                        done = os.writev(fd, batch)
                        if done != want:
                            rest = b"".join(bytes(b) for b in batch)[done:]
                            while rest:
                                rest = rest[os.write(fd, rest) :]
                        del batch
                finally:
                    view.release()

        strategies = [
            ("copy_file_range per span (CLI today)", copy_file_range),
            ("sendfile per span (edge, uncached)", sendfile),
            ("pread per span + one write", pread_join),
            (f"mmap + writev, {iov_max} spans per call", mmap_writev),
        ]
        print(f"\n== writing {len(spans)} spans of {source.name} (median of 15, fresh output)")
        for label, write in strategies:
            wall = median_call(into(write), before=lambda: out.unlink(missing_ok=True))
            print(f"   {label:<42} {fmt_seconds(wall):>9}")


def profile_flv(repeat: int, lines: int) -> None:
    """pyinstrument over the FLV streaming filter and the FLV plan (issue 3)."""
    from vodedge.media.flv.filters import FlvAudioFilter
    from vodedge.media.flv.plan import flv_audio_plan
    from vodedge.media.reading import run

    source = media.ensure(media.FLV_720P)
    size = source.stat().st_size

    def stream() -> None:
        flt = FlvAudioFilter()
        with source.open("rb", buffering=0) as file:
            while chunk := file.read(64 << 10):
                flt.feed(chunk)
        flt.close()

    def plan() -> None:
        with source.open("rb") as file:
            fd = file.fileno()
            run(flv_audio_plan(size), lambda offset, length: os.pread(fd, length, offset))

    profile(f"FlvAudioFilter over {source.name}, 64 KiB feeds", stream, repeat, lines)
    profile(f"flv_audio_plan of {source.name}", plan, repeat, lines)


def main(argv: list[str] | None = None) -> int:
    """Profile the in-process extraction of the 720p MP4 and the 30-minute plan build."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20, help="calls per profile")
    parser.add_argument("--lines", type=int, default=45, help="lines of each profile shown")
    parser.add_argument("--flv", action="store_true", help="also profile the FLV paths")
    args = parser.parse_args(argv)

    from vodedge.cli import main as cli_main
    from vodedge.cli.files import LocalSource
    from vodedge.media.mp4.audio import audio_plan

    short = media.ensure(media.MP4_720P)
    long_head = media.ensure(media.MP4_LONG)
    long_tail = media.ensure(media.MP4_LONG_TAIL)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    out = SCRATCH / "profile.inprocess.mp4"

    startup(short)

    def extract_short() -> None:
        # The CLI's own code path, minus interpreter start-up and imports.
        if cli_main(["extract", str(short), "-o", str(out)]) != 0:
            raise RuntimeError("vodedge extract failed")

    profile(f"vodedge extract {short.name} (in-process)", extract_short, args.repeat, args.lines)
    for path in (long_head, long_tail):
        with LocalSource(str(path)) as src:
            where, _ = media.moov_location(path)

            def build(src: LocalSource = src) -> object:
                return src.parse(audio_plan(src.size))

            profile(f"audio_plan of {path.name} (moov at {where})", build, args.repeat, args.lines)
    if args.flv:
        profile_flv(args.repeat, args.lines)
    per_request_vs_per_byte(short, out)
    per_request_vs_per_byte(long_head, out)
    copy_strategies(short, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
