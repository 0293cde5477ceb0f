"""What setup.py compiled with mypyc, and whether it is what `import` finds and still
matches its sources (a stale extension is imported ahead of a newer source)."""

from __future__ import annotations

import importlib
import importlib.util
import json
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parent.parent


def setup_module() -> ModuleType:
    """setup.py as a module (its `setup()` runs only as a script)."""
    spec = importlib.util.spec_from_file_location("vodedge_setup", REPO / "setup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def is_extension(path: str | None) -> bool:
    """Whether a module's file is a compiled extension."""
    return path is not None and path.endswith(tuple(EXTENSION_SUFFIXES))


def record() -> dict[str, object] | None:
    """The last in-place build's record (compiled modules, sources' digests), if any."""
    manifest: Path = setup_module().MANIFEST
    if not manifest.is_file():
        return None
    found: dict[str, object] = json.loads(manifest.read_text())
    return found


def stale() -> list[str]:
    """Why the compiled modules cannot be trusted to be the sources' (empty when they
    can, or when there are none): each line says what and how to fix it."""
    setup = setup_module()
    fix = "rebuild: make .venv/.installed-test (or pip install -e . again)"
    built = record()
    problems: list[str] = []
    if built is None:
        for module in setup.COMPILED:
            for suffix in EXTENSION_SUFFIXES:
                leftover = setup.SRC / Path(module).with_suffix(suffix)
                if leftover.exists():
                    problems.append(f"{leftover} has no record of its build: {fix}")
        return problems
    sources = built["sources"]
    assert isinstance(sources, dict)
    for path, digest in sorted(sources.items()):
        if not (setup.SRC / path).is_file():
            problems.append(f"src/{path} is gone since the compiled build: {fix}")
        elif setup.digest(path) != digest:
            problems.append(f"src/{path} changed since the compiled build: {fix}")
    for path in setup.sources():
        if path not in sources:
            problems.append(f"src/{path} is new since the compiled build: {fix}")
    return problems


def imported_files() -> dict[str, str | None]:
    """The file each module setup.py compiles is imported from (None where a pure build
    has none: the Cython planner has no source to import)."""
    setup = setup_module()
    found: dict[str, str | None] = {}
    for name in map(setup.module_name, setup.COMPILED):
        try:
            found[name] = importlib.import_module(name).__file__
        except ImportError:
            found[name] = None
    return found
