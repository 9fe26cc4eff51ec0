"""Every revert path of the ledger surfaces as the LedgerError named after the custom error."""

from __future__ import annotations

import pytest
from eth_account import Account

from incentive.errors import ERROR_CLASSES, AlreadyCommitted, LedgerError, NotMember
from incentive.ledger import pack_vector

from ledger_fixtures import digest_of, honest, make_deployment, run_round


@pytest.fixture(scope="module")
def world():
    """Task 1: round 1 committed by 0,1,2 (3 absent), 0 already voted; round 2 finalized; task 2 closed."""
    dep = make_deployment()
    t = dep.new_task(quorum=2)
    for i in range(3):
        dep.members[i].commit(t, 1, digest_of(t, 1, i))
    dep.members[0].vote(t, 1, [dep.addr(1)], [5000], model=None)
    run_round(dep, t, 2, honest([5000] * 4))
    closed = dep.new_task(quorum=2)
    run_round(dep, closed, 1, honest([10, 20]), committers=[0, 1])
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


def test_non_member_votes(world):
    dep, t, _ = world
    expect("NotMember", dep.outsider.transact, "vote", t, 1, bytes(32), pack_vector([0], [1]))


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


def test_vote_for_member_that_did_not_commit(world):
    dep, t, _ = world
    err = expect("PeerNotCommitted", dep.members[1].vote, t, 1, [dep.addr(3)], [9000], model=None)
    assert err.values["peer"] == 3


def test_voter_that_did_not_commit(world):
    dep, t, _ = world
    expect("NotCommitted", dep.members[3].vote, t, 1, [dep.addr(0)], [9000], model=None)


def test_vote_twice(world):
    dep, t, _ = world
    expect("AlreadyVoted", dep.members[0].vote, t, 1, [dep.addr(2)], [100], model=None)


def test_score_out_of_range(world):
    dep, t, _ = world
    expect("ScoreOutOfRange", dep.members[1].vote, t, 1, [dep.addr(0)], [10001], model=None)


def test_finalize_early(world):
    dep, t, _ = world
    expect("FinalizeTooEarly", dep.outsider.finalize, t, 1)


def test_finalize_twice(world):
    dep, t, _ = world
    expect("AlreadyFinalized", dep.outsider.finalize, t, 2)


def test_commit_or_vote_in_finalized_round(world):
    dep, t, _ = world
    expect("AlreadyFinalized", dep.members[0].commit, t, 2, digest_of("late"))
    expect("AlreadyFinalized", dep.members[0].transact, "vote", t, 2, bytes(32), [])


def test_finalize_round_without_commits(world):
    dep, t, _ = world
    expect("RoundNotStarted", dep.outsider.finalize, t, 7)


def test_withdraw_twice_with_nothing_new(world):
    dep, _, closed = world
    expect("NothingOwed", dep.members[0].withdraw, closed)


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
    expect("TooManyRows", dep.members[1].transact, "vote", t, 1, bytes(32), [0, 0, 0, 0, 1])
    expect("InvalidSlash", dep.admin.create_task, quorum=1, model_id="m", round_duration=1, stake=1, slash=2)


def test_stake_errors(world):
    dep, _, closed = world
    staked = dep.new_task(quorum=2, stake=1000, slash=100)
    expect("NotBonded", dep.members[0].commit, staked, 1, digest_of("unbonded"))
    expect("WrongStake", dep.members[0].transact, "bond", staked, value=999)
    expect("NotMember", dep.outsider.transact, "bond", staked, value=1000)
    dep.members[0].bond(staked)
    expect("AlreadyBonded", dep.members[0].bond, staked)
    expect("NoStake", dep.members[0].transact, "bond", world[1], value=0)
    expect("TaskNotClosed", dep.members[0].reclaim_stake, staked)
    expect("NothingToReclaim", dep.members[1].reclaim_stake, closed)
    expect("TaskNotClosed", dep.sponsor.pay_revenue, staked, 1)
    expect("ZeroAmount", dep.sponsor.pay_revenue, closed, 0)


def test_member_cap():
    dep = make_deployment(n_members=1)
    for i in range(63):
        dep.admin.register_member(Account.create().address, f"p{i}", f"h{i}")
    expect("TooManyMembers", dep.admin.register_member, Account.create().address, "p", "n")
    assert len(dep.admin.members()) == 64
