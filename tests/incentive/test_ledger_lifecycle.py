"""A whole 4-member task on eth-tester: rounds, medians, payouts, dust, refunds, audit."""

from __future__ import annotations

import json
import threading

import pytest

from incentive.audit import audit, median_credit
from incentive.chain import advance_time
from incentive.errors import DuplicateDigest, LedgerError

from ledger_fixtures import Deployment, digest_of, make_deployment, run_round

# scores[i] = what member i gives to its peers, three rounds
ROUNDS = [
    {0: {1: 8000, 2: 6000, 3: 7000}, 1: {0: 9000, 2: 6500, 3: 7200}, 2: {0: 8800, 1: 7900, 3: 7100},
     3: {0: 9100, 1: 8100, 2: 6100}},
    {0: {1: 8200, 2: 6000}, 1: {0: 9000, 2: 6600, 3: 7000}, 2: {0: 8700, 1: 8000, 3: 7000},
     3: {0: 9200, 1: 8300, 2: 6200}},
    {0: {1: 10000, 2: 0, 3: 1}, 1: {0: 3, 2: 5, 3: 7}, 2: {0: 9999, 1: 2, 3: 10000}, 3: {0: 4, 1: 4, 2: 4}},
]


def expected_contributions(rounds) -> dict[int, int]:
    totals = {i: 0 for i in range(4)}
    for scores in rounds:
        for j in range(4):
            totals[j] += median_credit([s[j] for s in scores.values() if j in s])
    return totals


@pytest.fixture(scope="module")
def run() -> tuple[Deployment, int]:
    dep = make_deployment()
    task = dep.new_task(quorum=3, fund=10**18 + 7)
    dep.admin.fund(task, 5)  # a second sponsor tops the pool up
    for r, scores in enumerate(ROUNDS, start=1):
        run_round(dep, task, r, scores)
    dep.admin.close_task(task)
    return dep, task


def test_contributions_are_median_sums(run):
    dep, task = run
    want = expected_contributions(ROUNDS)
    assert {i: dep.admin.contribution(task, dep.addr(i)) for i in range(4)} == want
    assert dep.admin.total_contribution(task) == sum(want.values())
    # round 1, member 0 received 9000, 8800, 9100 -> median 9000; round 2 member 3: 7000, 7000 -> 7000
    assert median_credit([9000, 8800, 9100]) == 9000


def test_views(run):
    dep, task = run
    members = dep.admin.members()
    assert [m.address for m in members] == [a.address for a in dep.accounts]
    assert members[2].peer_id == "12D3KooWPeer2" and members[2].name == "hospital-2" and members[2].active
    st = dep.admin.round_state(task, 1)
    assert st.finalized and set(st.committers) == set(st.scored) == {a.address for a in dep.accounts}
    assert st.deadline == st.start + 600
    assert dep.admin.commitment(task, 2, dep.addr(1)) == digest_of(task, 2, 1)
    assert dep.admin.commitment(task, 99, dep.addr(1)) is None
    assert dep.admin.score(task, 1, dep.addr(0), dep.addr(2)) == 6000
    assert dep.admin.score(task, 2, dep.addr(0), dep.addr(3)) is None
    info = dep.admin.task(task)
    assert info.closed and info.quorum == 3 and info.model_id == "heart-uci-mlp" and info.pool == 10**18 + 12


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
    dust = dep.admin.claim_dust(task)
    assert dust == info.dust and 0 < dust < 4
    assert sum(paid) + dust == info.pool
    assert dep.w3.eth.get_balance(dep.admin.address) == 0  # the contract holds nothing more
    assert [dep.admin.owed(task, dep.addr(i)) for i in range(4)] == [0] * 4


def test_audit_matches_honest_run_and_catches_tampering(run, tmp_path):
    dep, task = run
    report = audit(dep.w3, dep.admin.address)
    assert report.ok, report.format_table()
    want = expected_contributions(ROUNDS)
    logged = {"contributions": {str(task): {dep.addr(i): want[i] for i in range(4)}}}
    assert audit(dep.w3, dep.admin.address, expectations=logged).ok
    tampered = json.loads(json.dumps(logged))
    tampered["contributions"][str(task)][dep.addr(2)] += 1
    bad = audit(dep.w3, dep.admin.address, expectations=tampered)
    assert not bad.ok and len(bad.mismatches) == 1
    assert dep.addr(2) in bad.mismatches[0].what
    assert "MISMATCH" in bad.format_table()
    data = json.loads(report.to_json())
    assert data["ok"] and data["tasks"][str(task)]["contributions"][dep.addr(0)] == want[0]


def test_medians_odd_even_and_unscored():
    assert median_credit([]) == 0
    assert median_credit([5]) == 5
    assert median_credit([9, 1, 5]) == 5
    assert median_credit([1, 2, 4, 10]) == 3
    assert median_credit([1, 2]) == 1  # floor of 1.5
    dep = make_deployment(n_members=5)
    task = dep.new_task(quorum=2)
    # member 0 receives 4 scores (even), member 1 three (odd), member 4 nobody scores it
    run_round(dep, task, 1, {
        1: {0: 7001, 2: 10}, 2: {0: 7000, 1: 300}, 3: {0: 100, 1: 200}, 4: {0: 9000, 1: 100},
        0: {},  # an empty score sheet is allowed (marks member 0 as having scored)
    })
    c = [dep.admin.contribution(task, dep.addr(i)) for i in range(5)]
    assert c[0] == (7000 + 7001) // 2  # even count: floor of the mean of the two middles
    assert c[1] == 200  # odd count {300, 200, 100}: the middle one
    assert c[2] == 10 and c[3] == 0 and c[4] == 0


def test_one_liar_cannot_move_the_median_outside_honest_range():
    dep = make_deployment(n_members=5)
    task = dep.new_task(quorum=2)
    honest = {1: 6000, 2: 6100, 3: 6200}
    for lie in (0, 10000):
        rnd = 1 if lie == 0 else 2
        scores = {i: {0: s} for i, s in honest.items()}
        scores[4] = {0: lie}
        scores[0] = {}
        before = dep.admin.contribution(task, dep.addr(0))
        run_round(dep, task, rnd, scores, committers=[0, 1, 2, 3, 4])
        credit = dep.admin.contribution(task, dep.addr(0)) - before
        assert min(honest.values()) <= credit <= max(honest.values())


def test_nobody_earned_sponsors_get_refunds():
    dep = make_deployment()
    task = dep.new_task(quorum=2, fund=3 * 10**17)
    dep.outsider.fund(task, 10**17)
    run_round(dep, task, 1, {i: {j: 0 for j in range(4) if j != i} for i in range(4)})
    dep.admin.close_task(task)
    info = dep.admin.task(task)
    assert info.total_contribution == 0 and info.dust == 0
    assert dep.sponsor.refund(task) == 3 * 10**17
    assert dep.outsider.refund(task) == 10**17
    assert dep.w3.eth.get_balance(dep.admin.address) == 0
    with pytest.raises(LedgerError) as e:
        dep.sponsor.refund(task)
    assert e.value.error == "NothingToRefund"
    assert audit(dep.w3, dep.admin.address).ok


def test_below_quorum_round_credits_nobody_after_deadline():
    dep = make_deployment()
    task = dep.new_task(quorum=3, duration=60)
    run_round(dep, task, 1, {0: {1: 5000}, 1: {0: 5000}}, committers=[0, 1], finalize=False)
    with pytest.raises(LedgerError) as e:
        dep.admin.finalize(task, 1)
    assert e.value.error == "FinalizeTooEarly"
    advance_time(dep.w3, 61)  # past the deadline, but scores may still come with round 2's commits
    with pytest.raises(LedgerError, match="FinalizeTooEarly"):
        dep.outsider.finalize(task, 1)
    advance_time(dep.w3, 60)  # the scoring window (one more round duration) has closed
    dep.outsider.finalize(task, 1)
    assert dep.admin.contribution(task, dep.addr(0)) == 0
    assert audit(dep.w3, dep.admin.address).ok


def test_deadline_finalize_with_partial_scores_and_late_commit_rejected():
    dep = make_deployment()
    task = dep.new_task(quorum=2, duration=60)
    run_round(dep, task, 1, {0: {1: 4000, 2: 6000}, 1: {0: 5000}}, committers=[0, 1, 2], finalize=False)
    advance_time(dep.w3, 61)
    with pytest.raises(LedgerError) as e:
        dep.members[3].commit(task, 1, digest_of("late"))
    assert e.value.error == "RoundExpired"
    advance_time(dep.w3, 60)
    dep.outsider.finalize(task, 1)
    assert [dep.admin.contribution(task, dep.addr(i)) for i in range(3)] == [5000, 4000, 6000]


def test_copied_digest_is_rejected():
    dep = make_deployment()
    task = dep.new_task()
    d = digest_of("an update")
    dep.members[0].commit(task, 1, d)
    with pytest.raises(DuplicateDigest) as e:
        dep.members[1].commit(task, 1, d)
    assert e.value.values["committedBy"] == dep.addr(0)
    # many commits in one round: the bloom filter's exact fallback never rejects distinct digests
    for i in range(1, 4):
        dep.members[i].commit(task, 1, digest_of("distinct", i))
    assert len(dep.admin.committers(task, 1)) == 4
    dep.members[1].commit(task, 2, d)  # another round is another matter


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


def test_commit_and_score_in_one_transaction():
    dep = make_deployment()
    task = dep.new_task()
    for i in range(4):
        dep.members[i].commit(task, 1, digest_of(1, i))
    for i in range(4):
        peers = [dep.addr(j) for j in range(4) if j != i]
        dep.members[i].commit_and_score(task, 2, digest_of(2, i), 1, peers, [5000 + i] * 3)
    dep.admin.finalize(task, 1)
    assert dep.admin.round_state(task, 2).committers and not dep.admin.round_state(task, 2).finalized
    assert dep.admin.contribution(task, dep.addr(0)) == 5002


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
