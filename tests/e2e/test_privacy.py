"""End to end with DP-SGD: the budget on chain, epsilon per commit, and nodes that stop at it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from node.launcher import LocalSwarm, SwarmPlan
from tests.e2e.swarms import quiet


@pytest.mark.slow
def test_nodes_commit_their_epsilon_and_stop_training_at_the_task_budget(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.INFO)
    # ~114 rows per node, q = 32/114, 4 steps a round at noise 1.5: epsilon 1.2, 1.7, 2.1 after
    # rounds 1, 2, 3 (delta 1/n), so a budget of 2 allows two rounds of training.
    plan = SwarmPlan(nodes=3, rounds=3, dataset="breast_cancer", merge="median", in_process=True,
                     out=tmp_path / "run", round_timeout=30,
                     node_overrides=("dp.epsilon=2", "dp.noise_multiplier=1.5"))
    report = LocalSwarm(plan, say=quiet).run()
    assert report.ok, report.table()
    for row in report.rows:
        assert sorted(row.epsilon) == [1, 2], row  # committed in rounds 1 and 2, none in round 3
        assert 1.0 < row.epsilon[1] < row.epsilon[2] <= 2.0
        assert row.finished
    assert caplog.text.count("round 3: privacy budget reached") == 3
    assert "epsilon 1.7" in report.table()
