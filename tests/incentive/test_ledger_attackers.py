"""Hostile receivers on the payout paths: re-entrancy gains nothing, a reverting receiver blocks nobody."""

from __future__ import annotations

import pytest

from incentive.audit import audit
from incentive.errors import LedgerError
from incentive.ledger import deploy_artifact, pack_vector, transact

from ledger_fixtures import digest_of, make_deployment, settle

STAKE = 10**15


def test_reentrant_and_reverting_receivers(attacker_artifacts):
    dep = make_deployment(n_members=2)
    w3, owner = dep.w3, dep.sponsor.account
    contracts = {}
    for name in ("ReentrantReceiver", "RevertingReceiver"):
        art = attacker_artifacts[name]
        address = deploy_artifact(w3, owner, art, dep.admin.address)
        contracts[name] = w3.eth.contract(address=address, abi=art.abi)
        dep.admin.register_member(address, f"12D3Koo{name}", name)
    task = dep.new_task(quorum=2, fund=10**18 + 1, stake=STAKE, slash=STAKE // 4)
    actors = [0, 1, "ReentrantReceiver", "RevertingReceiver"]

    def act(who, fn, *args, value=0):
        if who in contracts:
            return transact(w3, owner, getattr(contracts[who].functions, fn)(*args), value=value,
                            extra_abi=attacker_artifacts[who].abi)
        return dep.members[who].transact(fn, *args, value=value)

    for k, who in enumerate(actors):
        act(who, "bond", task, value=STAKE)
        act(who, "commit", task, 1, bytes.fromhex(digest_of("atk", k)[2:]), 0)
    rows = pack_vector([0, 1, 2, 3], [6000, 6100, 6200, 6300])
    for who in actors:
        act(who, "vote", task, 1, bytes(32), rows)
    settle(dep, task, 1)
    dep.admin.close_task(task)
    dep.outsider.pay_revenue(task, 10**17 + 3)

    reentrant = contracts["ReentrantReceiver"]
    owed = dep.admin.owed(task, reentrant.address)
    assert owed > 0
    act("ReentrantReceiver", "withdraw", task)
    assert reentrant.functions.attempts().call() >= 1  # it did try to re-enter
    assert reentrant.functions.successes().call() == 0
    assert reentrant.functions.received().call() == owed
    act("ReentrantReceiver", "reclaimStake", task)
    assert reentrant.functions.successes().call() == 0
    assert w3.eth.get_balance(reentrant.address) == owed + STAKE == reentrant.functions.received().call()
    with pytest.raises(LedgerError) as e:
        act("ReentrantReceiver", "withdraw", task)
    assert e.value.error == "NothingOwed"

    reverting = contracts["RevertingReceiver"]
    stuck = dep.admin.owed(task, reverting.address)
    for fn in ("withdraw", "reclaimStake"):
        with pytest.raises(LedgerError) as e:
            act("RevertingReceiver", fn, task)
        assert e.value.error == "TransferFailed"
    assert dep.admin.owed(task, reverting.address) == stuck  # still claimable later
    assert dep.admin.stake_of(task, reverting.address) == STAKE

    paid = [dep.members[i].withdraw(task) for i in range(2)]  # the others are not blocked
    back = [dep.members[i].reclaim_stake(task) for i in range(2)]
    dust = dep.admin.claim_dust(task) if dep.admin.task(task).dust else 0
    assert back == [STAKE, STAKE]
    assert sum(paid) + owed + stuck + dust == 10**18 + 1 + 10**17 + 3
    assert w3.eth.get_balance(dep.admin.address) == stuck + STAKE  # the refuser's share and bond, nothing else
    assert audit(w3, dep.admin.address).ok
