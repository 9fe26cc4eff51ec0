"""Half the swarm colluding, with stake: the sponsor's referee decides, the colluders pay.

Four members on breast cancer, in process on eth-tester, each bonding 1 ETH; two of them vote for
each other and 0 for the rest in every round (`collude`). Without a referee no vector has a
strict majority and every round splits (credits nobody). With the referee node running, its
vote is each round's winner: the two honest members earn the pool, and the colluders' votes
deviate from the winner, so they earn nothing and lose a slash per round, paid into the pool.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from incentive.audit import audit
from incentive.chain import connect
from incentive.ledger import Ledger
from node.launcher import LocalSwarm, SwarmPlan
from node.rundir import RunFolder
from node.scenarios import PublishedSet, read_published_set, write_published_set
from scripts.bench.harness import pooled_validation_set
from tests.e2e.swarms import quiet

ROUNDS = 3
COLLUDERS = (2, 3)
STAKE, SLASH = 1.0, 0.25
WEI = 10**18


def _plan(out: Path, **kw) -> SwarmPlan:
    return SwarmPlan(nodes=4, rounds=ROUNDS, dataset="breast_cancer", merge="median", in_process=True, out=out,
                     round_timeout=8, seed=0, attacks={i: "collude" for i in COLLUDERS}, stake_eth=STAKE,
                     slash_eth=SLASH, **kw)


@pytest.mark.slow
def test_the_referee_decides_a_half_and_half_split_and_the_colluders_are_slashed(tmp_path: Path) -> None:
    # Merges weigh members by reputation too (all 10000 on a fresh ledger): the read at the task's
    # creation block runs on every node, and the referee's merge must still equal the members'.
    report = LocalSwarm(_plan(tmp_path, referee=True, node_overrides=("swarm.reputation_weight=true",)),
                        say=quiet).run()

    assert report.audit_ok, report.audit_mismatches
    assert report.rounds == {"credited": list(range(1, ROUNDS + 1))}
    honest = [r for i, r in enumerate(report.rows) if i not in COLLUDERS]
    colluders = [report.rows[i] for i in COLLUDERS]
    for row in colluders:
        assert row.payout_wei == 0 and row.contribution == 0
        assert row.deviant == tuple(range(1, ROUNDS + 1))
        assert row.slashed_wei == ROUNDS * int(SLASH * WEI)
    slashed = sum(r.slashed_wei for r in colluders)
    assert all(r.payout_wei > 0 and not r.deviant and not r.slashed_wei for r in honest)
    # The slashed stake went into the pool, and the honest members were paid all of it.
    assert report.pool_wei == int(10 * WEI) + slashed
    assert sum(r.payout_wei for r in honest) + report.dust_wei == report.pool_wei
    # The referee voted every round, and what it logged is what the chain holds (the audit
    # checked the logged votes); it was never paid nor bonded.
    referee = RunFolder(tmp_path / "referee")
    assert [row["round"] for row in referee.read_scores()] == list(range(1, ROUNDS + 1))
    assert referee.read_summary()["role"] == "referee"


class _AuditedSwarm(LocalSwarm):
    """The launcher's swarm, keeping the audit's table (what `medswarm audit` prints)."""

    table = ""

    def finish(self, w3, prov, *args):
        report = super().finish(w3, prov, *args)
        self.table = audit(w3, prov.contract).format_table()
        return report


@pytest.mark.slow
def test_with_the_sponsors_validation_set_the_referee_picks_the_honest_vector_of_each_split(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The referee holds the sponsor's published validation set (its digest on chain): it waits
    for the members' votes, sees them split two against two, and votes the vector the honest
    members voted, bit for bit, since the colluders' vector withholds the credit of two updates
    that help on the set. The audit shows each split and that the referee decided it."""
    caplog.set_level(logging.INFO, logger="node.engine")
    plan = _plan(tmp_path / "run", referee=True)
    validation = tmp_path / "sponsor" / "validation.npz"
    digest = write_published_set(validation, pooled_validation_set(plan))
    swarm = _AuditedSwarm(dataclasses.replace(plan, validation=validation), say=quiet)
    report = swarm.run()

    assert report.audit_ok, report.audit_mismatches
    assert report.rounds == {"credited": list(range(1, ROUNDS + 1))}
    assert report.refereed_splits == tuple(range(1, ROUNDS + 1))
    honest = [r for i, r in enumerate(report.rows) if i not in COLLUDERS]
    colluders = [report.rows[i] for i in COLLUDERS]
    assert all(r.payout_wei > 0 and not r.deviant and not r.slashed_wei for r in honest)
    assert all(r.payout_wei == 0 and r.deviant == tuple(range(1, ROUNDS + 1)) for r in colluders)
    assert sum(r.payout_wei for r in honest) + report.dust_wei == report.pool_wei
    # The referee's vote in each round is the honest members' vote, lane for lane.
    folders = [RunFolder(tmp_path / "run" / r.name) for r in honest]
    referee = RunFolder(tmp_path / "run" / "referee").read_scores()
    assert [row["round"] for row in referee] == list(range(1, ROUNDS + 1))
    for folder in folders:
        assert [row["scores"] for row in folder.read_scores()] == [row["scores"] for row in referee]
    assert swarm.table.count("members split, the referee decided") == 4 * ROUNDS
    # ... and it was the validation set that ruled the colluders' vector out, in every round
    decided = [r.getMessage() for r in caplog.records if "the sponsor's validation set decides" in r.getMessage()]
    assert len(decided) == ROUNDS
    assert all(re.search(r"node0\+node1 withholding 0\b", m) and re.search(r"node2\+node3 withholding [1-9]", m)
               and m.endswith("voting node0+node1's vector") for m in decided), decided
    assert digest.startswith("0x") and swarm.referee_config.chain.validation_file == str(validation.resolve())


def test_a_referee_refuses_a_validation_file_that_is_not_the_tasks(tmp_path: Path) -> None:
    """The task names the sponsor's set by its digest; a referee node given another file, or a
    file that is not there, stops with an error naming it instead of judging on other data."""
    import trio

    from node.engine import NodeError
    from node.runtime import build_node

    published = tmp_path / "validation.npz"
    write_published_set(published, PublishedSet(np.ones((4, 13), np.float32), np.array([0, 1, 0, 1])))
    other = tmp_path / "other.npz"
    write_published_set(other, PublishedSet(np.zeros((4, 13), np.float32), np.array([0, 1, 0, 1])))
    w3 = connect("eth-tester")
    swarm = LocalSwarm(SwarmPlan(nodes=2, rounds=1, in_process=True, out=tmp_path / "run", referee=True,
                                 validation=published), say=quiet)
    prov, _ = swarm.prepare(w3, "eth-tester")
    assert Ledger(w3, prov.contract, Account.from_key(prov.admin_key)).task(prov.task_id).validation_digest == \
        read_published_set(published).digest

    def load(path: Path) -> None:
        config = swarm.referee_config
        node = build_node(dataclasses.replace(config, chain=dataclasses.replace(config.chain,
                                                                              validation_file=str(path))), w3=w3)
        trio.run(node._load_members)

    load(published)
    with pytest.raises(NodeError, match=f"the task's validation-set digest is 0x[0-9a-f]{{64}}, the referee's set "
                                        f"\\({other}\\) hashes to 0x"):
        load(other)
    with pytest.raises(NodeError, match="chain.validation_file: validation set .*missing.npz: no such file"):
        load(tmp_path / "missing.npz")


def test_a_validation_set_needs_the_referee_and_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="validation set is the referee's"):
        SwarmPlan(out=tmp_path, validation=tmp_path / "v.npz").validate()
    with pytest.raises(ValueError, match="v.npz: no such file"):
        SwarmPlan(out=tmp_path, referee=True, validation=tmp_path / "v.npz").validate()


@pytest.mark.slow
def test_without_a_referee_the_same_collusion_splits_every_round(tmp_path: Path) -> None:
    report = LocalSwarm(_plan(tmp_path), say=quiet).run()

    assert report.audit_ok, report.audit_mismatches
    assert report.rounds == {"split": list(range(1, ROUNDS + 1))}
    assert all(r.payout_wei == 0 and r.contribution == 0 and not r.slashed_wei for r in report.rows)
    # Nobody earned anything: the sponsor may take the pool back (refund), stakes come back whole.
    assert report.dust_wei == report.pool_wei == int(10 * WEI)


def test_a_slash_above_the_stake_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="slash must lie between 0 and the stake"):
        LocalSwarm(SwarmPlan(out=tmp_path, stake_eth=1.0, slash_eth=2.0), say=quiet)


def test_members_bond_and_the_referee_does_not(tmp_path: Path) -> None:
    """Provisioning registers the referee as a member (so members let it connect) and names it
    the task's referee; every member node bonds the stake when it joins, the referee never."""
    import trio

    from node.runtime import build_node

    w3 = connect("eth-tester")
    swarm = LocalSwarm(SwarmPlan(nodes=2, rounds=1, dataset="breast_cancer", in_process=True, out=tmp_path,
                                 stake_eth=STAKE, slash_eth=SLASH, referee=True), say=quiet)
    prov, configs = swarm.prepare(w3, "eth-tester")
    admin = Ledger(w3, prov.contract, Account.from_key(prov.admin_key))
    task = admin.task(prov.task_id)
    assert task.referee == prov.referee.address and task.stake == int(STAKE * WEI)
    assert prov.referee.peer_id in {m.peer_id for m in admin.members()}

    async def join_all() -> None:
        for config in configs + [swarm.referee_config]:
            node = build_node(config, w3=w3)
            await node.duties.join(node.host.peer_id)

    trio.run(join_all)
    assert all(admin.bonded(prov.task_id, a) for a in prov.addresses)
    assert not admin.bonded(prov.task_id, prov.referee.address)
