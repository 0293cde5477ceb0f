"""Where a `vodedge serve` worker's time goes under a wrk load (issue 15), with py-spy.

    .venv/bin/python bench/profile_edge.py hit           # GET /small.bin (1 kB HIT)
    .venv/bin/python bench/profile_edge.py clip          # random 10-s clips, 30-minute MP4
    .venv/bin/python bench/profile_edge.py audio-open    # random open-ended audio-only starts

Prints wrk's figures, the worker's CPU per response and the functions with the
most samples (self and inclusive), and writes py-spy's flame graph next to
`bench/out/`. Needs the `bench` extra (py-spy) and wrk.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
from pathlib import Path

import media
import seek
import servers
from harness import OUT, VENV_BIN

TARGETS = {"hit": "/small.bin", "clip": "/long.mp4", "audio-open": "/long.mp4"}


def _name(frame: str) -> str:
    """`function file:line` of one py-spy frame."""
    return frame.split(" (")[0] + " " + frame.rpartition("/")[2].rstrip(")")


def summary(raw: Path, top: int) -> str:
    """The `top` functions by self and by inclusive samples, from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_name(frame) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args(argv)
    head = media.ensure(media.MP4_LONG)
    script = seek.SCRIPTS.get(args.workload)
    OUT.mkdir(parents=True, exist_ok=True)
    raw = OUT / f"profile-{args.workload}.txt"
    with seek.both_servers({"long.mp4": head}) as (_nginx, vd, _root):
        assert vd is not None, "vodedge serve is not available"
        url = vd.base + TARGETS[args.workload]
        servers.wrk(url, seconds=1, connections=args.connections, script=script, timeout=30, seed=1)
        worker = max(vd.pids())  # the worker is forked after the master
        argv = [
            str(VENV_BIN / "py-spy"), "record", "--pid", str(worker), "--rate", str(args.rate),
            "--duration", str(args.seconds), "--format", "raw", "--output", str(raw),
            "--nonblocking",
        ]  # fmt: skip
        spy = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        before = servers.cpu_seconds([worker])
        result = servers.wrk(
            url,
            seconds=args.seconds,
            connections=args.connections,
            script=script,
            timeout=30,
            seed=seek.SEED,
        )
        used = servers.cpu_seconds([worker]) - before
        spy.wait(timeout=args.seconds + 30)
    print(result.command)
    print(
        f"{result.requests_per_s:,.1f} req/s, p50 {result.p50}, p99 {result.p99}, "
        f"worker CPU {1e6 * used / max(result.requests, 1):.0f} µs per response "
        f"{result.errors}"
    )
    print(summary(raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
