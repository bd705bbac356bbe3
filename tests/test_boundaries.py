"""Import boundaries: the engine and the network never touch Qt; the GUI loads torch only lazily."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "viewer"
QT = ("PySide6", "qasync", "shiboken6")
NON_GUI = sorted(p for p in ROOT.rglob("*.py") if "app" not in p.relative_to(ROOT).parts)
GUI = sorted((ROOT / "app").rglob("*.py"))


def _module(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module_level_only: bool) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    nodes = tree.body if module_level_only else list(ast.walk(tree))
    names = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", NON_GUI, ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_and_network_never_import_qt(path: Path) -> None:
    bad = [n for n in _imports(path, module_level_only=False) if n.split(".")[0] in QT]
    assert not bad, f"{path} imports {bad}"


@pytest.mark.parametrize("path", GUI, ids=lambda p: str(p.relative_to(ROOT)))
def test_gui_modules_do_not_import_torch_at_module_level(path: Path) -> None:
    bad = [n for n in _imports(path, module_level_only=True) if n.split(".")[0] == "torch"]
    assert not bad, f"{path} imports {bad} at module level"


def test_importing_the_gui_does_not_load_torch() -> None:
    """Transitively too: importing every GUI module leaves torch unloaded, so the window shows first."""
    mods = [_module(p) for p in GUI]
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print('TORCH' if loaded else 'CLEAN')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"QT_QPA_PLATFORM": "offscreen", **__import__("os").environ},
    )
    assert out.stdout.strip().endswith("CLEAN"), out.stdout + out.stderr


def test_importing_the_engine_does_not_load_qt() -> None:
    mods = [_module(p) for p in NON_GUI]
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('PySide6', 'qasync', 'shiboken6')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
