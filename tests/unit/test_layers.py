"""The layout's rules, read from the source: `core/` and `sim/` do no I/O and depend on nothing
outside `core/`; nodes never import the TUI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import lanscatter

ROOT = Path(lanscatter.__file__).parent
# What a pure module may not import: anything that touches sockets, disk, processes or the clock.
FORBIDDEN = {"asyncio", "aiohttp", "socket", "os", "io", "pathlib", "subprocess", "threading", "time",
             "selectors", "ssl", "shutil", "tempfile", "signal", "logging"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", _modules("core") + _modules("sim"), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_layers_do_no_io(path: Path) -> None:
    top = {name.split(".")[0] for name in _imports(path)}
    assert not top & FORBIDDEN, f"{path.relative_to(ROOT)} imports {sorted(top & FORBIDDEN)}"


@pytest.mark.parametrize("path", _modules("core"), ids=lambda p: str(p.relative_to(ROOT)))
def test_core_depends_on_core_alone(path: Path) -> None:
    ours = {n for n in _imports(path) if n.startswith("lanscatter.")}
    outside = {n for n in ours if not n.startswith("lanscatter.core")}
    assert not outside, f"{path.relative_to(ROOT)} imports {sorted(outside)} from outside core/"


def test_sim_depends_on_core_and_sim_alone() -> None:
    for path in _modules("sim"):
        ours = {n for n in _imports(path) if n.startswith("lanscatter.")}
        assert all(n.startswith(("lanscatter.core", "lanscatter.sim")) for n in ours), path


def test_nodes_never_import_the_tui() -> None:
    for path in ROOT.rglob("*.py"):
        assert not any(n.startswith("lanscatter_tui") for n in _imports(path)), path
