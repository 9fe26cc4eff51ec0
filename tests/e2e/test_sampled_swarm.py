"""A sampled swarm (more members than `swarm.exchange_all_up_to`) of node processes on anvil: each
node pulls only its chain-drawn partners' updates, votes the vector assembled from the
partner-score sheets, and the contract's majority rule credits the rounds despite a lying member."""

from __future__ import annotations

from pathlib import Path

import pytest

from incentive.ledger import Ledger
from node.launcher import LocalSwarm, SwarmPlan
from node.sampled import Draw, round_seed
from tests.e2e.swarms import anvil_or_skip, quiet

ZERO_MODEL = "0x" + "00" * 32


class ChainCheckedSwarm(LocalSwarm):
    """Reads what the test checks from the chain before the launcher closes the task."""

    def finish(self, w3, prov, configs, summaries, seconds):
        ledger = Ledger(w3, prov.contract)
        self.terms = ledger.task(prov.task_id).exchange
        self.draws, self.votes = {}, {}
        for r in range(1, self.plan.rounds + 1):
            block = ledger.round_opening_block(prov.task_id, r)  # the draw, from chain data alone
            self.draws[r] = Draw.make(round_seed(block, prov.task_id), r, list(prov.addresses), self.terms.partners)
            self.votes[r] = ledger.votes(prov.task_id, r)
        self.name_of = {a.lower(): n for a, n in zip(prov.addresses, prov.names)}
        self.configs, self.addresses = configs, prov.addresses
        return super().finish(w3, prov, configs, summaries, seconds)


@pytest.mark.anvil
@pytest.mark.slow
def test_six_processes_with_two_partners_each_pull_only_their_draw_and_get_credits(tmp_path: Path) -> None:
    anvil_or_skip()
    rounds = 3
    plan = SwarmPlan(nodes=6, rounds=rounds, dataset="breast_cancer", model="logreg", out=tmp_path / "run",
                     round_timeout=60, attacks={5: "liar"},
                     node_overrides=("swarm.exchange_all_up_to=4", "swarm.partners=2"))
    swarm = ChainCheckedSwarm(plan, say=quiet)
    report = swarm.run()

    assert all(row.finished for row in report.rows)
    assert swarm.terms.exchange_all_up_to == 4 and swarm.terms.partners == 2
    for r in range(1, rounds + 1):
        for i in range(plan.nodes):
            row = swarm.metrics(swarm.configs[i])[r - 1]
            me = swarm.addresses[i].lower()
            assert row["round"] == r and row["expected"] == 2
            assert set(row["merged"]) == {swarm.name_of[p] for p in swarm.draws[r].partners[me]}, (r, i)
        votes = swarm.votes[r]
        assert len(votes) == plan.nodes and all(v.model == ZERO_MODEL for v in votes)  # no swarm model attested
        assert len({v.vote_hash for v in votes}) == 1  # every node assembled the same vector
    assert report.audit_ok, report.audit_mismatches
    assert report.rounds.get("credited") == list(range(1, rounds + 1))
    # the liar's sheets (0 for every partner) flag nobody and make nobody a deviant
    assert not any(row.flagged or row.deviant for row in report.rows)
    assert sum(row.contribution > 0 for row in report.rows[:5]) >= 4
