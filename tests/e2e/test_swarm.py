"""End to end: real node processes on a real anvil chain, and in-process swarms on eth-tester.

These run the same launcher a user runs (`medswarm swarm`): real libp2p hosts on loopback,
real compiled Solidity, real torch training on the UCI heart hospitals or breast-cancer shards.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from incentive.anvil import Anvil
from incentive.chain import connect
from node.launcher import LocalSwarm, SwarmPlan
from node.rundir import RunFolder
from node.runtime import build_node
from tests.e2e.swarms import anvil_or_skip, quiet, run_all, wait_for_round


@pytest.mark.anvil
@pytest.mark.slow
def test_four_hospital_processes_on_anvil(tmp_path: Path) -> None:
    anvil_or_skip()
    # Local Adam at 0.01, the optimiser this test's swarm-above-local check was set with: on these
    # per-hospital test rows local-only training is strong (Switzerland's are 94% positive), and
    # with the default local SGD the swarm's mean over the four is 0.5-2 points below it for the
    # mlp (seeds 0 and 1, in process); the swarm's figures at the defaults are README's
    # "Learning quality" (scripts/bench/heartswarm.py).
    plan = SwarmPlan(nodes=4, rounds=10, out=tmp_path / "run", round_timeout=30, lr=0.01,
                     node_overrides=("training.optimizer=adam",))
    report = LocalSwarm(plan, say=quiet).run()

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


@pytest.mark.anvil
@pytest.mark.slow
def test_killed_node_is_left_out_then_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    anvil_or_skip()
    # An absent member costs the others absent_wait x 6 s a round: time for the victim to restart.
    plan = SwarmPlan(nodes=3, rounds=10, out=tmp_path / "run", round_timeout=6,
                     node_overrides=("swarm.absent_wait=0.5",))
    swarm = LocalSwarm(plan, say=quiet)
    with Anvil() as chain:
        w3 = connect(chain.url)
        prov, configs = swarm.prepare(w3, chain.url)
        victim, others = configs[2], configs[:2]
        try:
            for config in configs:
                swarm.start_node(config)
            wait_for_round(swarm, victim, 2)
            swarm.kill_node(victim.name)
            # The round it will resume from (its checkpoint is written just before its metrics line).
            killed_at = RunFolder(Path(victim.output_dir)).checkpoint_round()
            for config in others:  # the others finish rounds without it, by the deadline
                wait_for_round(swarm, config, killed_at + 2)
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
    log = RunFolder(Path(victim.output_dir)).log.read_text()
    assert f"resumed from checkpoint at round {killed_at}" in log
    assert "caught up: adopted round" in log
    # Whatever the kill left half-fetched, the nodes end on one model (minority nodes rejoin the majority).
    assert len({s["model_digest"] for s in summaries}) == 1
    assert report.audit_ok, report.audit_mismatches
    assert sum(row.payout_wei for row in report.rows) + report.dust_wei == report.pool_wei


@pytest.mark.slow
def test_a_node_that_starts_late_adopts_the_current_model(tmp_path: Path) -> None:
    plan = SwarmPlan(nodes=3, rounds=5, in_process=True, out=tmp_path / "run", round_timeout=3,
                     node_overrides=("swarm.stats_timeout=2",))
    swarm = LocalSwarm(plan, say=quiet)
    w3 = connect("eth-tester")
    prov, configs = swarm.prepare(w3, "eth-tester")
    nodes = [build_node(c, w3=w3) for c in configs]
    summaries: dict[int, dict] = {}

    async def run(i: int) -> None:
        summaries[i] = await nodes[i].run()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, 0)
            nursery.start_soon(run, 1)
            with trio.fail_after(120):
                while len(swarm.metrics(configs[0])) < 2:
                    await trio.sleep(0.1)
            nursery.start_soon(run, 2)

    trio.run(main)
    late = swarm.metrics(configs[2])
    assert late[0]["round"] >= 2  # it never ran round 1 itself: it adopted a merged model
    assert summaries[2]["rounds"] == plan.rounds
    # From the round it joined, it merged the same updates as the others: the same final model.
    assert summaries[2]["model_digest"] == summaries[0]["model_digest"] == summaries[1]["model_digest"]
    report = swarm.finish(w3, prov, configs, [summaries[i] for i in range(3)], 0.0)
    assert report.audit_ok, report.audit_mismatches


def _children_of(pid: int) -> set[int]:
    found: set[int] = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if int(fields.get("PPid", "0").strip()) == pid:
            child = int(status.parent.name)
            found |= {child} | _children_of(child)
    return found


@pytest.mark.anvil
@pytest.mark.slow
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    anvil_or_skip()
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "scripts/swarm.py", "--rounds", "50", "--out", str(tmp_path / "run")],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if "node processes started" in line:
                break
        children = _children_of(proc.pid)
        assert len(children) >= 5  # anvil and four nodes
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 130
    finally:
        proc.kill()
    time.sleep(0.5)
    alive = {pid for pid in children if Path(f"/proc/{pid}").exists()
             and "zombie" not in Path(f"/proc/{pid}/status").read_text()}
    assert alive == set()


class _SkewsRoundTwo:
    """A merge rule that gets round 2 slightly wrong on one node, as a half-failed fetch would."""

    def __init__(self, rule) -> None:
        self.rule, self.calls = rule, 0

    def at(self, base):
        return self  # the node binds its rule to the round's start (the `best` rule needs it)

    def merge(self, updates):
        self.calls += 1
        merged = self.rule.merge(updates)
        return {k: v + 1e-3 for k, v in merged.items()} if self.calls == 2 else merged


@pytest.mark.slow
@pytest.mark.parametrize("rounds", [4, 2], ids=["drift-mid-run", "drift-in-last-round"])
def test_a_node_whose_model_drifted_rejoins_the_majority(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, rounds: int) -> None:
    caplog.set_level(logging.INFO, logger="node.engine")
    swarm, configs, nodes = _three_in_process(tmp_path, rounds=rounds)
    nodes[2].rule = _SkewsRoundTwo(nodes[2].rule)
    summaries = run_all(nodes)
    digests = [[row["model_digest"] for row in swarm.metrics(c)] for c in configs]
    assert digests[2][1] != digests[0][1] == digests[1][1]  # round 2: node 2 drifted
    assert "round 2: a majority attested model" in caplog.text
    # It continued from the others' model (next round's merge, or the settling after the last).
    assert len({s["model_digest"] for s in summaries}) == 1
    if rounds == 2:  # it ends on the majority's choice of final model (node.selection)
        assert summaries[0]["model_digest"] == digests[0][summaries[0]["final_round"] - 1]
    else:
        # Its round 2 vote, held back from its round 3 commit while the models disagreed, went
        # out attesting the adopted model: it is not a deviant of a round it merged honestly.
        ledger, task = nodes[0].ledger, configs[0].chain.task_id
        outcome = ledger.round_state(task, 2).outcome
        assert outcome is not None and outcome.status == "credited" and outcome.deviants == ()
        assert "round 2: vote attests the adopted model" in caplog.text


@pytest.mark.slow
def test_an_update_its_author_will_not_serve_to_a_peer_arrives_through_another(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="node.engine")
    swarm, configs, nodes = _three_in_process(tmp_path, rounds=3)
    shunned = nodes[0].host.peer_id
    server = nodes[2].host._server  # fault injection: node 2 refuses node 0's blob requests
    allowed = server._is_allowed
    server._is_allowed = lambda peer: peer != shunned and allowed(peer)
    summaries = run_all(nodes)

    assert [row["heard"] for row in swarm.metrics(configs[0])] == [2, 2, 2]
    for r in range(3):  # every node merged all three updates: one model each round
        assert len({swarm.metrics(c)[r]["model_digest"] for c in configs}) == 1
    assert len({s["model_digest"] for s in summaries}) == 1
    assert f"update r1 of {configs[2].name} fetched from {configs[1].name} (PeerUnavailable)" in caplog.text
    assert server.rejected >= 3  # node 0 really was refused, each round


def _three_in_process(tmp_path: Path, rounds: int):
    plan = SwarmPlan(nodes=3, rounds=rounds, in_process=True, out=tmp_path / "run", round_timeout=10)
    swarm = LocalSwarm(plan, say=quiet)
    w3 = connect("eth-tester")
    _, configs = swarm.prepare(w3, "eth-tester")
    return swarm, configs, [build_node(c, w3=w3) for c in configs]


@pytest.mark.slow
def test_a_swarm_of_compressed_updates_learns_and_flags_no_honest_node(tmp_path: Path) -> None:
    """Ternary updates (top 5%, Rice-coded) through the real engine, hosts and chain: every node
    merges the same decoded updates, so all end on one model, and nobody is flagged. Local Adam at
    0.01, the default when this was written: with the SGD default the 6 ternary rounds reach
    0.76, short of the bound (measured)."""
    plan = SwarmPlan(nodes=4, rounds=6, dataset="breast_cancer", merge="geomedian", in_process=True,
                     out=tmp_path / "run", round_timeout=30, lr=0.01,
                     node_overrides=("swarm.compression=ternary", "swarm.compression_fraction=0.05",
                                     "training.optimizer=adam"))
    report = LocalSwarm(plan, say=quiet).run()
    assert all(row.finished for row in report.rows)
    assert len({row.model_digest for row in report.rows}) == 1
    assert report.mean_swarm_accuracy > 0.85
    assert report.audit_ok, report.audit_mismatches
    assert not any(row.flagged for row in report.rows)
