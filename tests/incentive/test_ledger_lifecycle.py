"""A whole 4-member task on eth-tester: votes on one vector, credits, payouts, dust, refunds, audit."""

from __future__ import annotations

import json
import threading

import pytest

from incentive.audit import audit
from incentive.chain import advance_time
from incentive.errors import LedgerError, RoundsPending

from ledger_fixtures import Deployment, digest_of, honest, make_deployment, run_round, settle

# the score vector every honest node computes, per round (self included)
ROUNDS = [[9000, 8000, 6000, 7100], [9000, 8200, 6200, 7000], [4, 2, 5, 10000]]
MODEL = digest_of("merged model")


@pytest.fixture(scope="module")
def run() -> tuple[Deployment, int]:
    """Round 1 by commit + vote, rounds 2 and 3 ride on the next round's commitAndVote; round 4 stays open."""
    dep = make_deployment()
    task = dep.new_task(quorum=3, fund=10**18 + 7)
    dep.admin.fund(task, 5)  # a second sponsor tops the pool up
    members = [dep.addr(j) for j in range(4)]
    for i in range(4):
        dep.members[i].commit(task, 1, digest_of(task, 1, i))
    for r, scores in enumerate(ROUNDS, start=1):
        for i in range(4):
            dep.members[i].commit_and_vote(task, r + 1, digest_of(task, r + 1, i), r, members, scores, model=MODEL)
        assert dep.admin.round_state(task, r).finalized  # the last vote, the winner's, finalized it
    dep.admin.close_task(task)
    return dep, task


def test_contributions_are_the_sums_of_the_winning_lanes(run):
    dep, task = run
    want = [sum(col) for col in zip(*ROUNDS)]
    assert [dep.admin.contribution(task, dep.addr(i)) for i in range(4)] == want
    assert dep.admin.total_contribution(task) == sum(want)


def test_views(run):
    dep, task = run
    members = dep.admin.members()
    assert [m.address for m in members] == [a.address for a in dep.accounts]
    assert members[2].peer_id == "12D3KooWPeer2" and members[2].name == "hospital-2" and members[2].active
    st = dep.admin.round_state(task, 1)
    assert st.finalized and set(st.committers) == set(st.scored) == {a.address for a in dep.accounts}
    assert st.deadline == st.start + 600
    assert st.outcome is not None and st.outcome.status == "credited"
    assert st.outcome.credits == {dep.addr(j): ROUNDS[0][j] for j in range(4)}
    open_round = dep.admin.round_state(task, 4)
    assert not open_round.finalized and open_round.scored == () and open_round.outcome is None
    assert dep.admin.commitment(task, 2, dep.addr(1)) == digest_of(task, 2, 1)
    assert dep.admin.commitment(task, 99, dep.addr(1)) is None
    assert dep.admin.commitments(task, 4) == {dep.addr(i): digest_of(task, 4, i) for i in range(4)}
    votes = dep.admin.votes(task, 2)
    assert [v.voter for v in votes] == [dep.addr(i) for i in range(4)]
    assert votes[0].scores == {dep.addr(j): ROUNDS[1][j] for j in range(4)} and votes[0].model == MODEL
    assert len({v.vote_hash for v in votes}) == 1
    assert dep.admin.model_attestations(task, 2, MODEL) == 4
    info = dep.admin.task(task)
    assert info.closed and info.quorum == 3 and info.model_id == "heart-uci-mlp" and info.pool == 10**18 + 12
    assert (info.stake, info.slash, info.referee, info.validation_digest, info.revenue) == (0, 0, None, None, 0)


def test_payouts_plus_dust_equal_pool_exactly(run):
    dep, task = run
    info = dep.admin.task(task)
    owed = [dep.admin.owed(task, dep.addr(i)) for i in range(4)]
    total = info.total_contribution
    assert owed == [info.pool * dep.admin.contribution(task, dep.addr(i)) // total for i in range(4)]
    before = [dep.w3.eth.get_balance(dep.addr(i)) for i in range(4)]
    paid = [m.withdraw(task) for m in dep.members]
    assert paid == owed
    for i in range(4):  # the member got it, minus its own gas
        assert dep.w3.eth.get_balance(dep.addr(i)) > before[i] + paid[i] - 10**16
    assert [dep.admin.withdrawn(task, dep.addr(i)) for i in range(4)] == paid
    dust = dep.admin.claim_dust(task)
    assert dust == info.dust and 0 < dust < 4
    assert sum(paid) + dust == info.pool
    assert dep.w3.eth.get_balance(dep.admin.address) == 0  # the contract holds nothing more
    assert [dep.admin.owed(task, dep.addr(i)) for i in range(4)] == [0] * 4


def test_audit_matches_honest_run_and_catches_tampering(run):
    dep, task = run
    report = audit(dep.w3, dep.admin.address)
    assert report.ok, report.format_table()
    want = [sum(col) for col in zip(*ROUNDS)]
    logged = {"contributions": {str(task): {dep.addr(i): want[i] for i in range(4)}},
              "credits": {str(task): {"1": {dep.addr(0): ROUNDS[0][0]}}}}
    assert audit(dep.w3, dep.admin.address, expectations=logged).ok
    tampered = json.loads(json.dumps(logged))
    tampered["contributions"][str(task)][dep.addr(2)] += 1
    bad = audit(dep.w3, dep.admin.address, expectations=tampered)
    assert not bad.ok and len(bad.mismatches) == 1
    assert dep.addr(2) in bad.mismatches[0].what
    assert "MISMATCH" in bad.format_table()
    data = json.loads(report.to_json())
    assert data["ok"] and data["tasks"][str(task)]["contributions"][dep.addr(0)] == want[0]
    assert {r["status"] for r in data["rounds"]} == {"credited", "open"}


def test_nobody_earned_sponsors_get_refunds():
    dep = make_deployment()
    task = dep.new_task(quorum=2, fund=3 * 10**17)
    dep.outsider.fund(task, 10**17)
    run_round(dep, task, 1, honest([0, 0, 0, 0]))
    dep.admin.close_task(task)
    info = dep.admin.task(task)
    assert info.total_contribution == 0 and info.dust == 0
    with pytest.raises(LedgerError, match="NoContribution"):
        dep.outsider.pay_revenue(task, 1)
    assert dep.sponsor.refund(task) == 3 * 10**17
    assert dep.outsider.refund(task) == 10**17
    assert dep.w3.eth.get_balance(dep.admin.address) == 0
    with pytest.raises(LedgerError) as e:
        dep.sponsor.refund(task)
    assert e.value.error == "NothingToRefund"
    assert audit(dep.w3, dep.admin.address).ok


def test_below_quorum_round_credits_nobody_after_the_voting_window():
    dep = make_deployment()
    task = dep.new_task(quorum=3, duration=60)
    vector = {0: 5000, 1: 5000}
    run_round(dep, task, 1, {0: vector, 1: vector}, committers=[0, 1], finalize=False)
    with pytest.raises(LedgerError) as e:
        dep.admin.finalize(task, 1)
    assert e.value.error == "FinalizeTooEarly"
    advance_time(dep.w3, 61)  # past the deadline, but votes may still come with round 2's commits
    with pytest.raises(LedgerError, match="FinalizeTooEarly"):
        dep.outsider.finalize(task, 1)
    advance_time(dep.w3, 60)  # the voting window (one more round duration) has closed
    outcome = dep.outsider.finalize(task, 1)
    assert outcome.status == "below_quorum" and outcome.credits == {dep.addr(0): 0, dep.addr(1): 0}
    assert dep.admin.contribution(task, dep.addr(0)) == 0
    assert audit(dep.w3, dep.admin.address).ok


def test_deadline_finalize_with_a_silent_committer_and_late_commit_rejected():
    dep = make_deployment()
    task = dep.new_task(quorum=2, duration=60)
    vector = {0: 4000, 1: 6000, 2: 5000}
    run_round(dep, task, 1, {0: vector, 1: vector}, committers=[0, 1, 2], finalize=False)
    advance_time(dep.w3, 61)
    with pytest.raises(LedgerError) as e:
        dep.members[3].commit(task, 1, digest_of("late"))
    assert e.value.error == "RoundExpired"
    advance_time(dep.w3, 60)
    outcome = dep.outsider.finalize(task, 1)  # 2 of 3 committers voted the vector: a majority
    assert outcome.status == "credited" and outcome.deviants == ()
    assert [dep.admin.contribution(task, dep.addr(i)) for i in range(3)] == [4000, 6000, 5000]


def test_closing_stops_a_round_in_progress():
    dep = make_deployment()
    task = dep.new_task(quorum=2)
    for i in range(2):
        dep.members[i].commit(task, 1, digest_of(1, i))
    dep.admin.close_task(task)
    for r in (1, 2):  # the open round (closed flag in its word) and the next (read from the task)
        with pytest.raises(LedgerError, match="TaskAlreadyClosed"):
            dep.members[2].commit(task, r, digest_of(r, 2))
    with pytest.raises(LedgerError, match="TaskAlreadyClosed"):
        dep.members[0].commit_and_vote(task, 2, digest_of(2, 0), 1, [], [], model=None)


def test_the_same_digest_twice_is_the_scoring_rule_s_business():
    """v3 keeps commitments in events only: a copied digest is not refused on chain (nodes flag it)."""
    dep = make_deployment()
    task = dep.new_task()
    d = digest_of("an update")
    dep.members[0].commit(task, 1, d)
    dep.members[1].commit(task, 1, d)
    assert dep.admin.commitments(task, 1) == {dep.addr(0): d, dep.addr(1): d}


def test_nobody_opens_a_round_before_the_previous_one_has_a_quorum():
    dep = make_deployment()
    task = dep.new_task(quorum=3, duration=60)
    dep.members[3].commit(task, 1, digest_of("early", 1))
    for r in (2, 5):  # a lone member cannot start the clocks of rounds the swarm has not reached
        with pytest.raises(LedgerError, match="RoundNotOpen"):
            dep.members[3].commit(task, r, digest_of("early", r))
    for i in (0, 1):
        dep.members[i].commit(task, 1, digest_of("honest", i))
    dep.members[3].commit(task, 2, digest_of("early", 2))  # round 1 has its quorum now
    assert dep.admin.round_state(task, 3).deadline == 0


def test_a_round_that_expired_below_its_quorum_does_not_end_the_task():
    dep = make_deployment()
    task = dep.new_task(quorum=3, duration=60)
    for i in (0, 1):  # two of a quorum of three: round 1 can never be credited
        dep.members[i].commit(task, 1, digest_of("slow start", i))
    with pytest.raises(LedgerError, match="RoundNotOpen"):  # round 1 is still open: wait for it
        dep.members[0].commit(task, 2, digest_of(2, 0))
    advance_time(dep.w3, 61)
    with pytest.raises(LedgerError, match="RoundNotOpen"):  # round 2 never started: 3 stays shut
        dep.members[0].commit(task, 3, digest_of(3, 0))
    vector = {0: 3000, 1: 3000, 2: 4000}  # round 1 is over: round 2 opens and, with its quorum, earns
    run_round(dep, task, 2, {i: vector for i in range(3)}, committers=[0, 1, 2])
    assert dep.admin.round_state(task, 2).deadline > dep.admin.round_state(task, 1).deadline
    assert [dep.admin.contribution(task, dep.addr(i)) for i in range(3)] == [3000, 3000, 4000]
    assert audit(dep.w3, dep.admin.address).ok


def test_commit_and_vote_on_an_older_round_takes_two_events():
    dep = make_deployment(n_members=2)
    task = dep.new_task(quorum=2)
    both = [dep.addr(0), dep.addr(1)]
    for r in (1, 2):
        for i in range(2):
            dep.members[i].commit(task, r, digest_of(r, i))
    for i in range(2):  # commit round 3, vote on round 1 (not round 2): Committed + Voted
        dep.members[i].commit_and_vote(task, 3, digest_of(3, i), 1, both, [5, 6], model=None)
    assert dep.admin.commitments(task, 3) == {dep.addr(i): digest_of(3, i) for i in range(2)}
    assert [v.voter for v in dep.admin.votes(task, 1)] == both and dep.admin.votes(task, 2) == []
    assert settle(dep, task, 1).credits == {dep.addr(0): 5, dep.addr(1): 6}
    assert audit(dep.w3, dep.admin.address).ok


def test_round_words_are_recycled_only_after_finalize_and_old_rounds_come_from_events():
    dep = make_deployment(n_members=2)
    task = dep.new_task(quorum=2)
    ring = dep.admin.contract.functions.RING().call()
    for r in range(1, ring + 1):
        for i in range(2):
            dep.members[i].commit(task, r, digest_of(r, i))
    with pytest.raises(RoundsPending) as e:  # round 1's word is still needed: it is not finalized
        dep.members[0].commit(task, ring + 1, digest_of(ring + 1, 0))
    assert e.value.values == {"round": 1}
    advance_time(dep.w3, 1200)
    assert dep.outsider.finalize(task, 1).status == "split"  # nobody voted: no majority
    for i in range(2):
        dep.members[i].commit_and_vote(task, ring + 1, digest_of(ring + 1, i), ring, [dep.addr(0), dep.addr(1)],
                                       [10, 20], model=None)
    recycled = dep.admin.round_state(task, 1)  # its word now holds round RING + 1
    assert recycled.committers == (dep.addr(0), dep.addr(1)) and recycled.finalized
    assert recycled.start > 0 and recycled.deadline == recycled.start + 600
    assert recycled.outcome is not None and recycled.outcome.status == "split"
    assert dep.admin.round_state(task, ring + 1).committers == (dep.addr(0), dep.addr(1))
    assert audit(dep.w3, dep.admin.address).ok


def test_threads_share_one_connection():
    dep = make_deployment()
    task = dep.new_task()
    errors = []
    in_step = threading.Barrier(4)  # as nodes do: nobody opens round r + 1 before round r has its commits

    def node(i: int) -> None:
        try:
            for r in range(1, 4):
                dep.members[i].commit(task, r, digest_of(r, i))
                in_step.wait(timeout=30)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=node, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(len(dep.admin.committers(task, r)) == 4 for r in range(1, 4))
