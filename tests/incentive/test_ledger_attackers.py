"""Hostile receivers on the payout path: re-entrancy gains nothing, a reverting receiver blocks nobody."""

from __future__ import annotations

import pytest

from incentive.errors import LedgerError
from incentive.ledger import deploy_artifact, pack_scores, transact

from ledger_fixtures import digest_of, make_deployment


def test_reentrant_and_reverting_receivers(attacker_artifacts):
    dep = make_deployment(n_members=2)
    w3, owner = dep.w3, dep.sponsor.account
    contracts = {}
    for name in ("ReentrantReceiver", "RevertingReceiver"):
        art = attacker_artifacts[name]
        address = deploy_artifact(w3, owner, art, dep.admin.address)
        contracts[name] = w3.eth.contract(address=address, abi=art.abi)
        dep.admin.register_member(address, f"12D3Koo{name}", name)
    task = dep.new_task(quorum=2, fund=10**18 + 1)
    slots = {m.address: m.index for m in dep.admin.members()}
    everyone = [dep.addr(0), dep.addr(1), *(c.address for c in contracts.values())]

    def act(who, fn, *args):
        if who in contracts:
            return transact(w3, owner, getattr(contracts[who].functions, fn)(*args),
                            extra_abi=attacker_artifacts[who].abi)
        return dep.members[who].transact(fn, *args)

    actors = [0, 1, "ReentrantReceiver", "RevertingReceiver"]
    for k, who in enumerate(actors):
        act(who, "commit", task, 1, bytes.fromhex(digest_of("atk", k)[2:]))
    for k, who in enumerate(actors):
        peers = [slots[a] for j, a in enumerate(everyone) if j != k]
        act(who, "submitScores", task, 1, bytes(32), pack_scores(peers, [6000 + 100 * k] * len(peers)))
    dep.admin.finalize(task, 1)
    dep.admin.close_task(task)

    reentrant = contracts["ReentrantReceiver"]
    owed = dep.admin.owed(task, reentrant.address)
    assert owed > 0
    act("ReentrantReceiver", "withdraw", task)
    assert reentrant.functions.attempts().call() >= 1  # it did try to re-enter
    assert reentrant.functions.successes().call() == 0
    assert reentrant.functions.received().call() == owed
    assert w3.eth.get_balance(reentrant.address) == owed
    with pytest.raises(LedgerError) as e:
        act("ReentrantReceiver", "withdraw", task)
    assert e.value.error == "AlreadyWithdrawn"

    reverting = contracts["RevertingReceiver"]
    stuck = dep.admin.owed(task, reverting.address)
    with pytest.raises(LedgerError) as e:
        act("RevertingReceiver", "withdraw", task)
    assert e.value.error == "TransferFailed"
    assert dep.admin.owed(task, reverting.address) == stuck  # still claimable later

    paid = [dep.members[i].withdraw(task) for i in range(2)]  # the others are not blocked
    dust = dep.admin.claim_dust(task) if dep.admin.task(task).dust else 0
    assert sum(paid) + owed + stuck + dust == 10**18 + 1
    assert w3.eth.get_balance(dep.admin.address) == stuck
