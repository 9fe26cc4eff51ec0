"""A sampled swarm (more members than `swarm.exchange_all_up_to`) through the real engine, hosts and
chain: each node pulls only its chain-drawn partners' updates, votes the vector assembled from the
partner-score sheets, and the contract's majority rule credits the rounds despite a lying member."""

from __future__ import annotations

from pathlib import Path

import pytest

from incentive.chain import connect
from incentive.ledger import Ledger
from node.launcher import LocalSwarm, SwarmPlan
from node.runtime import build_node
from node.sampled import Draw, round_seed
from tests.e2e.swarms import quiet, run_all

ZERO_MODEL = "0x" + "00" * 32


@pytest.mark.slow
def test_six_nodes_two_partners_each_pull_only_their_draw_and_get_credits(tmp_path: Path) -> None:
    rounds = 3
    plan = SwarmPlan(nodes=6, rounds=rounds, dataset="breast_cancer", model="logreg", in_process=True,
                     out=tmp_path / "run", round_timeout=20, attacks={5: "liar"},
                     node_overrides=("swarm.exchange_all_up_to=4", "swarm.partners=2"))
    swarm = LocalSwarm(plan, say=quiet)
    w3 = connect("eth-tester")
    prov, configs = swarm.prepare(w3, "eth-tester")
    summaries = run_all([build_node(c, w3=w3) for c in configs])
    assert len(summaries) == 6 and all(s["rounds"] == rounds for s in summaries)

    ledger = Ledger(w3, prov.contract)
    assert ledger.task(prov.task_id).exchange.partners == 2
    name_of = {a.lower(): n for a, n in zip(prov.addresses, prov.names)}
    for r in range(1, rounds + 1):
        # the draw, recomputed from chain data alone
        draw = Draw.make(round_seed(ledger.round_opening_block(prov.task_id, r), prov.task_id), r,
                         list(prov.addresses), 2)
        for address, config in zip(prov.addresses, configs):
            row = swarm.metrics(config)[r - 1]
            assert row["round"] == r and row["expected"] == 2
            assert set(row["merged"]) == {name_of[p] for p in draw.partners[address.lower()]}, (r, config.name)
        votes = ledger.votes(prov.task_id, r)
        assert len(votes) == 6 and all(v.model == ZERO_MODEL for v in votes)  # no swarm model is attested
        assert len({v.vote_hash for v in votes}) == 1  # every node assembled the same vector

    report = swarm.finish(w3, prov, configs, summaries, 0.0)
    assert report.audit_ok, report.audit_mismatches
    assert report.rounds.get("credited") == list(range(1, rounds + 1))
    # the liar's sheets (0 for every partner) flag nobody and leave nobody a deviant
    assert not any(row.flagged or row.deviant for row in report.rows)
    assert sum(row.contribution > 0 for row in report.rows[:5]) >= 4

