"""Compiles the MP4 clip planner with mypyc, and its warm path's planner with Cython, where
a C compiler and Python's headers are present; pure Python where they are not, or with
VODEDGE_PURE=1 (the rest of the project's metadata is in pyproject.toml).

Built in place (`pip install -e .`, as the Makefile installs), each compiled module's
extension sits beside its source, and `import` takes it ahead of the source: a build
records what it compiled and from which sources in `src/vodedge/_native.json`, and the
tests refuse to run on an extension whose sources changed since (tests/native_build.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE / "src"
# The warm MP4 clip's planner (mypy --strict clean, as all of src/): compiled, a random
# 10-second clip's plan costs about 0.6 of the pure one's. index.py stays pure Python
# (numpy's work: compiling it gained nothing measurable).
NATIVE = [
    "vodedge/media/mp4/cuts.py",
    "vodedge/media/mp4/fastclip.py",
    "vodedge/media/mp4/skeleton.py",
    "vodedge/media/mp4/timeline.py",
]
# The warm clip's whole plan from flat tables (Cython, bounds-checked memoryviews; see
# the module's docstring): a pure build has none, and the mypyc planner answers.
CYTHON = ["vodedge/media/mp4/clipper.pyx"]
COMPILED = NATIVE + CYTHON
MANIFEST = SRC / "vodedge" / "_native.json"
GROUP = "vodedge_native"  # the compiled modules' shared library: vodedge_native__mypyc


def sources() -> list[str]:
    """What a build depends on (the Makefile's NATIVE_SOURCES): mypyc compiles the
    modules against the types of those they import."""
    found = [*SRC.glob("vodedge/media/*.py"), *SRC.glob("vodedge/media/mp4/*.py")]
    found += [*SRC.glob("vodedge/media/mp4/*.pyx"), *SRC.glob("vodedge/media/mp4/*.pyi")]
    return sorted(str(path.relative_to(SRC)) for path in found)


def digest(path: str) -> str:
    """The SHA-256 of a file under src/."""
    return hashlib.sha256((SRC / path).read_bytes()).hexdigest()


def module_name(path: str) -> str:
    """`vodedge/media/mp4/cuts.py` (or `.pyx`) -> `vodedge.media.mp4.cuts`."""
    return path.removesuffix(".pyx").removesuffix(".py").replace("/", ".")


def why_pure() -> str | None:
    """Why this interpreter's build is pure Python, or None when it can compile."""
    if os.environ.get("VODEDGE_PURE"):
        return "VODEDGE_PURE is set"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").is_file():
        return f"no Python.h for {sys.executable} (Debian: python3-dev)"
    compiler = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not compiler or shutil.which(compiler[0]) is None:
        return f"no C compiler ({' '.join(compiler) or 'cc'})"
    try:
        import mypyc.build  # noqa: F401
    except ImportError:
        return "mypyc is not installed (it comes with mypy)"
    try:
        import Cython.Build  # noqa: F401
    except ImportError:
        return "Cython is not installed"
    return None


def clean() -> None:
    """Remove a previous build's extensions and record: a stale extension would be
    imported ahead of its newer source."""
    MANIFEST.unlink(missing_ok=True)
    for suffix in EXTENSION_SUFFIXES:
        for module in COMPILED:
            (SRC / module).with_suffix(suffix).unlink(missing_ok=True)
        (SRC / f"{GROUP}__mypyc{suffix}").unlink(missing_ok=True)


def cython_extensions() -> list[object]:
    """The Cython modules' extensions; their C goes under build/, not beside them."""
    from Cython.Build import cythonize
    from setuptools import Extension

    modules = [
        Extension(module_name(path), [str((SRC / path).relative_to(Path.cwd()))]) for path in CYTHON
    ]
    built: list[object] = cythonize(modules, build_dir="build/cython", quiet=True)
    return built


def main() -> None:
    """setuptools' `setup` with the compiled modules, if any."""
    from setuptools import setup
    from setuptools.command.build_ext import build_ext

    class OptionalBuildExt(build_ext):
        """`build_ext` that falls back to pure Python when compiling fails, and records
        what it compiled."""

        def run(self) -> None:
            try:
                super().run()
            except Exception as exc:  # a compiler or linker error
                clean()
                print(f"vodedge: compiling failed, pure Python: {exc}", file=sys.stderr)
                return
            if self.inplace and self.extensions:
                record = {"compiled": COMPILED, "sources": {p: digest(p) for p in sources()}}
                MANIFEST.write_text(json.dumps(record, indent=1) + "\n")

    clean()
    extensions = []
    reason = why_pure()
    if reason is None:
        from mypyc.build import mypycify

        try:  # paths from the project's root: module names from the packages above
            paths = [str((SRC / module).relative_to(Path.cwd())) for module in NATIVE]
            extensions = mypycify(paths, opt_level="3", group_name=GROUP)
        except (Exception, SystemExit) as exc:  # mypyc refused the code (it printed why)
            reason = f"mypyc failed: {exc!r}"
    if reason is None:
        try:
            extensions += cython_extensions()
        except (Exception, SystemExit) as exc:  # Cython refused the code (it printed why)
            extensions, reason = [], f"Cython failed: {exc!r}"
    if reason is not None:
        print(f"vodedge: pure Python build: {reason}", file=sys.stderr)
    setup(ext_modules=extensions, cmdclass={"build_ext": OptionalBuildExt})


if __name__ == "__main__":
    main()
