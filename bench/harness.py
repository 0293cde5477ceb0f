"""Timing loops, statistics, tables and the results file shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
# Outputs go to the same disk as the inputs, so neither tool gets a faster target.
SCRATCH = REPO / ".cache" / "bench-out"
VENV_BIN = REPO / ".venv" / "bin"
# Where contenders' bytecode is cached (see bench_env).
PYCACHE = REPO / ".cache" / "bench-pycache"


def bench_env() -> dict[str, str]:
    """The environment for timed subprocesses: bytecode caching on, as on a user's install.

    Some environments (CI, this sandbox) set PYTHONDONTWRITEBYTECODE, which makes
    every `vodedge` run recompile its modules; users' installs have .pyc files.
    The cache goes under .cache so the source tree stays clean.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


@dataclass(frozen=True)
class Command:
    """One contender: a label, its argv, and the files it writes (removed before each run)."""

    label: str
    argv: list[str]
    outputs: tuple[Path, ...] = ()
    # Set in its environment (e.g. PYTHONPATH to time another commit's src/ with this venv).
    env: tuple[tuple[str, str], ...] = ()

    @property
    def shell(self) -> str:
        """The argv as one copy-pasteable line, paths relative to the repo."""
        return " ".join(shlex.quote(_relative(arg)) for arg in self.argv)


def _relative(arg: str) -> str:
    """Shorten absolute repo paths so the printed commands stay readable."""
    root = str(REPO) + os.sep
    return arg.replace(root, "") if root in arg else arg


@dataclass
class Stats:
    """Wall-clock samples (seconds) of one contender and the CPU it used."""

    wall: list[float]
    cpu: list[float] = field(default_factory=list)
    discarded: int = 0  # rounds thrown away because other processes were busy

    @property
    def median(self) -> float:
        """Median wall time."""
        return statistics.median(self.wall)

    @property
    def best(self) -> float:
        """Fastest run."""
        return min(self.wall)

    @property
    def spread(self) -> float:
        """Inter-quartile range, to show how noisy the median is."""
        if len(self.wall) < 4:
            return max(self.wall) - min(self.wall)
        q = statistics.quantiles(self.wall, n=4)
        return q[2] - q[0]

    @property
    def cpu_median(self) -> float | None:
        """Median user+system CPU time, when measured."""
        return statistics.median(self.cpu) if self.cpu else None


# Cores other processes may use during a timed round before it is repeated.
MAX_OTHER_LOAD = 0.3


class RunFailed(RuntimeError):
    """A contender exited non-zero; the message is its last stderr line."""


def run_once(command: Command) -> tuple[float, float]:
    """Wall and child CPU seconds of one run of `command`."""
    for path in command.outputs:
        path.unlink(missing_ok=True)
    env = bench_env()
    env.update(command.env)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        raise RunFailed(f"exit {done.returncode}: {lines[-1] if lines else '(no stderr)'}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def compare(commands: Sequence[Command], runs: int, warmup: int) -> dict[str, Stats | str]:
    """Run the commands interleaved (ABBA order) and return each one's stats or failure."""
    results: dict[str, Stats | str] = {}
    alive = list(commands)
    for command in list(alive):
        try:
            for _ in range(warmup):
                run_once(command)
        except RunFailed as exc:
            results[command.label] = f"failed: {exc}"
            alive.remove(command)
    stats = {command.label: Stats([]) for command in alive}
    budget = runs * 3
    kept = attempts = discarded = 0
    while kept < runs and attempts < budget:
        # Alternate the order each round so neither tool always runs right
        # after the other (page cache, CPU frequency, writeback all drift).
        order = alive if attempts % 2 == 0 else list(reversed(alive))
        meter = LoadMeter()
        samples: dict[str, tuple[float, float]] = {}
        for command in order:
            if command.label in results:
                continue
            try:
                samples[command.label] = run_once(command)
            except RunFailed as exc:
                results[command.label] = f"failed: {exc}"
        attempts += 1
        # Others share this machine: a round during which they kept a good
        # part of a core busy is repeated, while the attempt budget allows.
        must_keep = budget - attempts < runs - kept
        if meter.other_cores() > MAX_OTHER_LOAD and not must_keep:
            discarded += 1
            progress(f"  round discarded (machine busy), {kept}/{runs} kept")
            continue
        for label, (wall, cpu) in samples.items():
            stats[label].wall.append(wall)
            stats[label].cpu.append(cpu)
        kept += 1
        progress(f"  round {kept}/{runs}")
    progress("")
    for label, stat in stats.items():
        stat.discarded = discarded
        results.setdefault(label, stat)
    return {c.label: results[c.label] for c in commands}


def time_in_process(func: Callable[[], object], runs: int, warmup: int) -> Stats:
    """Wall and CPU seconds of calling `func` repeatedly in this process."""
    for _ in range(warmup):
        func()
    stats = Stats([])
    for _ in range(runs):
        cpu0 = time.process_time()
        start = time.perf_counter()
        func()
        stats.wall.append(time.perf_counter() - start)
        stats.cpu.append(time.process_time() - cpu0)
    return stats


def _busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(v) for v in fields]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    # guest time is already counted in user; the first 8 fields are the rest.
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    """CPU seconds used by this process and its reaped children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


class LoadMeter:
    """How many cores other processes kept busy while a benchmark ran (noise indicator)."""

    def __init__(self) -> None:
        self._wall = time.monotonic()
        self._busy = _busy_seconds()
        self._own = _own_cpu()

    def other_cores(self) -> float:
        """Average cores used by everything but this benchmark since construction."""
        wall = time.monotonic() - self._wall
        busy = _busy_seconds() - self._busy
        own = _own_cpu() - self._own
        return max(0.0, (busy - own) / wall) if wall > 0 else 0.0


def wait_for_quiet(max_wait: float, threshold: float = 0.2) -> float:
    """Wait (up to `max_wait` s) until other processes use under `threshold` cores; return it."""
    deadline = time.monotonic() + max_wait
    while True:
        meter = LoadMeter()
        time.sleep(1.0)
        load = meter.other_cores()
        if load < threshold or time.monotonic() >= deadline:
            progress("")
            return load
        progress(f"  waiting for a quiet machine: other processes use {load:.1f} cores")


def progress(text: str) -> None:
    """A transient status line on a terminal (nothing in logs)."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\033[K" + text)
        sys.stderr.flush()


def fmt_seconds(seconds: float) -> str:
    """Seconds in the unit that keeps three significant digits readable."""
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


@dataclass
class Row:
    """One line of a benchmark's table and of the README snippet."""

    tool: str
    median: str
    ratio: str = ""
    command: str = ""
    detail: str = ""


@dataclass
class Section:
    """One benchmark's results."""

    key: str
    title: str
    inputs: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    # The code measured: sections run separately may measure different commits.
    commit: str = field(default_factory=lambda: machine_info()["vodedge"])

    def print(self) -> None:
        """A readable table on stdout."""
        print(f"\n== {self.title}  (vodedge {self.commit})")
        for line in self.inputs:
            print(f"   input: {line}")
        headers = ("tool", "median", "ratio", "detail")
        cells = [(r.tool, r.median, r.ratio, r.detail) for r in self.rows]
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
        print("   " + line.rstrip())
        print("   " + "  ".join("-" * w for w in widths))
        for c in cells:
            print("   " + "  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        for row in self.rows:
            if row.command:
                print(f"   $ {row.command}")
        for note in self.notes:
            print(f"   note: {note}")

    def save(self) -> None:
        """Keep this section as JSON so benchmarks run alone still build one results.md."""
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / f"{self.key}.json").write_text(json.dumps(asdict(self), indent=2) + "\n")


SECTION_ORDER = (
    "extract",
    "plan",
    "flv",
    "seek",
    "edge-throughput",
    "edge-ttfb",
    "edge-slow-clients",
    "cold",
)


def _section_rank(key: str) -> tuple[int, str]:
    """Known sections in their order, a labelled run (`edge-ttfb-before`) after its own."""
    owners = [known for known in SECTION_ORDER if key == known or key.startswith(known + "-")]
    if not owners:
        return len(SECTION_ORDER), key
    # The longest name wins, should one known name ever prefix another.
    return SECTION_ORDER.index(max(owners, key=len)), key


def write_markdown() -> Path:
    """Render every saved section, plus machine info, into bench/out/results.md."""
    parts = ["## Benchmarks", ""]
    info = machine_info()
    parts.append(
        "Machine: "
        + "; ".join(f"{k}: {v}" for k, v in info.items())
        + ". Medians of interleaved runs, warm page cache; ratio is vodedge / the other tool "
        "(below 1 is faster) unless the row says otherwise."
    )
    parts.append("")
    saved = {p.stem: p for p in OUT.glob("*.json")}
    for key in sorted(saved, key=_section_rank):
        section = Section(**json.loads(saved[key].read_text()))
        section.rows = [Row(**r) if isinstance(r, dict) else r for r in section.rows]
        parts.append(f"### {section.title}")
        parts.append("")
        parts += [f"Input: {line}  " for line in section.inputs]
        parts.append(f"vodedge: {section.commit}")
        parts.append("")
        parts.append("| tool | median | ratio | detail | command |")
        parts.append("|---|---:|---:|---|---|")
        for row in section.rows:
            command = f"`{row.command}`" if row.command else ""
            detail = row.detail.replace("|", "\\|")
            parts.append(f"| {row.tool} | {row.median} | {row.ratio} | {detail} | {command} |")
        parts.append("")
        parts += [f"- {note}" for note in section.notes]
        if section.notes:
            parts.append("")
    target = OUT / "results.md"
    target.write_text("\n".join(parts))
    return target


def _first_line(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def machine_info() -> dict[str, str]:
    """nproc, CPU model, kernel, Python, ffmpeg, nginx and the vodedge commit."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    # The package is installed editable: the working tree is what runs.
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if dirty:
        commit += f" + {len(dirty.splitlines())} uncommitted file(s) in src/"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU": cpu,
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "ffmpeg": _first_line(["ffmpeg", "-version"]).split(" Copyright")[0],
        "nginx": _first_line(["nginx", "-v"]),
        "vodedge": commit,
    }
