"""The README's first hour, checked against reality.

`make run`'s banner (read from the Makefile) is what the README shows; each
of its `curl` lines, run against a real `vodedge serve` of `samples/` (on
free ports instead of 8080/9090), gives the figures its comment states; the
`vodedge inspect` example prints what the README shows; the command-line
table's flags are ones `vodedge COMMAND --help` knows, and its words for
extract, clip and inspect are the help's.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from oracle import run_cli, vodedge_command
from ports import free_ports
from vodedge.cli import CLIP_HELP, EXTRACT_HELP, INSPECT_HELP

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
MAKEFILE = (REPO / "Makefile").read_text()


LISTEN_HEADER = "Listen in a browser"


def _banner() -> list[str]:
    """The lines `make run` echoes before it starts serving."""
    recipe = MAKEFILE.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    lines = re.findall(r'^\t@echo "(.*)"$', recipe, re.M)
    assert lines, "no @echo lines in the run target"
    return lines


def _curl_lines() -> list[str]:
    """The banner's `curl` lines (between its first line and the page URLs)."""
    lines = _banner()
    end = next(i for i, line in enumerate(lines) if line.startswith(LISTEN_HEADER))
    return lines[1:end]


def _page_urls() -> list[str]:
    """The listening page URLs the banner prints."""
    lines = _banner()
    start = next(i for i, line in enumerate(lines) if line.startswith(LISTEN_HEADER))
    return [line.strip() for line in lines[start + 1 :]]


def _fenced_after(marker: str) -> list[str]:
    """The lines of the first fenced block after `marker` in the README."""
    rest = README.split(marker, 1)[1]
    block = rest.split("```\n", 2)[1]
    return block.rstrip("\n").split("\n")


def test_make_run_banner_is_what_the_readme_shows() -> None:
    """Line for line, sizes included."""
    assert _fenced_after("`make run` serves until Ctrl-C") == _banner()


@pytest.fixture(scope="module")
def samples_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int, Path]]:
    """`vodedge serve` of samples/ as `make run` starts it, on free ports: (port, admin, cwd)."""
    cwd = tmp_path_factory.mktemp("make-run")
    port, admin = free_ports(2)
    recipe = MAKEFILE.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    serve = re.search(r"\$\(BIN\)/vodedge (serve .*?)(?<!\\)$", recipe, re.S | re.M)
    assert serve, "no vodedge serve line in the run target"
    args = shlex.split(serve.group(1).replace("\\\n", " "))
    ports = {"127.0.0.1:8080": f"127.0.0.1:{port}", "127.0.0.1:9090": f"127.0.0.1:{admin}"}
    args = [ports.get(a, a) for a in args]
    args[args.index("--origin") + 1] = str(REPO / "samples")
    proc = subprocess.Popen(
        [*vodedge_command(), *args, "--workers", "1", "--access-log", "off"],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving" in line, line
        yield port, admin, cwd
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert (cwd / "var" / "cache").is_dir(), "the cache is not under var/cache of the cwd"


def _figures(comment: str) -> tuple[list[int], int] | None:
    """(bytes received, in the order of requests; source size) stated by a banner comment."""
    m = re.fullmatch(r"([\d,]+) bytes of ([\d,]+)(?:; ([\d,]+) once cached)?", comment)
    if m is None:
        return None
    sizes = [int(m.group(1).replace(",", ""))]
    if m.group(3):
        sizes.append(int(m.group(3).replace(",", "")))
    return sizes, int(m.group(2).replace(",", ""))


def _received(argv: list[str], cwd: Path) -> int:
    """How many body bytes one run of a banner `curl` line received."""
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    if "-o" in argv:
        return (cwd / argv[argv.index("-o") + 1]).stat().st_size
    headers = proc.stdout.decode("latin-1")
    assert headers.startswith("HTTP/1.1 200"), headers
    length = re.search(r"^Content-Length: (\d+)", headers, re.M | re.I)
    assert length, headers
    return int(length.group(1))


def test_banner_commands_give_the_figures_they_state(
    samples_server: tuple[int, int, Path],
) -> None:
    """Every `curl` line, run as printed (ports aside), gives what its comment says."""
    port, admin, cwd = samples_server
    checked = 0
    for line in _curl_lines():
        command, _, comment = line.strip().partition("  # ")
        command = command.replace(":8080/", f":{port}/").replace(":9090/", f":{admin}/")
        argv = shlex.split(command)
        assert argv[0] == "curl", line
        figures = _figures(comment.strip())
        if figures is None:
            assert comment.strip() == "Prometheus text", line
            text = subprocess.run(argv, capture_output=True, text=True, timeout=60).stdout
            assert "# TYPE vodedge_" in text, text[:500]
            checked += 1
            continue
        sizes, source_size = figures
        name = re.search(r"/([\w-]+\.\w+)\?", command)
        assert name, line
        assert (REPO / "samples" / name.group(1)).stat().st_size == source_size, line
        got = [_received(argv, cwd) for _ in sizes]
        # Warm, every run gives the last figure.
        got.append(_received(argv, cwd))
        assert got == [*sizes, sizes[-1]], f"{line}: received {got}"
        checked += 1
    assert checked == len(_curl_lines())


def test_banner_prints_a_working_page_url_per_sample(
    samples_server: tuple[int, int, Path],
) -> None:
    """One listening page URL per bundled sample, and each answers with the page."""
    port, _, _ = samples_server
    urls = _page_urls()
    names = sorted(path.name for path in (REPO / "samples").iterdir())
    assert sorted(url.rsplit("src=/", 1)[1] for url in urls) == names
    for url in urls:
        url = url.replace(":8080/", f":{port}/")
        proc = subprocess.run(["curl", "-s", "-i", url], capture_output=True, timeout=60)
        answer = proc.stdout.decode()
        assert answer.startswith("HTTP/1.1 200"), answer[:300]
        src = url.rsplit("src=", 1)[1]
        assert f'data-src="{src}"' in answer, answer[:2000]


def test_inspect_example_prints_what_the_readme_shows() -> None:
    """The README's `vodedge inspect samples/talk.mp4`, run in the repository."""
    lines = _fenced_after("For example (`tests/test_readme.py` runs it and compares):")
    assert lines[0] == "$ vodedge inspect samples/talk.mp4"
    proc = run_cli("inspect", REPO / "samples" / "talk.mp4")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip("\n").split("\n") == lines[1:]


def _table_rows() -> dict[str, list[tuple[str, str]]]:
    """The command-line table: command name -> [(usage, description)] (backticks removed)."""
    section = README.split("\n## The command line\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, list[tuple[str, str]]] = {}
    for row in (line for line in section.splitlines() if line.startswith("| `vodedge ")):
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
        usage, description = (c.replace("\\|", "|").replace("`", "") for c in cells)
        rows.setdefault(usage.split()[1], []).append((usage, description))
    return rows


def test_command_table_flags_are_known_to_the_help() -> None:
    """Every `--flag` the table shows is in that command's `--help`."""
    rows = _table_rows()
    assert {"extract", "clip", "inspect", "serve", "purge"} <= set(rows)
    for command, entries in rows.items():
        for usage, _ in entries:
            helptext = run_cli(command, "--help").stdout
            sub = usage.split()[2]
            if re.fullmatch(r"[a-z]+", sub):  # `domain list`, `config set`: its own help
                helptext += run_cli(command, sub, "--help").stdout
            for flag in re.findall(r"--[a-z][a-z-]*", usage):
                assert re.search(rf"{flag}\b", helptext), f"{command}: {flag} not in its --help"


def test_help_says_what_the_readme_says() -> None:
    """extract, clip and inspect: the table's words are the help's, and `--help` lists them."""
    rows = _table_rows()
    for command, words in (("extract", EXTRACT_HELP), ("clip", CLIP_HELP),
                           ("inspect", INSPECT_HELP)):  # fmt: skip
        (_, description), *_ = rows[command]
        assert description.startswith(words), f"{command}: README {description!r}, help {words!r}"
    top = run_cli("--help").stdout
    for command in rows:
        assert re.search(rf"^\s+{command}\s", top, re.M), f"{command} missing from vodedge --help"
    assert "default: var/cache under the current directory" in " ".join(
        run_cli("serve", "--help").stdout.split()
    )
