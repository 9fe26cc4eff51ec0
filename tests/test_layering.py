"""The layering rule of DESIGN.md: `p2p` and `incentive` never import each other or `node`."""

from __future__ import annotations

import ast
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
