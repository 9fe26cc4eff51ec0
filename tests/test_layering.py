"""The layering rule of DESIGN.md: `p2p` and `incentive` never import each other or `node`.

And the import hygiene that keeps one way to run the code: packages are imported from the
repository root (installed, `python -m`, or pytest's `pythonpath`), so no file edits `sys.path`,
and nothing outside tests/ imports from tests/.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "p2p": {"node", "incentive", "torch", "web3"},
    "incentive": {"node", "p2p", "torch", "libp2p"},
}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            names.update(alias.name.split(".")[0] for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module and item.level == 0:
            names.add(item.module.split(".")[0])
    return names


def _python_files() -> list[Path]:
    """Every Python file of the project (not node_modules, not hidden folders such as .venv)."""
    found = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
        found += [Path(folder) / f for f in files if f.endswith(".py")]
    return sorted(found)


def _touches_sys_path(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    return any(
        (isinstance(item, ast.Attribute) and item.attr == "path"
         and isinstance(item.value, ast.Name) and item.value.id == "sys")
        or (isinstance(item, ast.ImportFrom) and item.module == "sys" and any(a.name == "path" for a in item.names))
        for item in ast.walk(tree)
    )


def test_no_file_touches_sys_path() -> None:
    assert [str(p.relative_to(ROOT)) for p in _python_files() if _touches_sys_path(p)] == []


def test_nothing_outside_tests_imports_from_tests() -> None:
    outside = [p for p in _python_files() if p.relative_to(ROOT).parts[0] != "tests"]
    assert outside, "no Python sources found outside tests/"
    assert [str(p.relative_to(ROOT)) for p in outside if "tests" in _imported_top_levels(p)] == []


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_lower_layers_do_not_import_upward_or_sideways(package: str) -> None:
    sources = sorted((ROOT / package).rglob("*.py"))
    assert sources, f"{package}/ has no Python sources"
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & FORBIDDEN[package])
        for path in sources
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_torch_is_pinned_to_the_cpu_wheel() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert '"torch==2.13.0"' in text
