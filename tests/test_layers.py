"""The layers of DESIGN.md hold: every import in every module of a layer (at the top,
inside a function, under TYPE_CHECKING) names only the layers it may use."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "vodedge"

# What each layer may import of vodedge besides itself (DESIGN.md, "Layers").
MAY_USE = {
    "media": set(),
    "config": set(),
    "edge": {"media", "config", "planfile"},
    "control": {"config"},
    "node": {"edge", "control", "media", "config"},
    "cli": {"node", "edge", "control", "media", "config", "planfile"},
}
# Modules beside the layers (not packages), and what they may use.
TOP_MODULES = {"planfile": {"media"}, "__init__": set(), "__main__": {"cli"}}
# media is sans-IO: no sockets, no event loop, no HTTP.
MEDIA_FORBIDS = {"asyncio", "socket", "aiohttp", "selectors", "ssl", "subprocess"}


def modules(layer: str) -> list[Path]:
    """The layer's source files."""
    return sorted((PACKAGE / layer).rglob("*.py"))


def module_name(path: Path) -> str:
    """`vodedge.edge.app` for src/vodedge/edge/app.py (a package is its __init__)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every module name `path` imports, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            names.add(stem)
            # `from vodedge import edge` names the layer in the alias.
            names.update(f"{stem}.{alias.name}" for alias in node.names)
    return names


def layer_of(name: str) -> str | None:
    """The vodedge layer an imported name belongs to (None outside vodedge)."""
    parts = name.split(".")
    if parts[0] != "vodedge" or len(parts) < 2:
        return None
    # `from vodedge import __version__`: the package's own __init__, below everything.
    return "__init__" if parts[1].startswith("__") else parts[1]


@pytest.mark.parametrize("layer", sorted(MAY_USE))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    files = modules(layer)
    assert files, f"no modules found for layer {layer}"
    allowed = MAY_USE[layer] | {layer, "__init__"}
    wrong = []
    for path in files:
        for name in sorted(imported(path)):
            used = layer_of(name)
            if used is not None and used not in allowed:
                wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", sorted(TOP_MODULES))
def test_top_module_imports_only_what_it_may(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    allowed = TOP_MODULES[module] | {module}
    wrong = [n for n in sorted(imported(path)) if (layer_of(n) or module) not in allowed]
    assert not wrong, f"{module}.py imports {wrong}"


def test_media_does_no_io() -> None:
    wrong = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in modules("media")
        for name in sorted(imported(path))
        if name.split(".")[0] in MEDIA_FORBIDS
    ]
    assert not wrong, "\n".join(wrong)


def test_every_layer_is_known() -> None:
    """A new top-level package must be given its place in MAY_USE."""
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(MAY_USE), packages
    assert {p.stem for p in PACKAGE.glob("*.py")} == set(TOP_MODULES)


def test_the_checker_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    """The walk resolves `..x` and finds imports inside functions."""
    source = PACKAGE / "control" / "actions" / "params.py"
    assert "vodedge.control.calls" in imported(source)
    lazy = PACKAGE / "node" / "serve.py"
    assert "vodedge.control.api" in imported(lazy)
