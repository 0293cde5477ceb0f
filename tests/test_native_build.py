"""The compiled build (setup.py, mypyc) is what runs: where this interpreter can compile,
the clip planner's modules are imported from their extensions, built from the sources
as they are now (conftest refuses to run the tests on a stale build at all)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from native_build import REPO, imported_files, is_extension, record, setup_module, stale


def test_a_compiler_means_compiled_modules() -> None:
    """A machine that can compile (gcc, Python.h, mypyc) runs the compiled modules,
    unless VODEDGE_PURE asked for pure Python."""
    reason = setup_module().why_pure()
    if reason is not None:
        pytest.skip(f"this interpreter's build is pure Python: {reason}")
    built = record()
    assert built is not None, (
        "a C compiler and Python.h are here but the last build compiled nothing: "
        "make .venv/.installed-test (`pip install -e . -v` says why)"
    )
    pure = [name for name, path in imported_files().items() if not is_extension(path)]
    assert not pure, f"compiled, yet imported from their sources: {pure}"


def test_the_build_record_names_what_is_imported() -> None:
    """Every module the record says was compiled is imported from its extension, and
    none that it does not name is."""
    built = record()
    compiled = set(built["compiled"]) if built else set()  # type: ignore[call-overload]
    setup = setup_module()
    for path, file in zip(setup.COMPILED, imported_files().values(), strict=True):
        assert is_extension(file) == (path in compiled), (path, file)


def test_the_build_is_not_stale() -> None:
    """No source the compiled modules were built from has changed since."""
    assert stale() == []


def project_copy(tmp_path: Path) -> Path:
    """What setup.py builds, copied (no extensions, no build record): its src/."""
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, tmp_path / name)
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.so"))
    (tmp_path / "src" / "vodedge" / "_native.json").unlink(missing_ok=True)
    return tmp_path / "src"


def build_in_place(root: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """setup.py's in-place build of the copy at `root`, with `env` added."""
    return subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=root,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=600,
    )


def compiled_files(src: Path) -> list[Path]:
    """The extensions and build record under `src`."""
    found = [p for suffix in EXTENSION_SUFFIXES for p in src.rglob(f"*{suffix}")]
    return sorted(found + list(src.glob("vodedge/_native.json")))


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"VODEDGE_PURE": "1"}, "pure Python build: VODEDGE_PURE is set"),
        ({"CC": "/nonexistent/cc"}, "pure Python build: no C compiler"),
        # A compiler that fails every file: the build goes on without the extensions.
        ({"CC": "false"}, "compiling failed, pure Python"),
    ],
    ids=["asked", "no-compiler", "compiler-fails"],
)
def test_a_build_that_cannot_compile_is_pure_python(
    tmp_path: Path, env: dict[str, str], says: str
) -> None:
    """No compiler, a failing one, or VODEDGE_PURE: the build succeeds, says why it is
    pure Python, and leaves no extension (nor an earlier build's) to shadow a source."""
    src = project_copy(tmp_path)
    # An earlier build's extension and record, which the new build must not leave.
    (src / "vodedge" / "media" / "mp4" / f"cuts{EXTENSION_SUFFIXES[0]}").write_bytes(b"")
    (src / "vodedge" / "_native.json").write_text("{}")
    done = build_in_place(tmp_path, env)
    assert done.returncode == 0, done.stderr
    assert says in done.stderr
    assert compiled_files(src) == []
