"""Where a `vodedge serve` worker's time goes under a wrk load (issue 15), with py-spy.

    .venv/bin/python bench/profile_edge.py hit           # GET /small.bin (1 kB HIT)
    .venv/bin/python bench/profile_edge.py clip          # random 10-s clips, 30-minute MP4
    .venv/bin/python bench/profile_edge.py audio-open    # random open-ended audio-only starts
    .venv/bin/python bench/profile_edge.py flv-clip      # the same two on the 30-minute FLV,
    .venv/bin/python bench/profile_edge.py flv-audio-open  # its seeks by time

Prints wrk's figures, the worker's CPU per response and the functions with the
most samples (self and inclusive), and writes py-spy's flame graph next to
`bench/out/`. Needs the `bench` extra (py-spy) and wrk.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import media
import seek
import seek_flv
import servers
from harness import OUT, VENV_BIN

TARGETS = {
    "hit": "/small.bin",
    "clip": "/long.mp4",
    "audio-open": "/long.mp4",
    "flv-clip": "/long.flv",
    "flv-audio-open": "/long.flv",
}


def _name(frame: str, by_function: bool = False) -> str:
    """`function file:line` of one py-spy frame (`function file` by function)."""
    where = frame.rpartition("/")[2].rstrip(")")
    if by_function:
        where = where.partition(":")[0]
    return frame.split(" (")[0] + " " + where


def summary(raw: Path, top: int, by_function: bool = False) -> str:
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
        frames = [_name(frame, by_function) for frame in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    lines = [f"{total} samples", "", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    return "\n".join(lines)


@contextlib.contextmanager
def _server(workload: str) -> Iterator[servers.Server]:
    """vodedge serving the 30-minute MP4, or the FLV with its seeks by time."""
    if not workload.startswith("flv-"):
        with seek.both_servers({"long.mp4": media.ensure(media.MP4_LONG)}) as (_, vd, _root):
            assert vd is not None, "vodedge serve is not available"
            yield vd
        return
    with servers.docroot({"long.flv": media.ensure(media.FLV_LONG)}) as root:
        (root / "small.bin").write_bytes(os.urandom(1000))
        config = root.parent / f"{root.name}-flv-seek.toml"
        config.write_text(seek_flv.CONFIG.format(origin=json.dumps(str(root))))
        try:
            with servers.vodedge_server(root, "/small.bin", config=config) as vd:
                servers.warm(vd.base + "/long.flv", want_hit=True)
                yield vd
        finally:
            config.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    """Run the profile."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=sorted(TARGETS))
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument(
        "--gil",
        action="store_true",
        help="only samples holding the GIL: Python's own work, without the system calls "
        "(sendfile, send) that release it; on a busy machine wall-clock samples of those "
        "calls include the time the worker waits for a core",
    )
    parser.add_argument(
        "--by-function", action="store_true", help="add up a function's lines in the summary"
    )
    args = parser.parse_args(argv)
    script = seek.SCRIPTS.get(args.workload.removeprefix("flv-"))
    OUT.mkdir(parents=True, exist_ok=True)
    raw = OUT / f"profile-{args.workload}.txt"
    with _server(args.workload) as vd:
        url = vd.base + TARGETS[args.workload]
        servers.wrk(url, seconds=1, connections=args.connections, script=script, timeout=30, seed=1)
        worker = max(vd.pids())  # the worker is forked after the master
        argv = [
            str(VENV_BIN / "py-spy"), "record", "--pid", str(worker), "--rate", str(args.rate),
            "--duration", str(args.seconds), "--format", "raw", "--output", str(raw),
            "--nonblocking", *(["--gil"] if args.gil else []),
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
    print(summary(raw, args.top, args.by_function))
    return 0


if __name__ == "__main__":
    sys.exit(main())
