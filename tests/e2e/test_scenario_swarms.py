"""End to end: `medswarm swarm --scenario` runs a clinical scenario as node processes on anvil,
with the full ledger, and writes its report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.cli import main
from tests.e2e.swarms import anvil_or_skip


@pytest.mark.anvil
@pytest.mark.slow
def test_evaluation_layer_scenario_runs_as_processes_on_anvil(tmp_path: Path, capsys) -> None:
    """Three hospital processes adopt, each round, the member model that scores best on the ECG
    set the task publishes (its digest is on chain; a node holding another set would refuse)."""
    anvil_or_skip()
    out = tmp_path / "run"
    code = main(["swarm", "--scenario", "evaluation-layer", "--nodes", "3", "--rounds", "2",
                 "--round-timeout", "20", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "report.json").read_text())
    assert report["audit_ok"] is True
    rows = report["nodes"]
    assert len(rows) == 3 and all(r["finished"] for r in rows)
    assert len({r["model_digest"] for r in rows}) == 1  # every node adopted the same best model
    for name in ("node0", "node1", "node2"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["rounds"] == 2 and 0.0 <= summary["test_accuracy"] <= 1.0
        log = (out / name / "node.log").read_text()
        assert "validation-set digest" not in log  # the task named this node's published set
