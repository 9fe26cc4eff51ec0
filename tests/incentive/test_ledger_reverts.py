"""Every revert path of the ledger surfaces as the LedgerError named after the custom error."""

from __future__ import annotations

import pytest
from eth_account import Account

from incentive.errors import ERROR_CLASSES, AlreadyCommitted, LedgerError, NotMember
from incentive.ledger import pack_scores

from ledger_fixtures import digest_of, make_deployment, run_round


@pytest.fixture(scope="module")
def world():
    """Task 1: round 1 committed by 0,1,2 (3 absent), 0 already scored; round 2 finalized; task 2 closed."""
    dep = make_deployment()
    t = dep.new_task(quorum=2)
    for i in range(3):
        dep.members[i].commit(t, 1, digest_of(t, 1, i))
    dep.members[0].submit_scores(t, 1, [dep.addr(1)], [5000])
    run_round(dep, t, 2, {i: {j: 5000 for j in range(4) if j != i} for i in range(4)})
    closed = dep.new_task(quorum=2)
    run_round(dep, closed, 1, {0: {1: 10}, 1: {0: 20}}, committers=[0, 1])
    dep.admin.close_task(closed)
    dep.members[0].withdraw(closed)
    return dep, t, closed


def expect(error: str, fn, *args, **kwargs):
    with pytest.raises(LedgerError) as e:
        fn(*args, **kwargs)
    assert e.value.error == error, str(e.value)
    assert type(e.value) is ERROR_CLASSES[error]
    return e.value


def test_non_member_commits(world):
    dep, t, _ = world
    err = expect("NotMember", dep.outsider.commit, t, 1, digest_of("x"))
    assert isinstance(err, NotMember) and err.values["caller"] == dep.outsider.account.address


def test_non_member_scores(world):
    dep, t, _ = world
    expect("NotMember", dep.outsider.transact, "submitScores", t, 1, bytes(32), pack_scores([0], [1]))


def test_removed_member_cannot_commit():
    dep = make_deployment()
    t = dep.new_task()
    dep.admin.remove_member(dep.addr(3))
    expect("NotMember", dep.members[3].commit, t, 1, digest_of("y"))
    assert not dep.admin.members()[3].active
    dep.admin.register_member(dep.addr(3), "12D3KooWNew", "hospital-3b")
    dep.members[3].commit(t, 1, digest_of("y"))
    assert dep.admin.members()[3].peer_id == "12D3KooWNew"


def test_double_commit(world):
    dep, t, _ = world
    err = expect("AlreadyCommitted", dep.members[1].commit, t, 1, digest_of("again"))
    assert isinstance(err, AlreadyCommitted)


def test_self_score(world):
    dep, t, _ = world
    expect("SelfScore", dep.members[1].submit_scores, t, 1, [dep.addr(1)], [9000])


def test_score_for_peer_that_did_not_commit(world):
    dep, t, _ = world
    err = expect("PeerNotCommitted", dep.members[1].submit_scores, t, 1, [dep.addr(3)], [9000])
    assert err.values["peer"] == 3


def test_scorer_that_did_not_commit(world):
    dep, t, _ = world
    expect("NotCommitted", dep.members[3].submit_scores, t, 1, [dep.addr(0)], [9000])


def test_score_twice(world):
    dep, t, _ = world
    expect("AlreadyScored", dep.members[0].submit_scores, t, 1, [dep.addr(2)], [100])


def test_score_out_of_range(world):
    dep, t, _ = world
    expect("ScoreOutOfRange", dep.members[1].submit_scores, t, 1, [dep.addr(0)], [10001])


def test_finalize_early(world):
    dep, t, _ = world
    expect("FinalizeTooEarly", dep.outsider.finalize, t, 1)


def test_finalize_twice(world):
    dep, t, _ = world
    expect("AlreadyFinalized", dep.outsider.finalize, t, 2)


def test_commit_or_score_in_finalized_round(world):
    dep, t, _ = world
    expect("AlreadyFinalized", dep.members[0].commit, t, 2, digest_of("late"))


def test_finalize_round_without_commits(world):
    dep, t, _ = world
    expect("RoundNotStarted", dep.outsider.finalize, t, 7)


def test_withdraw_twice(world):
    dep, _, closed = world
    expect("AlreadyWithdrawn", dep.members[0].withdraw, closed)


def test_withdraw_with_nothing_owed(world):
    dep, _, closed = world
    expect("NothingOwed", dep.members[2].withdraw, closed)  # never committed
    expect("NothingOwed", dep.outsider.withdraw, closed)  # not a member


def test_withdraw_before_close(world):
    dep, t, _ = world
    expect("TaskNotClosed", dep.members[0].withdraw, t)


def test_close_twice(world):
    dep, _, closed = world
    expect("TaskAlreadyClosed", dep.admin.close_task, closed)


def test_commit_after_close(world):
    dep, _, closed = world
    expect("TaskAlreadyClosed", dep.members[2].commit, closed, 5, digest_of("z"))


def test_fund_after_close_and_zero_fund(world):
    dep, t, closed = world
    expect("TaskAlreadyClosed", dep.sponsor.fund, closed, 1)
    expect("ZeroAmount", dep.sponsor.fund, t, 0)


def test_admin_only(world):
    dep, t, _ = world
    expect("NotAdmin", dep.members[0].register_member, dep.outsider.account.address, "p", "n")
    expect("NotAdmin", dep.members[0].close_task, t)
    expect("NotAdmin", dep.members[0].create_task, quorum=1, model_id="m", round_duration=1)
    expect("NotAdmin", dep.members[0].remove_member, dep.addr(1))


def test_bad_parameters(world):
    dep, t, _ = world
    expect("InvalidQuorum", dep.admin.create_task, quorum=0, model_id="m", round_duration=1)
    expect("InvalidRoundDuration", dep.admin.create_task, quorum=1, model_id="m", round_duration=0)
    expect("InvalidRound", dep.members[3].commit, t, 0, digest_of("r0"))
    expect("ZeroDigest", dep.members[3].commit, t, 3, "0x" + "00" * 32)
    expect("UnknownTask", dep.members[3].commit, 999, 1, digest_of("u"))
    expect("AlreadyMember", dep.admin.register_member, dep.addr(0), "p", "n")
    expect("UnknownMember", dep.admin.remove_member, dep.outsider.account.address)
    expect("EmptyPeerId", dep.admin.register_member, dep.outsider.account.address, "", "n")
    if dep.admin.task(world[2]).dust == 0:
        expect("NoDust", dep.admin.claim_dust, world[2])
    expect("TooManyRows", dep.members[1].transact, "submitScores", t, 1, bytes(32), [0, 0, 0, 0, 1])


def test_member_cap():
    dep = make_deployment(n_members=1)
    for i in range(63):
        dep.admin.register_member(Account.create().address, f"p{i}", f"h{i}")
    expect("TooManyMembers", dep.admin.register_member, Account.create().address, "p", "n")
    assert len(dep.admin.members()) == 64
