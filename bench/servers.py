"""HTTP servers for the request benchmarks: nginx (mp4 module) and `vodedge serve`, plus wrk."""

from __future__ import annotations

import contextlib
import functools
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import SCRATCH, VENV_BIN, bench_env


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_has_mp4() -> bool:
    """Whether the installed nginx was built with ngx_http_mp4_module."""
    if not shutil.which("nginx"):
        return False
    done = subprocess.run(["nginx", "-V"], capture_output=True, text=True)
    return "--with-http_mp4_module" in done.stderr + done.stdout


def nginx_conf(port: int, docroot: Path, workdir: Path) -> str:
    """An nginx.conf for one worker on loopback serving `docroot`, `.mp4` through `mp4;`."""
    # Root only: workers would otherwise drop to `nobody`, who may not read the cache.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""\
{user}daemon off;
master_process on;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    sendfile on;
    # nginx's default; `on` corks small responses and costs a 40 ms delayed
    # ACK on some of them over loopback (p99 42 ms, a third of the req/s).
    tcp_nopush off;
    keepalive_requests 1000000;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    types {{
        video/mp4 mp4;
        audio/mp4 m4a;
        video/x-flv flv;
    }}
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
        location ~ \\.mp4$ {{
            mp4;
            # A 30-minute file's moov is ~650 kB; the defaults (512k/10m) would
            # grow the buffer per request, so start it big enough.
            mp4_buffer_size 1m;
            mp4_max_buffer_size 16m;
        }}
        location ~ \\.flv$ {{
            flv;
        }}
    }}
}}
"""


@dataclass
class Fetched:
    """One response as curl saw it."""

    status: int
    size: int
    complete: bool  # curl got every byte the headers promised
    headers: dict[str, str]


def fetch(url: str, timeout: float = 30.0) -> Fetched:
    """GET `url` with curl (keep-alive, like wrk), discarding the body."""
    argv = [
        "curl", "-s", "-o", os.devnull, "-D", "-", "--max-time", str(timeout),
        "-w", "\n%{http_code} %{size_download} %{exitcode}", url,
    ]  # fmt: skip
    out = subprocess.run(argv, capture_output=True, text=True).stdout
    head, _, tail = out.rpartition("\n")
    code, size, exit_code = [*tail.split(), "0", "0", "1"][:3]
    headers = {}
    for line in head.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return Fetched(int(code), int(size), exit_code == "0", headers)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Return once the server accepts connections; raise if it exits or never listens."""
    host, port = url.split("/")[2].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {host}:{port} within {timeout:.0f} s")


def warm(url: str, *, want_hit: bool, tries: int = 20, timeout: float = 30.0) -> list[str]:
    """Request `url` until a complete 2xx (and a cache HIT if asked); return what went wrong.

    Gives up after three incomplete bodies: a server that stalls mid-body would
    otherwise cost `tries` timeouts.
    """
    problems: list[str] = []
    stalled = 0
    for _ in range(tries):
        got = fetch(url, timeout=timeout)
        if not got.complete or not 200 <= got.status < 300:
            problems.append(f"status {got.status}, {got.size} bytes, complete={got.complete}")
            stalled += not got.complete
            if stalled >= 3:
                return problems
            time.sleep(0.2)
            continue
        if not want_hit or got.headers.get("x-cache") == "HIT":
            return problems
        time.sleep(0.2)
    problems.append(f"no complete{' cached' if want_hit else ''} response in {tries} tries")
    return problems


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server this module started (by its own pid), politely then firmly."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def docroot(files: dict[str, Path]) -> Iterator[Path]:
    """A temporary directory exposing cached media under stable names."""
    # Next to the media, so hard links work (same file system).
    SCRATCH.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="root-", dir=SCRATCH) as tmp:
        root = Path(tmp)
        # Workers of a root nginx run as root (see nginx_conf), but keep the
        # directory traversable in case a server drops privileges.
        root.chmod(0o755)
        for name, target in files.items():
            # Hard links where possible: a directory origin that refuses to
            # follow links out of its root (as it should) still serves them.
            try:
                os.link(target, root / name)
            except OSError:
                shutil.copyfile(target, root / name)
        yield root


@dataclass
class Server:
    """A server this module started: its base URL, its master's pid and its stderr file."""

    base: str
    pid: int
    log: Path | None = None

    def pids(self) -> list[int]:
        """The master and every process under it (workers)."""
        return process_tree(self.pid)

    def errors(self) -> str:
        """What the server wrote to stderr so far."""
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def nginx_server(root: Path, probe: str, *, cpus: set[int] | None = None) -> Iterator[Server]:
    """Run nginx with one worker on a free loopback port (on `cpus` if given)."""
    with tempfile.TemporaryDirectory(prefix="vodedge-bench-nginx-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_conf(port, root, workdir))
        base = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            ["nginx", "-p", str(workdir), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=functools.partial(_child_setup, None, cpus),
        )
        try:
            _wait_http(base + probe, proc)
            yield Server(base, proc.pid, workdir / "error.log")
        finally:
            stop(proc)


@contextlib.contextmanager
def nginx(root: Path, probe: str) -> Iterator[str]:
    """Run nginx with one worker on a free loopback port; yield its base URL."""
    with nginx_server(root, probe) as server:
        yield server.base


def vodedge_serve_available() -> bool:
    """Whether this vodedge has the `serve` command yet (issue 4)."""
    exe = VENV_BIN / "vodedge"
    if not exe.exists():
        return False
    done = subprocess.run([str(exe), "serve", "--help"], capture_output=True)
    return done.returncode == 0


@contextlib.contextmanager
def vodedge_server(
    root: Path | str,
    probe: str,
    *,
    loop: str = "asyncio",
    src: Path | None = None,
    nofile: int | None = None,
    cpus: set[int] | None = None,
    config: Path | None = None,
    lane: bool = True,
) -> Iterator[Server]:
    """Run `vodedge serve` (one worker, zero-config origin, access log off) on loopback.

    `root` is a directory or an origin's URL; the cache is a fresh temporary directory.
    `src` runs another source tree (e.g. an older commit from `git archive`)
    with the same virtualenv; `nofile` lowers its soft descriptor limit; `cpus`
    pins it (and its workers, which inherit it). `config`: a TOML file of domains to
    serve instead of the zero-config origin `root`. `lane` False: `--lane off` (every
    request through aiohttp's request loop).
    """
    with tempfile.TemporaryDirectory(prefix="vodedge-bench-serve-") as tmp:
        port = free_port()
        argv = [
            str(VENV_BIN / "vodedge"), "serve",
            *(("--config", str(config)) if config else ("--origin", str(root))),
            "--listen", f"127.0.0.1:{port}", "--workers", "1", "--cache-dir", tmp,
            # nginx runs with access_log off; logging is not what is compared.
            "--access-log", "off", "--loop", loop,
            *(() if lane else ("--lane", "off")),
        ]  # fmt: skip
        env = bench_env()  # with bytecode caching, as users run it
        if src is not None:
            env["PYTHONPATH"] = str(src)  # ahead of the editable install's path entry
        log = Path(tmp) / "stderr.log"
        with log.open("wb") as stderr:
            proc = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                env=env,
                preexec_fn=functools.partial(_child_setup, nofile, cpus),
            )
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_http(base + probe, proc, timeout=30)
            yield Server(base, proc.pid, log)
        finally:
            stop(proc)


def _child_setup(nofile: int | None, cpus: set[int] | None) -> None:
    """In a server's process before exec: a lower soft RLIMIT_NOFILE (a common default
    is 1024) and CPU pinning, when asked."""
    if nofile is not None:
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))
    if cpus is not None:
        os.sched_setaffinity(0, cpus)


@contextlib.contextmanager
def vodedge_serve(root: Path, probe: str) -> Iterator[str]:
    """Run `vodedge serve` (one worker, zero-config origin) on loopback; yield its base URL."""
    with vodedge_server(root, probe) as server:
        yield server.base


# -- the processes of a server ---------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants that are alive now."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: fields follow the last ')'.
        ppid = int(stat.rpartition(")")[2].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        if Path(f"/proc/{current}").exists():
            tree.append(current)
            todo += parents.get(current, [])
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds of these processes (and of children they reaped)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of proc(5), 12-15 after the name.
        total += sum(int(v) for v in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, field: str) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM...), 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pss_kb(pid: int) -> int:
    """Proportional set size: pages shared with the other processes counted once in total."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    """How many descriptors the process has open."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def fd_limit(pid: int) -> str:
    """The process's soft/hard RLIMIT_NOFILE."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return f"{soft}/{hard}"
    except OSError:
        pass
    return "?"


@dataclass
class WrkResult:
    """What wrk measured for one URL."""

    requests_per_s: float
    p50: str
    p99: str
    errors: str
    command: str
    requests: int = 0
    transfer_per_s: str = ""  # wrk's own figure, headers included


def wrk(
    url: str,
    *,
    seconds: int,
    connections: int,
    timeout: int | None = None,
    script: Path | None = None,
    seed: int | None = None,
) -> WrkResult:
    """Load `url` with one wrk thread (its requests made by a Lua `script` if given, which
    gets `seed` as its argument); return its requests/s and latency percentiles."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if timeout is not None:
        # wrk's default (2 s) counts slow full responses as timeouts.
        argv[4:4] = [f"--timeout={timeout}s"]
    if script is not None:
        argv[4:4] = ["-s", str(script)]
    if seed is not None:
        argv += ["--", str(seed)]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    text = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    count = re.search(r"(\d+) requests in", text)
    transfer = re.search(r"Transfer/sec:\s+(\S+)", text)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors:.*", text)
    problems = ", ".join(m.group(0).strip() for m in (errors, socket_errors) if m is not None)
    return WrkResult(
        requests_per_s=float(rps.group(1)) if rps else 0.0,
        p50=p50.group(1) if p50 else "?",
        p99=p99.group(1) if p99 else "?",
        errors=problems,
        command=" ".join(argv),
        requests=int(count.group(1)) if count else 0,
        transfer_per_s=transfer.group(1) if transfer else "",
    )
