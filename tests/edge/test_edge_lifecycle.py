"""The serve process's life: zero-config start, refusing bad starts, stopping mid-fill."""

from __future__ import annotations

import socket
import subprocess
import time
from http.client import HTTPConnection
from pathlib import Path

import pytest
from edge_config import Origins, domains
from edge_harness import RawClient, Vodedge, running
from edge_media import SAMPLES, cli_output

from oracle import vodedge_command

pytestmark = pytest.mark.xdist_group("edge_lifecycle")


# --- zero-config ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["directory", "url"])
def test_zero_config_serves_every_host(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, kind: str
) -> None:
    """`--origin DIR|URL`: any Host, audio extraction and seeking on with default names."""
    origin = str(SAMPLES) if kind == "directory" else origins.nginx.url
    path = "/talk.mp4" if kind == "directory" else origins.media.add(SAMPLES / "talk.mp4")
    source = SAMPLES / "talk.mp4"
    work = tmp_path_factory.mktemp("vodedge-zero")
    with running(Vodedge(work, "", origin=origin)) as server:
        for host in ("anything.test", "127.0.0.1", "other.example"):
            plain = server.get(host, path)
            assert plain.status == 200 and plain.body == source.read_bytes()
            audio = server.get(host, path + "?ali_audio_only=1")
            assert audio.body == cli_output("extract", source, tmp_path).output
            clip = server.get(host, path + "?start=1&end=2")
            want = cli_output("clip", source, tmp_path, "--start", "1", "--end", "2").output
            assert clip.body == want


def _ipv6_port() -> int | None:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
            return int(sock.getsockname()[1])
    except OSError:
        return None


@pytest.fixture(scope="module")
def ipv6_server(tmp_path_factory: pytest.TempPathFactory) -> tuple[tuple[int, bytes], str, int]:
    """`vodedge serve --listen [::1]:PORT`: one request's (status, body), its stderr, port."""
    port = _ipv6_port()
    if port is None:
        pytest.skip("no IPv6 loopback here")
    work = tmp_path_factory.mktemp("vodedge-ipv6")
    log = work / "stderr.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [*vodedge_command(), "serve", "--origin", str(SAMPLES), "--listen", f"[::1]:{port}",
             "--workers", "1", "--cache-dir", str(work / "cache"), "--access-log", "off"],
            stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        for _ in range(200):
            try:
                connection = HTTPConnection("::1", port, timeout=5)
                connection.request("GET", "/talk.mp4?ali_audio_only=1", headers={"Host": "x"})
                response = connection.getresponse()
                reply = (response.status, response.read())
                connection.close()
                return reply, log.read_text(), port
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"no answer on [::1]:{port}: {log.read_text()}")
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_an_ipv6_listener(ipv6_server: tuple[tuple[int, bytes], str, int], tmp_path: Path) -> None:
    """--listen [::1]:PORT serves over IPv6."""
    (status, body), _, _ = ipv6_server
    assert status == 200
    assert body == cli_output("extract", SAMPLES / "talk.mp4", tmp_path).output


def test_the_start_up_line_names_a_usable_url(
    ipv6_server: tuple[tuple[int, bytes], str, int],
) -> None:
    """The line an operator copies from says http://[::1]:PORT/."""
    _, log, port = ipv6_server
    assert f"http://[::1]:{port}/" in log, log


# --- refused starts --------------------------------------------------------------------------


def _serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*vodedge_command(), "serve", *args], capture_output=True, text=True, timeout=30
    )


def test_a_bad_config_is_refused_with_file_key_and_reason(tmp_path: Path) -> None:
    """An unknown function: exit 2 and one line naming the file and the key."""
    config = tmp_path / "bad.toml"
    config.write_text(
        '[[domain]]\nname = "a.test"\norigins = ["http://127.0.0.1:9"]\n'
        '[[domain.function]]\nname = "no_such_function"\n'
    )
    proc = _serve("--config", str(config), "--listen", "127.0.0.1:0")
    assert proc.returncode == 2, proc
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert str(config) in lines[0] and "domain[0].function[0].name" in lines[0], lines[0]


def test_a_taken_port_is_refused_in_one_line(tmp_path: Path) -> None:
    """--listen on a port in use: exit 2, one line, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _serve(
            "--origin", str(SAMPLES), "--listen", f"127.0.0.1:{port}",
            "--cache-dir", str(tmp_path / "cache"),
        )  # fmt: skip
    assert proc.returncode == 2, proc
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr


# --- stopping --------------------------------------------------------------------------------

# talk.mp4 in 32 kB steps every 0.1 s: a fill of about 1.2 s.
SLOW = {"chunk": 32 << 10, "drip_after": 0, "interval": 0.1}


def test_sigterm_lets_a_client_being_served_finish(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """SIGTERM mid-response: the client still gets every byte, and the server is gone soon."""
    path = origins.media.add(SAMPLES / "talk.mp4", "lifecycle/served.mp4")
    origins.fault.behave(path, **SLOW)
    server = Vodedge(tmp_path_factory.mktemp("vodedge-term"), domains(origins))
    with running(server):
        client = RawClient(server.port, "faulty.test", path)
        client.read_head()
        client.read_body(1)
        started = time.monotonic()
        server.stop()
        stopped = time.monotonic() - started
        body, _ = client.read_to_end()
        client.close()
    assert body == origins.media.file(path).read_bytes()
    assert stopped < 6, f"stop took {stopped:.1f} s"


def test_sigterm_during_a_fill_nobody_waits_for_stops_promptly(
    origins: Origins, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A fill still running for no client does not hold the shutdown; after a restart the
    object is either whole or fetched again."""
    path = origins.media.add(SAMPLES / "talk.mp4", "lifecycle/orphan-fill.mp4")
    origins.fault.behave(path, **SLOW)
    server = Vodedge(tmp_path_factory.mktemp("vodedge-term-fill"), domains(origins))
    with running(server):
        assert server.get("faulty.test", path, method="HEAD").header("X-Cache") == "MISS"
        time.sleep(0.2)
        started = time.monotonic()
        server.stop()
        stopped = time.monotonic() - started
        assert stopped < 6, f"stop took {stopped:.1f} s"
        server.start()
        origins.fault.behave(path)
        assert server.tmp_files() == []
        reply = server.get("faulty.test", path)
        assert reply.body == origins.media.file(path).read_bytes()
