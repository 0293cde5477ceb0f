"""HTTP servers for the request benchmarks: nginx (mp4 module) and `vodedge serve`, plus wrk."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import VENV_BIN


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
    tcp_nopush on;
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


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """Return once `url` answers, or raise if the server exits or never answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                response.read()
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not answer {url} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
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
    """A temporary directory exposing cached media under stable names (symlinks)."""
    with tempfile.TemporaryDirectory(prefix="vodedge-bench-root-") as tmp:
        root = Path(tmp)
        # Workers of a root nginx run as root (see nginx_conf), but keep the
        # directory traversable in case a server drops privileges.
        root.chmod(0o755)
        for name, target in files.items():
            (root / name).symlink_to(target)
        yield root


@contextlib.contextmanager
def nginx(root: Path, probe: str) -> Iterator[str]:
    """Run nginx with one worker on a free loopback port; yield its base URL."""
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
        )
        try:
            _wait_http(base + probe, proc)
            yield base
        finally:
            _stop(proc)


def vodedge_serve_available() -> bool:
    """Whether this vodedge has the `serve` command yet (issue 4)."""
    exe = VENV_BIN / "vodedge"
    if not exe.exists():
        return False
    done = subprocess.run([str(exe), "serve", "--help"], capture_output=True)
    return done.returncode == 0


@contextlib.contextmanager
def vodedge_serve(root: Path, probe: str) -> Iterator[str]:
    """Run `vodedge serve` (one worker, zero-config origin) on loopback; yield its base URL."""
    with tempfile.TemporaryDirectory(prefix="vodedge-bench-serve-") as tmp:
        port = free_port()
        argv = [
            str(VENV_BIN / "vodedge"), "serve", "--origin", str(root),
            "--listen", f"127.0.0.1:{port}", "--workers", "1", "--cache-dir", tmp,
        ]  # fmt: skip
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            _wait_http(base + probe, proc, timeout=30)
            yield base
        finally:
            _stop(proc)


@dataclass
class WrkResult:
    """What wrk measured for one URL."""

    requests_per_s: float
    p50: str
    p99: str
    errors: str
    command: str


def wrk(url: str, *, seconds: int, connections: int) -> WrkResult:
    """Load `url` with one wrk thread; return its requests/s and latency percentiles."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    text = done.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    socket_errors = re.search(r"Socket errors:.*", text)
    problems = ", ".join(m.group(0).strip() for m in (errors, socket_errors) if m is not None)
    return WrkResult(
        requests_per_s=float(rps.group(1)) if rps else 0.0,
        p50=p50.group(1) if p50 else "?",
        p99=p99.group(1) if p99 else "?",
        errors=problems,
        command=" ".join(argv),
    )
