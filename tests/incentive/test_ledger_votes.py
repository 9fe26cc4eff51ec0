"""Scoring as a vote on one vector: majorities, a lone liar, a colluding pair, a referee, flags."""

from __future__ import annotations

import pytest
from eth_account import Account
from web3.datastructures import AttributeDict

from incentive import audit as audit_module
from incentive.audit import audit
from incentive.chain import advance_time
from incentive.errors import AlreadyVoted, FinalizeTooEarly, NotCommitted, NotWinningVote, RoundNotStarted
from incentive.ledger import FLAGGED, decide, pack_vector, unpack_vector, vote_hash

from ledger_fixtures import digest_of, honest, make_deployment, run_round, settle

STAKE, SLASH = 10**16, 4 * 10**15
TRUE = {0: 6000, 1: 7000, 2: 8000, 3: 9000}  # what every honest node computes
LIE = {0: 0, 1: 0, 2: 10000, 3: 10000}  # members 2 and 3 crediting themselves


def staked(n_members: int = 4, **terms):
    dep = make_deployment(n_members=n_members)
    task = dep.new_task(stake=STAKE, slash=SLASH, **terms)
    for m in dep.members:
        m.bond(task)
    return dep, task


def credits(dep, task) -> list[int]:
    return [dep.admin.contribution(task, dep.addr(i)) for i in range(len(dep.members))]


def test_pack_and_unpack_a_vector_with_flags():
    rows = pack_vector([0, 5, 17], [0, FLAGGED, 10000])
    assert rows == [(1 << 0) | (0xFFFF << 80), 10001 << 16]
    assert unpack_vector(rows) == {0: 0, 5: FLAGGED, 17: 10000}
    with pytest.raises(ValueError):
        pack_vector([1], [0xFFFE])  # would be read as FLAGGED
    assert vote_hash(3, None, rows) != vote_hash(4, None, rows)


def test_majority_vote_credits_every_committer_its_lane():
    dep, task = staked()
    run_round(dep, task, 1, honest(list(TRUE.values())))
    assert credits(dep, task) == list(TRUE.values())
    assert [dep.admin.stake_of(task, dep.addr(i)) for i in range(4)] == [STAKE] * 4
    assert audit(dep.w3, dep.admin.address).ok


def test_lone_liar_is_a_deviant_gets_nothing_and_is_slashed():
    dep, task = staked()
    votes = honest(list(TRUE.values()))
    votes[3] = LIE
    run_round(dep, task, 1, votes, finalize=False)
    outcome = dep.outsider.finalize(task, 1)
    assert outcome.status == "credited" and outcome.deviants == (dep.addr(3),) and outcome.flagged == ()
    assert outcome.credits == {dep.addr(0): 6000, dep.addr(1): 7000, dep.addr(2): 8000, dep.addr(3): 0}
    assert credits(dep, task) == [6000, 7000, 8000, 0]  # the honest credits are unchanged
    assert dep.admin.stake_of(task, dep.addr(3)) == STAKE - SLASH
    assert dep.admin.offences(task, dep.addr(3)) == 1
    assert dep.admin.task(task).pool == 10**18 + SLASH
    report = audit(dep.w3, dep.admin.address)
    assert report.ok, report.format_table()
    assert report.rounds[(task, 1)].slashes == [(dep.addr(3), SLASH, "deviant")]
    assert "slashed deviant" in report.format_table()


def test_colluding_pair_of_four_splits_the_round():
    dep, task = staked()
    votes = honest(list(TRUE.values()))
    votes[2] = votes[3] = LIE
    run_round(dep, task, 1, votes, finalize=False)
    receipt_outcome = dep.outsider.finalize(task, 1)
    assert receipt_outcome.status == "split"
    assert receipt_outcome.credits == {dep.addr(i): 0 for i in range(4)} and receipt_outcome.deviants == ()
    assert credits(dep, task) == [0, 0, 0, 0]
    assert [dep.admin.stake_of(task, dep.addr(i)) for i in range(4)] == [STAKE] * 4  # nobody slashed
    event = dep.admin.contract.events.RoundFinalized().get_logs(from_block=0)[-1]["args"]
    assert event["status"] == 2 and event["voteHash"] == bytes(32)  # SPLIT, visible to everyone
    report = audit(dep.w3, dep.admin.address)
    assert report.ok and report.rounds[(task, 1)].status == "split"
    assert "split" in report.format_table()


def test_colluding_pair_with_a_referee_the_referee_decides():
    referee = Account.create()
    dep = make_deployment()
    dep.admin.w3.eth.send_transaction({"from": dep.admin.w3.eth.accounts[0], "to": referee.address,
                                       "value": 10**18})
    task = dep.new_task(stake=STAKE, slash=SLASH, referee=referee.address, validation_digest=digest_of("val set"))
    for m in dep.members:
        m.bond(task)
    run_round(dep, task, 1, {}, finalize=False)  # everyone commits
    ref = dep.admin.with_account(referee, name="referee")
    ref.vote(task, 1, [dep.addr(j) for j in TRUE], list(TRUE.values()), model=None)  # votes without committing
    with pytest.raises(AlreadyVoted):
        ref.vote(task, 1, [], [], model=None)
    with pytest.raises(RoundNotStarted):  # not even the referee reaches ahead of the swarm
        ref.vote(task, 50, [], [], model=None)
    for i, vector in enumerate([TRUE, TRUE, LIE, LIE]):  # the last vote is a loser's: nothing finalized yet
        dep.members[i].vote(task, 1, [dep.addr(j) for j in vector], list(vector.values()), model=None)
    outcome = settle(dep, task, 1)
    assert outcome.status == "credited" and set(outcome.deviants) == {dep.addr(2), dep.addr(3)}
    assert credits(dep, task) == [6000, 7000, 0, 0]
    assert [dep.admin.stake_of(task, dep.addr(i)) for i in range(4)] == [STAKE, STAKE, STAKE - SLASH, STAKE - SLASH]
    info = dep.admin.task(task)
    assert info.referee == referee.address and info.validation_digest == digest_of("val set")
    report = audit(dep.w3, dep.admin.address)
    assert report.ok
    # the split among the members, and who decided it, from the events alone
    rh = report.rounds[(task, 1)]
    assert (rh.members_split, rh.decided_by) == (True, "referee")
    assert report.format_table().count("members split, the referee decided") == 4
    assert report.to_dict()["rounds"][0]["members_split"] is True


def test_the_referee_decides_over_a_majority_and_early_finalize_waits_for_it():
    referee = Account.create()
    dep = make_deployment()
    dep.admin.w3.eth.send_transaction({"from": dep.admin.w3.eth.accounts[0], "to": referee.address,
                                       "value": 10**18})
    decided, waited = dep.new_task(referee=referee.address), dep.new_task(referee=referee.address)
    for task in (decided, waited):
        run_round(dep, task, 1, honest(list(LIE.values())), finalize=False)
        assert not dep.admin.round_state(task, 1).finalized  # a unanimous vote still waits for the referee
    with pytest.raises(FinalizeTooEarly):
        dep.outsider.finalize(waited, 1)
    # the referee's vote, the round's last, decides and finalizes: every member voted another vector
    dep.admin.with_account(referee).vote(decided, 1, [dep.addr(j) for j in TRUE], list(TRUE.values()), model=None)
    outcome = dep.admin.round_state(decided, 1).outcome
    assert outcome.deviants == tuple(dep.addr(i) for i in range(4)) and set(outcome.credits.values()) == {0}
    # a referee that never votes: once the voting window closed, the majority's vector wins
    advance_time(dep.w3, 1200)
    assert dep.outsider.finalize(waited, 1).credits == {dep.addr(j): LIE[j] for j in LIE}
    report = audit(dep.w3, dep.admin.address)
    assert report.ok
    # the members agreed in both rounds: no split to show, whoever decided
    assert [(rh.members_split, rh.decided_by) for rh in report.rounds.values()] == [(False, "referee"),
                                                                                   (False, "majority")]
    assert "members split" not in report.format_table()


def test_a_minority_vector_is_not_the_winner():
    dep = make_deployment()
    task = dep.new_task()
    votes = honest(list(TRUE.values()))
    votes[3] = LIE
    run_round(dep, task, 1, votes, finalize=False)
    rows = pack_vector(list(LIE), list(LIE.values()))
    with pytest.raises(NotWinningVote) as e:  # the liar voted last: nothing was finalized for it
        dep.outsider.transact("finalize", task, 1, bytes(32), rows)
    assert e.value.values == {"voteHash": vote_hash(1, None, rows)}


def test_flagged_members_get_nothing_and_are_slashed():
    dep, task = staked()
    vector = {0: 6000, 1: FLAGGED, 2: 8000, 3: FLAGGED}  # 1 and 3 sent near-copies or nothing
    run_round(dep, task, 1, {i: vector for i in range(4)}, finalize=False)
    outcome = settle(dep, task, 1)
    assert outcome.flagged == (dep.addr(1), dep.addr(3)) and outcome.deviants == ()
    assert credits(dep, task) == [6000, 0, 8000, 0]
    assert [dep.admin.stake_of(task, dep.addr(i)) for i in range(4)] == [STAKE, STAKE - SLASH, STAKE, STAKE - SLASH]
    report = audit(dep.w3, dep.admin.address)
    assert report.ok and report.rounds[(task, 1)].flagged == [dep.addr(1), dep.addr(3)]


def test_decide_follows_the_contract_rules():
    class V:  # the fields decide reads
        def __init__(self, voter, h):
            self.voter, self.vote_hash = voter, h

    committers = ["a", "b", "c", "d"]
    assert decide([V("a", 1), V("b", 1), V("c", 1)], committers, 2, None)[0] == "credited"
    assert decide([V("a", 1), V("b", 1), V("c", 2), V("d", 2)], committers, 2, None) == ("split", None)
    assert decide([V("a", 1), V("x", 1), V("y", 1)], committers, 2, None) == ("split", None)  # outsiders do not count
    assert decide([V("a", 1), V("r", 2)], committers, 2, "r")[1].vote_hash == 2
    assert decide([V("a", 1), V("d", 2)], committers, 2, "d") == ("split", None)  # a committing referee is a member
    assert decide([], ["a"], 2, None) == ("below_quorum", None)


def test_who_may_vote():
    dep = make_deployment()
    task = dep.new_task()
    for i in range(3):
        dep.members[i].commit(task, 1, digest_of(task, 1, i))
    with pytest.raises(NotCommitted):
        dep.members[3].vote(task, 1, [], [], model=None)
    dep.members[0].vote(task, 1, [], [], model=digest_of("A"))  # an empty vector is still a vote
    with pytest.raises(AlreadyVoted):
        dep.members[0].vote(task, 1, [], [], model=digest_of("A"))
    with pytest.raises(AlreadyVoted):  # the whole transaction reverts, commit included
        dep.members[0].commit_and_vote(task, 2, digest_of(task, 2, 0), 1, [], [], model=None)
    assert dep.admin.commitment(task, 2, dep.addr(0)) is None
    assert dep.addr(0) in dep.admin.round_state(task, 1).scored


def test_attestations_are_counted_from_the_committers_votes():
    dep = make_deployment()
    task = dep.new_task()
    a, b = digest_of("merged model", "A"), digest_of("merged model", "B")
    run_round(dep, task, 1, {}, finalize=False)
    for i, model in enumerate([a, a, a, b]):
        dep.members[i].commit_and_vote(task, 2, digest_of(task, 2, i), 1, [], [], model=model)
    assert dep.admin.model_attestations(task, 1, a) == 3
    assert dep.admin.model_attestations(task, 1, b) == 1
    assert dep.admin.model_attestations(task, 2, a) == 0  # commitAndVote attests the round it votes on
    report = audit(dep.w3, dep.admin.address)
    assert report.ok and report.rounds[(task, 1)].attestations == {a: 3, b: 1}


def test_audit_catches_a_forged_vote(monkeypatch):
    dep = make_deployment()
    task = dep.new_task()
    run_round(dep, task, 1, honest(list(TRUE.values())))
    honest_events = audit_module.fetch_events
    forged_rows = pack_vector(list(LIE), list(LIE.values()))

    def forged(*args, **kwargs):
        """Events as a lying log provider would serve them: member 3 voted LIE."""
        out = []
        for ev in honest_events(*args, **kwargs):
            if ev["event"] == "Voted" and ev["args"]["voter"] == dep.addr(3):
                ev = AttributeDict({**ev, "args": AttributeDict({**ev["args"], "rows": forged_rows})})
            out.append(ev)
        return out

    monkeypatch.setattr(audit_module, "fetch_events", forged)
    report = audit(dep.w3, dep.admin.address)
    whats = {m.what for m in report.mismatches}
    assert f"task {task} round 1 deviants" in whats  # the chain credited member 3 and slashed nobody
    assert any(w.startswith(f"task {task} round 1 voters of") for w in whats)


def test_a_referee_that_commits_votes_as_a_member():
    dep = make_deployment()
    task = dep.new_task(referee=dep.addr(0))
    run_round(dep, task, 1, honest(list(TRUE.values())), finalize=False)
    assert dep.admin.contract.functions.refereeVote(task, 1).call() == bytes(32)
    with pytest.raises(FinalizeTooEarly):  # no referee vote in this round: the window must close
        dep.outsider.finalize(task, 1)
    advance_time(dep.w3, 1200)
    assert dep.outsider.finalize(task, 1).credits == {dep.addr(j): TRUE[j] for j in TRUE}
    assert audit(dep.w3, dep.admin.address).ok
