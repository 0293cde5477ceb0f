"""Two vodedge source trees side by side: random 10-s clips and a 1 kB HIT (issue 15).

    .venv/bin/python bench/ab.py --before main --after src     # a commit, or a tree
    .venv/bin/python bench/ab.py --before HEAD~1 --rounds 5 --seconds 4 clip hit

One worker each on the same docroot, `wrk -t1 -c8` in interleaved rounds (the order
alternates), medians of requests/s and of the worker's CPU per response: on a shared
machine CPU per response is the steadier figure, and interleaving exposes both trees
to the same load. Prints how many cores other processes kept busy.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path

import media
import seek
import servers
from harness import REPO, LoadMeter
from run import build_of, source_tree
from servers import Server

WORKLOADS = {"clip": ("/long.mp4", seek.SCRIPTS["clip"]), "hit": ("/small.bin", None)}


def tree(spec: str) -> Path:
    """A source tree: a directory holding the `vodedge` package, or a commit's src/."""
    path = Path(spec)
    if (path / "vodedge").is_dir():
        return path.resolve()
    return source_tree(spec)[0]


@contextlib.contextmanager
def server(root: Path, src: Path) -> Iterator[Server]:
    """vodedge of `src` serving `root`, its objects warm."""
    with servers.vodedge_server(root, "/small.bin", src=src) as vd:
        servers.warm(vd.base + "/long.mp4", want_hit=True)
        servers.warm(vd.base + "/small.bin", want_hit=True)
        yield vd


def one_run(vd: Server, workload: str, seconds: int, connections: int) -> tuple[float, float]:
    """requests/s and the worker's CPU µs per response of one wrk run."""
    path, script = WORKLOADS[workload]
    worker = max(vd.pids())
    before = servers.cpu_seconds([worker])
    result = servers.wrk(
        vd.base + path,
        seconds=seconds,
        connections=connections,
        script=script,
        timeout=30,
        seed=seek.SEED if script else None,
    )
    if result.errors:
        print(f"  errors: {result.errors}")
    used = servers.cpu_seconds([worker]) - before
    return result.requests_per_s, 1e6 * used / max(result.requests, 1)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workloads", nargs="*", default=["clip", "hit"])
    parser.add_argument("--before", default="main", help="commit or source tree")
    parser.add_argument("--after", default=str(REPO / "src"), help="commit or source tree")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args(argv)
    trees = {"before": tree(args.before), "after": tree(args.after)}
    meter = LoadMeter()
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with servers.docroot({"long.mp4": media.ensure(media.MP4_LONG)}) as root:
        (root / "small.bin").write_bytes(b"x" * 1000)
        with contextlib.ExitStack() as stack:
            running = {name: stack.enter_context(server(root, src)) for name, src in trees.items()}
            for workload in args.workloads:
                for vd in running.values():  # warm-up, another seed
                    servers.wrk(
                        vd.base + WORKLOADS[workload][0],
                        seconds=1,
                        connections=args.connections,
                        script=WORKLOADS[workload][1],
                        seed=seek.SEED + 9,
                        timeout=30,
                    )
                for at in range(args.rounds):
                    order = list(running) if at % 2 == 0 else list(reversed(running))
                    for name in order:
                        run = one_run(running[name], workload, args.seconds, args.connections)
                        figures.setdefault((workload, name), []).append(run)
    for name, src in trees.items():
        print(f"{name}: {src} ({build_of(src)})")
    for workload in args.workloads:
        rps = {n: statistics.median(r for r, _ in figures[(workload, n)]) for n in trees}
        cpu = {n: statistics.median(c for _, c in figures[(workload, n)]) for n in trees}
        for name in trees:
            runs = ", ".join(f"{c:.0f}" for _, c in figures[(workload, name)])
            print(
                f"{workload:5} {name:6} {rps[name]:9,.1f} req/s  CPU {cpu[name]:6.1f} µs/response"
                f"  (rounds: {runs})"
            )
        print(
            f"{workload:5} after/before: req/s {rps['after'] / rps['before']:.3f}, "
            f"CPU per response {cpu['after'] / cpu['before']:.3f}"
        )
    print(f"other processes kept {meter.other_cores():.2f} cores busy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
