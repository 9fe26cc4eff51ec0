"""The task's privacy budget on chain: terms fixed at creation, epsilon per commit, refusals."""

from __future__ import annotations

import pytest

from incentive.audit import audit
from incentive.errors import EpsilonDecreased, InvalidPrivacyTerms, PrivacyBudgetExceeded
from incentive.ledger import PrivacyTerms, epsilon_milli

from ledger_fixtures import digest_of, make_deployment


@pytest.fixture(scope="module")
def dep():
    return make_deployment()


def test_the_terms_are_fixed_at_creation_and_read_back(dep):
    terms = PrivacyTerms(epsilon=3.0, delta=1e-5, noise_multiplier=1.1, max_grad_norm=1.0, accountant="prv")
    t = dep.new_task(privacy=terms)
    assert dep.admin.task(t).privacy == terms
    assert dep.admin.task(dep.new_task()).privacy is None
    with pytest.raises(InvalidPrivacyTerms):
        dep.admin.create_task(quorum=2, model_id="m", round_duration=60, privacy=PrivacyTerms(epsilon=1.0, delta=1.0))
    with pytest.raises(InvalidPrivacyTerms):  # DP parameters but no budget
        dep.admin.create_task(quorum=2, model_id="m", round_duration=60, privacy=PrivacyTerms(epsilon=0.0, delta=1e-5))


def test_every_commit_carries_the_cumulative_epsilon_and_the_budget_is_enforced(dep):
    t = dep.new_task(privacy=PrivacyTerms(epsilon=2.0))
    for i, eps in enumerate((0.7, 0.7, 0.0)):  # member 2 reports none
        dep.members[i].commit(t, 1, digest_of(t, 1, i), epsilon=eps)
    assert dep.admin.epsilons(t, 1) == {dep.addr(0): 0.7, dep.addr(1): 0.7, dep.addr(2): 0.0}
    with pytest.raises(PrivacyBudgetExceeded) as e:
        dep.members[3].commit(t, 1, digest_of(t, 1, 3), epsilon=2.0005)
    assert e.value.values == {"member": dep.addr(3), "epsilonMilli": 2001, "budgetMilli": 2000}
    assert dep.admin.commitment(t, 1, dep.addr(3)) is None  # nothing of the refused commit stays
    dep.members[3].commit(t, 1, digest_of(t, 1, 3), epsilon=2.0)  # exactly the budget is allowed
    assert dep.admin.epsilon_of(t, dep.addr(3)) == 2.0
    for i in range(4):
        dep.members[i].vote(t, 1, [dep.addr(j) for j in range(4)], [2500] * 4, model=None)
    # round 2 rides on commitAndVote-free commits; a member may not report less than before
    with pytest.raises(EpsilonDecreased) as e:
        dep.members[0].commit(t, 2, digest_of(t, 2, 0), epsilon=0.5)
    assert (e.value.values["previousMilli"], e.value.values["epsilonMilli"]) == (700, 500)
    dep.members[0].commit(t, 2, digest_of(t, 2, 0), epsilon=1.4)
    assert dep.admin.epsilons(t, 2) == {dep.addr(0): 1.4}
    assert dep.admin.epsilon_of(t, dep.addr(0)) == 1.4


def test_commit_and_vote_carries_epsilon_too(dep):
    t = dep.new_task(privacy=PrivacyTerms(epsilon=1.0))
    for i in range(4):
        dep.members[i].commit(t, 1, digest_of(t, 1, i), epsilon=0.3)
    members = [dep.addr(j) for j in range(4)]
    dep.members[0].commit_and_vote(t, 2, digest_of(t, 2, 0), 1, members, [5000] * 4, model=None, epsilon=0.9)
    with pytest.raises(PrivacyBudgetExceeded):
        dep.members[1].commit_and_vote(t, 2, digest_of(t, 2, 1), 1, members, [5000] * 4, model=None, epsilon=1.2)
    assert dep.admin.epsilons(t, 2) == {dep.addr(0): 0.9}


def test_epsilon_is_rounded_up_to_milli_epsilon() -> None:
    assert [epsilon_milli(e) for e in (0.0, 2.0, 1.9999, 2.0000000000001, 0.0001)] == [0, 2000, 2000, 2000, 1]
    with pytest.raises(ValueError):
        epsilon_milli(float("nan"))


def test_the_audit_replays_the_budget_and_shows_epsilon_per_member_per_round(dep):
    report = audit(dep.w3, dep.admin.address)
    assert report.ok, report.format_table()
    t = max(report.tasks)  # the commitAndVote task: budget 1.0
    assert report.tasks[t].privacy["epsilonMilli"] == 1000
    assert report.rounds[(t, 2)].epsilons == {dep.addr(0): 900}
    assert report.tasks[t].epsilons[dep.addr(0)] == 900
    table = report.format_table()
    assert "privacy budget epsilon 1 per member" in table
    assert any(line.startswith(f"{t:>4}     2  hospital-0") and line.endswith("0.900") for line in table.splitlines())
