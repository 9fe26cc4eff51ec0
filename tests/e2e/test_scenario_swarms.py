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


@pytest.mark.anvil
@pytest.mark.slow
def test_grouped_scenario_runs_as_processes_on_anvil(tmp_path: Path, capsys) -> None:
    """Four hospital processes group themselves by their round-1 updates, each the same way (the
    two kinds of hospital), train one model per group from round 2, and still agree on one swarm
    state (every group's model) and one score vector: every round is credited on chain."""
    anvil_or_skip()
    out = tmp_path / "run"
    code = main(["swarm", "--scenario", "ecg-groups", "--rounds", "2", "--round-timeout", "30", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "report.json").read_text())
    assert report["audit_ok"] is True
    assert report["rounds"] == {"credited": [1, 2]}, report["rounds"]  # no split: the groups vote alike
    rows = {r["name"]: r for r in report["nodes"]}
    assert all(r["finished"] for r in rows.values())
    assert {n: tuple(r["group"]) for n, r in rows.items()} == {
        "node0": ("node0", "node2"), "node2": ("node0", "node2"),
        "node1": ("node1", "node3"), "node3": ("node1", "node3")}
    assert rows["node0"]["model_digest"] == rows["node2"]["model_digest"] != rows["node1"]["model_digest"]
    assert rows["node1"]["model_digest"] == rows["node3"]["model_digest"]
    states = {(out / n / "checkpoint.bin").read_bytes() for n in rows}
    assert len(states) == 1  # the state every node attested holds both groups' models
    assert "groups (from round 1's updates, one model each): node0, node2 | node1, node3" in printed
