"""Stake, revenue after training, dust and reputation: every wei deposited is someone's, exactly."""

from __future__ import annotations

import pytest

from incentive.audit import audit, next_reputation
from incentive.errors import LedgerError
from incentive.ledger import FLAGGED, Reputation

from ledger_fixtures import Deployment, honest, make_deployment, run_round

AWKWARD = [1, 7, 13, 10000, 9973, 2, 0]  # seven members, contributions that divide nothing evenly
POOL = 10**18 + 1
INSTALMENTS = [1, 10**17 + 3, 333_333_333_333_333_337, 7, 5 * 10**16 + 11]


def closed_task(dep: Deployment, scores: list[int], pool: int = POOL) -> int:
    task = dep.new_task(quorum=2, fund=pool)
    run_round(dep, task, 1, honest(scores))
    dep.admin.close_task(task)
    return task


def test_stake_is_required_bonded_slashed_and_reclaimed():
    dep = make_deployment()
    task = dep.new_task(stake=1000, slash=600)
    with pytest.raises(LedgerError, match="NotBonded"):  # the round's first commit reads the task
        dep.members[0].commit(task, 1, "0x" + "11" * 32)
    other = dep.new_task(stake=1000, slash=600)
    dep.members[1].bond(other)
    dep.members[1].commit(other, 1, "0x" + "22" * 32)
    with pytest.raises(LedgerError, match="NotBonded"):  # later commits read the round word's copy
        dep.members[0].commit(other, 1, "0x" + "11" * 32)
    for m in dep.members:
        m.bond(task)
    assert [dep.admin.stake_of(task, dep.addr(i)) for i in range(4)] == [1000] * 4
    # round 1: member 3 flagged; round 2: member 3 flagged again (bond down to 0), member 2 lies
    run_round(dep, task, 1, honest([10, 20, 30, FLAGGED]))
    votes = honest([10, 20, 30, FLAGGED])
    votes[2] = {0: 0, 1: 0, 2: 10000, 3: 0}
    run_round(dep, task, 2, votes)
    assert [dep.admin.stake_of(task, dep.addr(i)) for i in range(4)] == [1000, 1000, 400, 0]
    assert [dep.admin.offences(task, dep.addr(i)) for i in range(4)] == [0, 0, 1, 2]
    info = dep.admin.task(task)
    assert info.pool == 10**18 + 600 + 400 + 600  # the slashes went into the pool
    dep.admin.close_task(task)
    assert [dep.members[i].reclaim_stake(task) for i in range(3)] == [1000, 1000, 400]
    with pytest.raises(LedgerError, match="NothingToReclaim"):
        dep.members[3].reclaim_stake(task)  # slashed to nothing
    with pytest.raises(LedgerError, match="NothingToReclaim"):
        dep.members[0].reclaim_stake(task)  # once
    paid = [dep.members[i].withdraw(task) for i in range(3)]
    dust = dep.admin.claim_dust(task) if dep.admin.task(task).dust else 0
    assert sum(paid) + dust == info.pool
    assert dep.w3.eth.get_balance(dep.admin.address) == 10**18 + 1000  # only the other task's pool and bond
    assert audit(dep.w3, dep.admin.address).ok


def test_a_commit_finds_every_bond_of_its_member_and_no_other():
    """A member's slot notes only its latest bond; commits in a task it bonded earlier read the
    task's account instead, and a bond in another task never stands in for this one."""
    dep = make_deployment()
    first, second, unbonded = (dep.new_task(stake=1000, slash=600) for _ in range(3))
    for task in (first, second):
        for m in dep.members:
            m.bond(task)
    for task in (first, second):  # second: the latest bond; first: read from the account
        run_round(dep, task, 1, honest([10, 20, 30, 40]))
        assert [dep.admin.contribution(task, dep.addr(i)) for i in range(4)] == [10, 20, 30, 40]
    with pytest.raises(LedgerError, match="NotBonded"):  # the round's first commit
        dep.members[0].commit(unbonded, 1, "0x" + "11" * 32)
    dep.members[1].bond(unbonded)
    dep.members[1].commit(unbonded, 1, "0x" + "22" * 32)
    with pytest.raises(LedgerError, match="NotBonded"):  # a later commit, member 0's latest bond elsewhere
        dep.members[0].commit(unbonded, 1, "0x" + "11" * 32)
    with pytest.raises(LedgerError, match="NotBonded"):
        dep.members[0].commit_and_vote(unbonded, 1, "0x" + "11" * 32, 0, [], [], model=None)
    dep.members[0].bond(unbonded)
    dep.members[0].commit(unbonded, 1, "0x" + "11" * 32)
    assert audit(dep.w3, dep.admin.address).ok


def test_revenue_in_instalments_splits_exactly_as_one_deposit():
    dep = make_deployment(n_members=7)
    once, parts = closed_task(dep, AWKWARD), closed_task(dep, AWKWARD)
    dep.outsider.pay_revenue(once, sum(INSTALMENTS))
    earners = [i for i, c in enumerate(AWKWARD) if c]
    paid_once = {i: dep.members[i].withdraw(once) for i in earners}
    paid_parts = {i: 0 for i in earners}
    for amount in INSTALMENTS:  # every member withdraws after every instalment (when it is owed anything)
        dep.outsider.pay_revenue(parts, amount)
        for i in earners:
            if dep.admin.owed(parts, dep.addr(i)):
                paid_parts[i] += dep.members[i].withdraw(parts)
    assert paid_parts == paid_once
    received = POOL + sum(INSTALMENTS)
    total = sum(AWKWARD)
    assert paid_once == {i: received * AWKWARD[i] // total for i in earners}
    assert dep.admin.received(parts) == dep.admin.received(once) == received
    dust = {t: dep.admin.claim_dust(t) for t in (once, parts)}
    assert dust[once] == dust[parts] == received - sum(paid_once.values()) > 0
    assert sum(paid_parts.values()) + dust[parts] == received  # to the wei
    with pytest.raises(LedgerError, match="NoDust"):
        dep.admin.claim_dust(parts)
    with pytest.raises(LedgerError, match="NothingOwed"):
        dep.members[0].withdraw(once)
    assert dep.w3.eth.get_balance(dep.admin.address) == 0
    assert audit(dep.w3, dep.admin.address).ok


def test_dust_claimed_between_instalments_never_overpays():
    """Dust is not monotone (c = 1, 2: 2 wei leave 1 wei of dust, 3 wei leave none), so floor(3 * c / 3)
    = 1 + 2 after 1 wei of dust was paid out would owe 4 wei of 3. A claim settles the entitlements
    so far (0 and 1), and later revenue is split from there."""
    dep = make_deployment(n_members=2)
    task = closed_task(dep, [1, 2], pool=2)
    assert dep.admin.task(task).dust == 1
    assert dep.admin.claim_dust(task) == 1
    dep.outsider.pay_revenue(task, 1)
    assert [dep.admin.owed(task, dep.addr(i)) for i in range(2)] == [0, 1]
    assert dep.members[1].withdraw(task) == 1
    assert dep.admin.task(task).dust == 1  # the new wei splits as 0 + 0, so it is dust again
    assert dep.admin.claim_dust(task) == 1
    assert dep.w3.eth.get_balance(dep.admin.address) == 0  # 3 wei in: 1 to member 1, 2 of dust
    assert audit(dep.w3, dep.admin.address).ok


def test_reputation_after_two_tasks():
    dep = make_deployment()
    start = dep.admin.reputation(dep.addr(0))
    assert start == Reputation(10000, 0, 0)
    first = dep.new_task()
    votes = honest([3000, 1000, 0, 4000])
    votes[3] = {0: 0, 1: 0, 2: 0, 3: 10000}  # member 3 lies, is a deviant: slashed (no stake: 0 wei)
    run_round(dep, first, 1, votes)
    dep.admin.close_task(first)
    # task 1: participants 0 and 1 (credited) and 3 (slashed); member 2 earned nothing and is untouched
    # relative contribution = c * participants * 10000 / total: 3000 * 3 * 10000 / 4000 = 22500, capped
    assert dep.admin.reputation(dep.addr(0)) == Reputation((3 * 10000 + 20000) // 4, 1, 0)
    assert dep.admin.reputation(dep.addr(1)) == Reputation((3 * 10000 + 7500) // 4, 1, 0)
    assert dep.admin.reputation(dep.addr(2)) == Reputation(10000, 0, 0)
    assert dep.admin.reputation(dep.addr(3)) == Reputation(7500, 1, 1)
    second = dep.new_task()
    run_round(dep, second, 1, honest([100, 100, 9800, 0]))
    dep.admin.close_task(second)
    # task 2: participants 0, 1, 2; member 2's relative share is capped at 20000
    assert dep.admin.reputation(dep.addr(0)) == Reputation(next_reputation(12500, 100, 3, 10000, False), 2, 0)
    assert dep.admin.reputation(dep.addr(2)) == Reputation((3 * 10000 + 20000) // 4, 1, 0)
    assert dep.admin.reputation(dep.addr(3)) == Reputation(7500, 1, 1)  # took no part
    report = audit(dep.w3, dep.admin.address)
    assert report.ok, report.format_table()
    assert report.reputations[dep.addr(0)]["tasks"] == 2


def test_reputation_as_of_a_tasks_creation_ignores_later_closes():
    """Nodes weigh merges by reputation read at their task's creation block: a task closing later
    changes the live value but not that one, so every node, whenever it joins, reads the same."""
    dep = make_deployment()
    first = dep.new_task()
    second = dep.new_task()  # created while `first` is still open: everyone at 10000
    votes = honest([3000, 1000, 0, 4000])
    votes[3] = {0: 0, 1: 0, 2: 0, 3: 10000}
    run_round(dep, first, 1, votes)
    dep.admin.close_task(first)
    block = dep.admin.task_created_block(second)
    assert dep.admin.reputation(dep.addr(3)) == Reputation(7500, 1, 1)
    assert dep.admin.reputation(dep.addr(3), block) == Reputation(10000, 0, 0)
    assert dep.admin.task_created_block(first) < block
    with pytest.raises(LedgerError, match="UnknownTask"):
        dep.admin.task_created_block(99)
