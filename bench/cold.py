"""A cold cache behind a slow origin (issue 13): what the origin sends, and how soon the
client has its bytes, when vodedge starts with an empty cache.

The origin is Debian's nginx serving the media as static files behind `shaper.py`, which
caps the origin link at `--rate-mbit` (100 Mbit/s) for all connections together and counts
what crosses it. Each case starts `vodedge serve --origin <the link>` with a fresh cache,
makes one request, measures the time to the first and last byte, then waits until the
origin link has been idle for `--idle` seconds (or `--settle` seconds have passed), so the
origin bytes include what the request set going after its last byte (a whole-object fill
that outlives the response). Origin bytes are nginx's `$body_bytes_sent` summed over the
requests the case made (the shaper's count, headers included, is in the detail). Nothing
here knows how the edge fetches: only the origin's log and the link see it.

`python bench/cold.py` (or `bench/run.py cold`); `--cases` picks some.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path

import media
import seek_flv
from harness import REPO, SCRATCH, VENV_BIN, LoadMeter, Row, Section, machine_info
from servers import docroot, nginx_has_mp4, nginx_server, vodedge_server

BENCH = Path(__file__).resolve().parent
BIG_SIZE = 1 << 30
BIG_OFFSET = 768 << 20  # where the plain Range case starts reading
BIG_READ = 4 << 20  # and how much of it the client reads before hanging up
TARGET_AUDIO_BYTES = 1.3  # origin bytes / response size
TARGET_AUDIO_TIME = 0.15  # time to last byte / the whole fill's
TARGET_CLIP = 1.5  # (origin bytes - moov) / response size
CLIP = "start=600&end=610"
READY = "/cold-bench-ready"  # not in the docroot
CASE_KEYS = ("whole-head", "whole-tail", "whole-30min", "whole-flv", "audio-head", "audio-tail",
             "audio-30min", "audio-flv", "clip-30min", "range-1gib", "whole-flv30", "audio-flv30",
             "bytes-flv30", "time-flv30", "time-open-flv30")  # fmt: skip
# FLV seeks on the 30-minute FLV (keyframes index in its onMetaData): a byte offset (the
# keyframe the index names nearest this time), a 10-s clip and an open-ended start by time.
FLV_SEEK_AT = 900.0
FLV_CLIP = "start=600&end=610"
FLV_BY_TIME = seek_flv.CONFIG  # every domain: FLV seeks by time, audio-only


@dataclass
class Case:
    """One cold request."""

    key: str
    label: str
    target: str  # path and query
    file: str  # the docroot name it reads
    headers: dict[str, str] = field(default_factory=dict)
    read_limit: int | None = None  # hang up after this many body bytes
    # "file", "extract", "warm" (the same request again, cached), "range", "flv" (the
    # plan of `flv` from the whole file's tag index)
    expect: str = "file"
    config: str | None = None  # domains (a template of {origin}) instead of zero-config
    flv: tuple[float | int | None, float | int | None, bool, bool] | None = None


@dataclass
class Result:
    """What one case measured."""

    case: Case
    status: int = 0
    size: int = 0  # body bytes the client read
    ttfb: float = 0.0
    ttlb: float = 0.0
    link_at_end: int = 0  # bytes down the link by the client's last byte
    link: int = 0  # bytes down the link once it settled
    settled: bool = True
    origin_body: int = 0  # nginx's $body_bytes_sent over the case's requests
    origin_requests: list[str] = field(default_factory=list)  # "status range"
    correct: str = ""
    error: str = ""


# -- processes ---------------------------------------------------------------------------------


NGINX_ORIGIN_CONF = """\
{user}daemon off;
master_process on;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    # Per request: when it ended, how long it took, what was asked and what was sent.
    log_format cold
        '$msec\\t$request_time\\t$request_uri\\t$http_range\\t$status\\t$body_bytes_sent';
    access_log {work}/access.log cold;
    sendfile on;
    keepalive_requests 100000;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    types {{ video/mp4 mp4; video/x-flv flv; }}
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
"""


@dataclass
class Origin:
    """nginx (plain static files) and the shaped link in front of it."""

    url: str  # the link's URL: what vodedge is given
    direct: str  # nginx itself
    stats_url: str
    access_log: Path

    def stats(self) -> dict[str, float]:
        """The link's counters."""
        with urllib.request.urlopen(self.stats_url, timeout=10) as reply:
            stats: dict[str, float] = json.loads(reply.read())
            return stats

    def log_lines(self) -> list[list[str]]:
        """nginx's access log so far, split into fields."""
        if not self.access_log.exists():
            return []
        return [line.split("\t") for line in self.access_log.read_text().splitlines()]


def _read_port_line(proc: subprocess.Popen[str], timeout: float = 15.0) -> list[int]:
    """The numbers of the `PORT ...` line a child prints when it listens."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("PORT "):
            return [int(p) for p in line.split()[1:]]
        if not line and proc.poll() is not None:
            break
    raise RuntimeError("the shaper did not start")


@contextlib.contextmanager
def shaped_origin(root: Path, rate_mbit: float, rtt_ms: float) -> Iterator[Origin]:
    """nginx serving `root` on loopback, behind the shaper."""
    from servers import _wait_http, free_port, stop

    with tempfile.TemporaryDirectory(prefix="vodedge-bench-cold-origin-") as tmp:
        work = Path(tmp)
        port = free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = work / "nginx.conf"
        conf.write_text(NGINX_ORIGIN_CONF.format(user=user, work=work, port=port, root=root))
        nginx = subprocess.Popen(
            ["nginx", "-p", str(work), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        shaper = subprocess.Popen(
            [sys.executable, str(BENCH / "shaper.py"), "--upstream", f"127.0.0.1:{port}",
             "--rate-mbit", str(rate_mbit), "--rtt-ms", str(rtt_ms)],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            _wait_http(f"http://127.0.0.1:{port}/", nginx)
            link, stats = _read_port_line(shaper)
            yield Origin(
                f"http://127.0.0.1:{link}",
                f"http://127.0.0.1:{port}",
                f"http://127.0.0.1:{stats}/",
                work / "access.log",
            )
        finally:
            stop(shaper)  # type: ignore[arg-type]  # text mode changes nothing here
            if shaper.stdout is not None:
                shaper.stdout.close()
            stop(nginx)


# -- inputs and expected bodies -----------------------------------------------------------------


def big_object() -> Path:
    """A sparse 1 GiB file with distinct bytes where the Range case reads (made once)."""
    path = media.CACHE / "big-1GiB.bin"
    if path.exists() and path.stat().st_size == BIG_SIZE:
        return path
    media.CACHE.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    with part.open("wb") as out:
        out.truncate(BIG_SIZE)
        for offset in (0, BIG_OFFSET, BIG_SIZE - (1 << 20)):
            out.seek(offset)
            out.write(hashlib.shake_256(str(offset).encode()).digest(1 << 20))
    os.replace(part, path)
    return path


def sha256_file(path: Path, start: int = 0, length: int | None = None) -> str:
    """The SHA-256 of `length` bytes of a file from `start` (to its end by default)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        file.seek(start)
        left = path.stat().st_size - start if length is None else length
        while left > 0 and (chunk := file.read(min(left, 1 << 20))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def extract_digest(source: Path) -> str:
    """The SHA-256 of `vodedge extract`'s audio-only output of a local file."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    out = SCRATCH / f"cold-extract-{source.name}"
    subprocess.run(
        [str(VENV_BIN / "vodedge"), "extract", str(source), "-o", str(out)],
        check=True,
        capture_output=True,
    )
    try:
        return sha256_file(out)
    finally:
        out.unlink(missing_ok=True)


# -- one request -------------------------------------------------------------------------------


def timed_get(
    base: str, target: str, headers: dict[str, str], limit: int | None, timeout: float
) -> tuple[int, int, float, float, str]:
    """GET on a fresh connection: status, body bytes, time to first and last byte, SHA-256."""
    host, port = base.split("//", 1)[1].rsplit(":", 1)
    started = time.perf_counter()
    connection = HTTPConnection(host, int(port), timeout=timeout)
    try:
        connection.request("GET", target, headers=headers)
        response = connection.getresponse()
        digest = hashlib.sha256()
        first = response.read(1)
        ttfb = time.perf_counter() - started
        digest.update(first)
        size = len(first)
        while limit is None or size < limit:
            chunk = response.read(1 << 20 if limit is None else min(1 << 20, limit - size))
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
        return response.status, size, ttfb, time.perf_counter() - started, digest.hexdigest()
    finally:
        connection.close()


def wait_idle(origin: Origin, idle: float, settle: float) -> bool:
    """Wait until nothing went down the link for `idle` s; False after `settle` s."""
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        if origin.stats()["idle"] >= idle:
            return True
        time.sleep(0.2)
    return False


def run_case(
    case: Case,
    origin: Origin,
    root: Path,
    expected: dict[str, str],
    options: argparse.Namespace,
    src: Path | None,
) -> Result:
    """One cold request against a fresh vodedge; see the module's docstring."""
    result = Result(case)
    config = None
    if case.config is not None:
        config = SCRATCH / f"cold-{case.key}.toml"
        SCRATCH.mkdir(parents=True, exist_ok=True)
        config.write_text(case.config.format(origin=json.dumps(origin.url)))
    with vodedge_server(origin.url, "/", src=src, config=config) as edge:
        # The master listens before its worker runs: one request that the origin answers
        # 404 makes sure the worker serves (and has met the origin) before the clock starts.
        ready = timed_get(edge.base, READY, {}, None, options.timeout)[0]
        if ready != 404:
            result.error = f"{READY} answered {ready}, not 404"
        before = origin.stats()["down"]
        began = time.time()
        try:
            status, size, ttfb, ttlb, digest = timed_get(
                edge.base, case.target, case.headers, case.read_limit, options.timeout
            )
        except OSError as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            status, size, ttfb, ttlb, digest = 0, 0, 0.0, 0.0, ""
        result.status, result.size, result.ttfb, result.ttlb = status, size, ttfb, ttlb
        result.link_at_end = int(origin.stats()["down"] - before)
        result.settled = wait_idle(origin, options.idle, options.settle)
        result.link = int(origin.stats()["down"] - before)
        checked = time.time()
        want = expected.get(case.key)
        if case.expect == "warm" and not result.error:
            # The same request again, from what the cold one left in the cache.
            want = timed_get(edge.base, case.target, case.headers, None, options.timeout)[4]
        result.correct = "yes" if want == digest else "NO: differs from the expected bytes"
        if result.error:
            result.correct = "NO: " + result.error
        elif not 200 <= status < 300:
            result.correct = f"NO: status {status}"
    # vodedge stopped: nginx has logged every request of the case, aborted ones too.
    time.sleep(0.3)
    for fields in origin.log_lines():
        if len(fields) < 6 or not fields[0].replace(".", "").isdigit():
            continue
        start = float(fields[0]) - float(fields[1])
        if began - 0.01 <= start < checked and fields[2] != READY:
            result.origin_body += int(fields[5])
            result.origin_requests.append(f"{fields[4]} {fields[3]}")
    return result


# -- the benchmark -----------------------------------------------------------------------------


SOURCES: dict[str, Callable[[], Path]] = {
    "5min.mp4": lambda: media.ensure(media.MP4_720P),
    "5min-tail.mp4": lambda: media.ensure(media.MP4_720P_TAIL),
    "30min.mp4": lambda: media.ensure(media.MP4_LONG),
    "5min.flv": lambda: media.ensure(media.FLV_720P),
    "big.bin": big_object,
    "30min.flv": lambda: media.ensure(media.FLV_LONG),
}


def make_cases(keys: list[str] | None = None) -> tuple[list[Case], dict[str, Path]]:
    """The cases `keys` (all by default), and the files (docroot name to path) they read
    (only those are made)."""
    wanted = set(keys or CASE_KEYS)
    flv30 = any(key.endswith("flv30") for key in wanted)
    at = flv_keyframe(SOURCES["30min.flv"](), FLV_SEEK_AT) if flv30 else 0
    cases = [
        Case("whole-head", "whole object, 5-min 720p, moov at head", "/5min.mp4", "5min.mp4"),
        Case("whole-tail", "whole object, 5-min 720p, moov at tail", "/5min-tail.mp4",
             "5min-tail.mp4"),
        Case("whole-30min", "whole object, 30-min", "/30min.mp4", "30min.mp4"),
        Case("whole-flv", "whole object, 5-min 720p FLV", "/5min.flv", "5min.flv"),
        Case("audio-head", "?ali_audio_only=1, 5-min 720p, moov at head",
             "/5min.mp4?ali_audio_only=1", "5min.mp4", expect="extract"),
        Case("audio-tail", "?ali_audio_only=1, 5-min 720p, moov at tail",
             "/5min-tail.mp4?ali_audio_only=1", "5min-tail.mp4", expect="extract"),
        Case("audio-30min", "?ali_audio_only=1, 30-min", "/30min.mp4?ali_audio_only=1",
             "30min.mp4", expect="extract"),
        Case("audio-flv", "?ali_audio_only=1, 5-min 720p FLV", "/5min.flv?ali_audio_only=1",
             "5min.flv", expect="extract"),
        Case("clip-30min", f"?{CLIP}, 30-min", f"/30min.mp4?{CLIP}", "30min.mp4",
             expect="warm"),
        Case("range-1gib", f"Range: bytes={BIG_OFFSET}- into a 1 GiB object "
             f"(reads {BIG_READ >> 20} MiB)", "/big.bin", "big.bin",
             {"Range": f"bytes={BIG_OFFSET}-"}, read_limit=BIG_READ, expect="range"),
        Case("whole-flv30", "whole object, 30-min FLV (96 MB)", "/30min.flv", "30min.flv"),
        Case("audio-flv30", "?ali_audio_only=1, 30-min FLV", "/30min.flv?ali_audio_only=1",
             "30min.flv", expect="extract"),
        Case("bytes-flv30", f"?start={at} (bytes: the keyframe at {FLV_SEEK_AT:.0f} s), "
             "30-min FLV", f"/30min.flv?start={at}", "30min.flv", expect="flv",
             flv=(at, None, False, False)),
        Case("time-flv30", f"?{FLV_CLIP} (seconds, flv_seek_by_time), 30-min FLV",
             f"/30min.flv?{FLV_CLIP}", "30min.flv", expect="flv", config=FLV_BY_TIME,
             flv=(600.0, 610.0, True, False)),
        Case("time-open-flv30", f"?start={FLV_SEEK_AT:.0f} (seconds), 30-min FLV",
             f"/30min.flv?start={FLV_SEEK_AT:.0f}", "30min.flv", expect="flv",
             config=FLV_BY_TIME, flv=(FLV_SEEK_AT, None, True, False)),
    ]  # fmt: skip
    cases = [case for case in cases if case.key in wanted]
    return cases, {case.file: SOURCES[case.file]() for case in cases}


def flv_keyframe(path: Path, seconds: float) -> int:
    """The file position of the last keyframe at or before `seconds` in the FLV's
    onMetaData keyframes index."""
    from vodedge.media.flv.partial import read_head
    from vodedge.media.reading import run

    with path.open("rb") as file:
        head = run(read_head(path.stat().st_size), lambda o, n: os.pread(file.fileno(), n, o))
    assert head is not None, f"{path.name} has no keyframes index"
    return int(max(p for t, p in head.pairs if t <= seconds))


def flv_digest(path: Path, seek: tuple[float | int | None, float | int | None, bool, bool]) -> str:
    """The SHA-256 of an FLV seek's answer, planned from the whole file's tag index."""
    from vodedge.media.flv.index import read_flv_index
    from vodedge.media.flv.seek import parse_seek
    from vodedge.media.reading import run

    start, end, by_time, audio_only = seek
    data = path.read_bytes()
    index = run(read_flv_index(len(data)), lambda o, n: data[o : o + n])
    assert index is not None
    plan = index.plan(audio_only, parse_seek(start, end, by_time))
    assert plan is not None
    return hashlib.sha256(plan.render(data)).hexdigest()


def expected_digests(cases: list[Case], files: dict[str, Path]) -> dict[str, str]:
    """The SHA-256 each case's body must have (the `warm` ones are checked in place)."""
    out = {}
    for case in cases:
        path = files[case.file]
        if case.expect == "file":
            out[case.key] = sha256_file(path)
        elif case.expect == "extract":
            out[case.key] = extract_digest(path)
        elif case.expect == "range":
            out[case.key] = sha256_file(path, BIG_OFFSET, case.read_limit)
        elif case.expect == "flv":
            assert case.flv is not None
            out[case.key] = flv_digest(path, case.flv)
    return out


def round_trip(origin: Origin, target: str, samples: int = 5) -> float:
    """Median time to the first byte of a 1-byte range straight from the link (new
    connection each): one origin round trip, with its connect."""
    times = sorted(
        timed_get(origin.url, target, {"Range": "bytes=0-0"}, None, 30)[2] for _ in range(samples)
    )
    return times[len(times) // 2]


def nginx_clip(files: dict[str, Path], samples: int = 5) -> tuple[int, float] | None:
    """nginx's mp4 module answering the clip from a local file: size and median time."""
    if not nginx_has_mp4():
        return None
    with docroot({"30min.mp4": files["30min.mp4"]}) as root, nginx_server(root, "/") as server:
        runs = [timed_get(server.base, f"/30min.mp4?{CLIP}", {}, None, 30) for _ in range(samples)]
    times = sorted(run[3] for run in runs)
    return runs[0][1], times[len(times) // 2]


def mb(size: float) -> str:
    """Bytes as MB with two decimals."""
    return f"{size / 1e6:.2f} MB"


def secs(seconds: float) -> str:
    """Seconds, or ms below one."""
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.1f} ms"


def bench_cold(options: argparse.Namespace, src: Path | None = None) -> Section:
    """Run the chosen cases side by side in one run; a table and a Section for results.md."""
    chosen, files = make_cases(options.cases)
    expected = expected_digests(chosen, files)
    moov = media.moov_location(files["30min.mp4"])[1] if "30min.mp4" in files else 0
    meter = LoadMeter()
    load_before = os.getloadavg()
    results: dict[str, Result] = {}
    with docroot(files) as root, shaped_origin(root, options.rate_mbit, options.rtt_ms) as origin:
        rtt = round_trip(origin, "/" + next(iter(files)))
        for case in chosen:
            print(f"  cold: {case.key} ...", file=sys.stderr, flush=True)
            results[case.key] = run_case(case, origin, root, expected, options, src)
    clip_nginx = nginx_clip(files) if any(c.key == "clip-30min" for c in chosen) else None
    rate = options.rate_mbit * 1e6 / 8
    rows: list[Row] = []
    notes: list[str] = []

    def whole_time(file: str) -> float | None:
        for key in ("whole-head", "whole-tail", "whole-30min", "whole-flv", "whole-flv30"):
            got = results.get(key)
            if got is not None and got.case.file == file and got.correct == "yes":
                return got.ttlb
        return None

    for key, got in results.items():
        case = got.case
        origin_bytes = got.origin_body
        ratio_bytes = origin_bytes / got.size if got.size else 0.0
        busy = "" if got.settled else f", link still busy {options.settle:.0f} s after"
        detail = [
            f"response {mb(got.size)}",
            f"origin {mb(origin_bytes)} in {len(got.origin_requests)} req{busy}",
            f"TTFB {secs(got.ttfb)}",
            "correct" if got.correct == "yes" else got.correct,
        ]
        ratio = ""
        if key.startswith("whole"):
            ratio = f"bytes {ratio_bytes:.2f}"
            if got.ttlb:
                detail.insert(2, f"{got.size / got.ttlb / 1e6:.1f} MB/s")
        elif key.startswith("audio"):
            whole = whole_time(case.file)
            time_ratio = f"{got.ttlb / whole:.2f}" if whole else "n/a"
            # FLV has no index: its audio-only answer needs every tag header (issue 13
            # leaves the cost to be measured), so its ratios have no target.
            flv = case.file.endswith(".flv")
            ratio = (
                f"bytes {ratio_bytes:.2f}" + ("" if flv else f" (<= {TARGET_AUDIO_BYTES})")
                + f", time {time_ratio}" + ("" if flv else f" (<= {TARGET_AUDIO_TIME})")
            )  # fmt: skip
        elif key.endswith("flv30"):
            whole = whole_time(case.file)
            time_ratio = f"{got.ttlb / whole:.2f}" if whole else "n/a"
            ratio = f"bytes {ratio_bytes:.2f}, time {time_ratio}"
        elif key == "clip-30min":
            over = (origin_bytes - moov) / got.size if got.size else 0.0
            ratio = f"(bytes - moov) {over:.2f} (<= {TARGET_CLIP})"
        elif key == "range-1gib":
            ratio = f"TTFB {got.ttfb / rtt:.0f} round trips (~1)"
        rows.append(Row(case.label, secs(got.ttlb), ratio, "", "; ".join(detail)))
        notes.append(
            f"{key}: link {mb(got.link)} ({mb(got.link_at_end)} by the last byte); origin "
            f"requests (status range): {', '.join(got.origin_requests[:6])}"
            + (f" and {len(got.origin_requests) - 6} more" if len(got.origin_requests) > 6 else "")
        )
    if clip_nginx is not None:
        size, seconds = clip_nginx
        rows.append(
            Row(
                f"nginx mp4 module, ?{CLIP}, 30-min, LOCAL file (not proxied, warm page cache)",
                secs(seconds),
                "",
                "",
                f"response {mb(size)}; nginx pulls nothing: it cannot clip through a proxy "
                "cache, nor extract audio at all",
            )
        )
    notes += [
        "median column: time to the last byte (the Range case: to its "
        f"{BIG_READ >> 20} MiB); each case a fresh vodedge with an empty cache",
        "ratio column: bytes = origin bytes / response size; time = time to the last byte / "
        "the whole object's cold fill through vodedge; (bytes - moov) = (origin bytes - the "
        f"moov's {moov / 1e3:.0f} kB) / response size; TTFB in origin round trips "
        f"(one: {secs(rtt)} for a 1-byte range on a new connection to the link; "
        f"{BIG_OFFSET >> 20} MiB take {BIG_OFFSET / rate:.0f} s at the link rate); "
        "targets from issue 13 in parentheses",
        f"origin link: {options.rate_mbit:g} Mbit/s in total (bench/shaper.py), "
        f"added RTT {options.rtt_ms:g} ms; origin bytes are nginx's $body_bytes_sent over the "
        f"case's requests, counted until the link was idle {options.idle:g} s "
        f"(at most {options.settle:g} s after the last byte); `link` is the shaper's count, "
        "headers included",
        f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; other processes kept "
        f"{meter.other_cores():.2f} of {os.cpu_count()} cores busy",
    ]
    label = getattr(options, "label", "")
    return Section(
        f"cold-{label}" if label else "cold",
        f"Cold cache behind a {options.rate_mbit:g} Mbit/s origin (issue 13)"
        + (f", {label}" if label else ""),
        [
            media.describe(path) if name != "big.bin" else f"big.bin: {BIG_SIZE >> 20} MiB (sparse)"
            for name, path in files.items()
        ],
        rows,
        notes,
    )


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The cold benchmark's options (shared with run.py)."""
    parser.add_argument("--cases", nargs="*", default=[], help=f"some of {' '.join(CASE_KEYS)}")
    parser.add_argument("--rate-mbit", type=float, default=100.0, help="the origin link, total")
    parser.add_argument("--rtt-ms", type=float, default=0.0, help="round-trip time to add")
    parser.add_argument("--idle", type=float, default=1.5, help="link idle this long = settled")
    parser.add_argument("--settle", type=float, default=30.0, help="most to wait for that")
    parser.add_argument("--timeout", type=float, default=300.0, help="per client request")


def main(argv: list[str] | None = None) -> int:
    """Run the cold benchmark alone."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--vodedge-rev", default=None, help="measure this commit's src/")
    parser.add_argument("--label", default="", help="kept apart in results.md, e.g. 'whole fills'")
    args = parser.parse_args(argv)
    unknown = set(args.cases) - set(CASE_KEYS)
    if unknown:
        parser.error(f"unknown case(s) {sorted(unknown)}; known: {' '.join(CASE_KEYS)}")
    src = None
    commit = machine_info()["vodedge"]
    if args.vodedge_rev:
        from run import source_tree

        src, commit = source_tree(args.vodedge_rev)
    section = bench_cold(args, src)
    section.commit = commit
    section.notes.append(
        "run: " + shlex.join([".venv/bin/python", "bench/cold.py", *(argv or sys.argv[1:])])
    )
    section.print()
    section.save()
    from harness import write_markdown

    print(f"\nmarkdown: {write_markdown()}")
    return 0


if __name__ == "__main__":
    os.chdir(REPO)
    sys.exit(main())
