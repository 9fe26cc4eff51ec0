"""End to end: real node processes on a real anvil chain, and in-process swarms on eth-tester.

These run the same launcher a user runs (`medswarm swarm`): real libp2p hosts on loopback,
real compiled Solidity, real torch training on the UCI heart hospitals or breast-cancer shards.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from incentive.anvil import Anvil, ToolMissing, anvil_binary
from incentive.chain import connect
from node.launcher import LocalSwarm, SwarmPlan
from node.report import SwarmReport


def _anvil_or_skip() -> None:
    try:
        anvil_binary()
    except ToolMissing as exc:
        pytest.skip(f"anvil not installed ({exc}); run scripts/setup.sh")


def _quiet(_: str) -> None:
    """Progress lines are for people; tests read the report."""


@pytest.mark.anvil
@pytest.mark.slow
def test_four_hospital_processes_on_anvil(tmp_path: Path) -> None:
    _anvil_or_skip()
    plan = SwarmPlan(nodes=4, rounds=10, out=tmp_path / "run", round_timeout=30)
    report = LocalSwarm(plan, say=_quiet).run()

    assert all(row.finished for row in report.rows)
    # Every node merged the same updates each round, so all hold the same model.
    assert len({row.model_digest for row in report.rows}) == 1
    assert report.mean_swarm_accuracy > report.mean_local_accuracy
    # The audit rebuilt the history from events and matched it with state and the nodes' logs.
    assert report.audit_ok, report.audit_mismatches
    assert sum(row.payout_wei for row in report.rows) + report.dust_wei == report.pool_wei
    assert 0 <= report.dust_wei < len(report.rows)
    assert sum(row.contribution for row in report.rows) > 0
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["audit_ok"] is True and len(saved["accuracy_per_round"]["cleveland"]) == 10
    assert (tmp_path / "run" / "accuracy.png").stat().st_size > 10_000


def _wait_for_round(swarm: LocalSwarm, config, round_no: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while len(swarm.metrics(config)) < round_no:
        assert time.monotonic() < deadline, f"{config.name} did not reach round {round_no}"
        time.sleep(0.2)


@pytest.mark.anvil
@pytest.mark.slow
def test_killed_node_is_left_out_then_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    _anvil_or_skip()
    plan = SwarmPlan(nodes=3, rounds=8, out=tmp_path / "run", round_timeout=6)
    swarm = LocalSwarm(plan, say=_quiet)
    with Anvil() as chain:
        w3 = connect(chain.url)
        prov, configs = swarm.prepare(w3, chain.url)
        victim, others = configs[2], configs[:2]
        try:
            for config in configs:
                swarm.start_node(config)
            _wait_for_round(swarm, victim, 2)
            swarm.kill_node(victim.name)
            killed_at = len(swarm.metrics(victim))
            for config in others:  # the others finish rounds without it, by the deadline
                _wait_for_round(swarm, config, killed_at + 2)
            swarm.start_node(victim)
            swarm.wait_for_nodes(configs, timeout=240)
        finally:
            swarm.stop_processes()
        summaries = [swarm.summary(c) for c in configs]
        report = swarm.finish(w3, prov, configs, summaries, 0.0)

    assert all(s is not None and s["rounds"] == plan.rounds for s in summaries)
    survivor_rounds = swarm.metrics(others[0])
    # Round killed_at + 2 ran entirely while the victim was down (it may have shared killed_at + 1).
    assert survivor_rounds[killed_at + 1]["heard"] == 1
    assert any(r["heard"] == 2 for r in survivor_rounds[killed_at + 2:])  # the restarted node is merged again
    log = (Path(victim.output_dir) / "node.log").read_text()
    assert f"resumed from checkpoint at round {killed_at}" in log
    assert "caught up: adopted round" in log
    assert report.audit_ok, report.audit_mismatches
    assert sum(row.payout_wei for row in report.rows) + report.dust_wei == report.pool_wei


def _in_process(tmp_path: Path, name: str, **kw) -> SwarmReport:
    plan = SwarmPlan(nodes=4, rounds=6, dataset="breast_cancer", merge="median", in_process=True,
                     out=tmp_path / name, round_timeout=20, **kw)
    return LocalSwarm(plan, say=_quiet).run()


@pytest.mark.slow
@pytest.mark.parametrize("attack", ["scale", "signflip"])
def test_poisoned_updates_under_median_change_little_and_earn_least(tmp_path: Path, attack: str) -> None:
    honest = _in_process(tmp_path, "honest")
    poisoned = _in_process(tmp_path, attack, attacks={3: attack})

    honest_acc = [r.test_accuracy for r in honest.rows[:3]]
    poisoned_acc = [r.test_accuracy for r in poisoned.rows[:3]]
    assert abs(sum(poisoned_acc) / 3 - sum(honest_acc) / 3) <= 0.02
    attacker, good = poisoned.rows[3], poisoned.rows[:3]
    assert all(attacker.contribution < row.contribution for row in good)
    assert all(attacker.payout_wei < row.payout_wei for row in good)
    assert poisoned.audit_ok and honest.audit_ok
