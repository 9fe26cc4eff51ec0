"""The run ends on the swarm's model of lowest pooled validation loss, the same on every node.

Four hospitals of the shipped heart split, logreg, 3 local epochs a round for 6 rounds: with these
settings the pooled validation loss is lowest before the last round (scripts.bench.quality:
round 4 of 6), so keeping the last model and keeping the chosen one differ.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.cli import main
from node.datadir import read_data_dir
from node.launcher import LocalSwarm, SwarmPlan
from node.records import weights_digest
from node.rundir import RunFolder
from node.trained import TrainedModel
from scripts.bench.quality import HEART_SPLIT
from tests.e2e.swarms import quiet

ROUNDS = 6


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("final") / "run"
    plan = SwarmPlan(nodes=4, rounds=ROUNDS, data=read_data_dir(HEART_SPLIT), in_process=True, out=out,
                     round_timeout=30, model="logreg", epochs=3, node_overrides=("swarm.final_model=best_val",))
    report = LocalSwarm(plan, say=quiet).run()
    assert all(r.finished for r in report.rows)
    return out


def _nodes(out: Path) -> list[RunFolder]:
    return [RunFolder(p) for p in sorted(out.iterdir()) if RunFolder(p).summary.exists()]


def test_every_node_ends_on_the_round_of_lowest_pooled_validation_loss(run: Path) -> None:
    nodes = _nodes(run)
    summaries = [n.read_summary() for n in nodes]
    metrics = [n.read_metrics() for n in nodes]
    assert len(nodes) == 4 and all(len(m) == ROUNDS for m in metrics)
    assert all(row["heard"] == 3 for m in metrics for row in m)  # every report pooled every round
    pooled = [sum(m[r]["val_loss"] * m[r]["val_rows"] for m in metrics) / sum(m[r]["val_rows"] for m in metrics)
              for r in range(ROUNDS)]
    best = 1 + min(range(ROUNDS), key=pooled.__getitem__)
    assert best < ROUNDS, pooled  # the premise: the last model is not the best one here
    assert {s["final_model"] for s in summaries} == {"best_val"}
    assert {s["final_round"] for s in summaries} == {best}
    chosen = {m[best - 1]["model_digest"] for m in metrics}  # round `best`'s model, as each node held it
    assert len(chosen) == 1 and {s["model_digest"] for s in summaries} == chosen
    assert chosen != {m[-1]["model_digest"] for m in metrics}
    for s, m in zip(summaries, metrics):  # the summary scores the chosen model, not the last one
        assert s["test_accuracy"] == pytest.approx(m[best - 1]["test_accuracy"])


def test_evaluate_and_export_use_the_chosen_model(run: Path, tmp_path: Path) -> None:
    node = _nodes(run)[0]
    chosen = node.read_summary()["final_round"]
    model = TrainedModel.from_run(node.path)
    assert json.loads(node.checkpoint_meta.read_text())["round"] == ROUNDS  # the last bundle holds the choice
    assert model.round == chosen and weights_digest(model.weights) == node.read_summary()["model_digest"]
    assert main(["export", str(node.path), "--out", str(tmp_path / "model")]) == 0
    assert json.loads((tmp_path / "model" / "model.json").read_text())["round"] == chosen
