"""Merged-model attestations: counted once per member per round, rebuilt by the audit from events."""

from __future__ import annotations

import json

import pytest
from web3.datastructures import AttributeDict

from incentive import audit as audit_module
from incentive.audit import audit
from incentive.errors import AlreadyScored

from ledger_fixtures import Deployment, digest_of, make_deployment

MODEL_A = digest_of("merged model", "A")
MODEL_B = digest_of("merged model", "B")
ZERO = "0x" + "00" * 32


@pytest.fixture(scope="module")
def run() -> tuple[Deployment, int]:
    """Round 1: members 0, 1, 2 attest A (0 and 1 through commitAndScore, 2 with no scores), 3 attests B;
    round 2 (open): member 0 attests nothing, member 1 the zero digest."""
    dep = make_deployment()
    task = dep.new_task(quorum=2)
    for i in range(4):
        dep.members[i].commit(task, 1, digest_of(task, 1, i))
    for i in (0, 1):
        peers = [dep.addr(j) for j in range(4) if j != i]
        dep.members[i].commit_and_score(task, 2, digest_of(task, 2, i), 1, peers, [7000] * 3, model=MODEL_A)
    dep.members[2].submit_scores(task, 1, [], [], model=MODEL_A)  # no peers to score, still attests
    dep.members[3].submit_scores(task, 1, [dep.addr(0)], [6000], model=MODEL_B)
    for i in (2, 3):
        dep.members[i].commit(task, 2, digest_of(task, 2, i))
    dep.admin.finalize(task, 1)
    dep.members[0].submit_scores(task, 2, [dep.addr(1)], [5000])
    dep.members[1].submit_scores(task, 2, [dep.addr(0)], [5000], model=ZERO)
    return dep, task


def test_attestations_are_counted_per_round(run):
    dep, task = run
    assert dep.admin.model_attestations(task, 1, MODEL_A) == 3
    assert dep.admin.model_attestations(task, 1, MODEL_B) == 1
    assert dep.admin.model_attestations(task, 1, digest_of("never attested")) == 0
    # commitAndScore attests the round it scores (1), not the round it commits (2)
    assert dep.admin.model_attestations(task, 2, MODEL_A) == 0


def test_empty_score_sheet_with_a_model_is_accepted(run):
    dep, task = run
    assert dep.addr(2) in dep.admin.round_state(task, 1).scored


def test_zero_model_is_no_attestation(run):
    dep, task = run
    assert set(dep.admin.round_state(task, 2).scored) == {dep.addr(0), dep.addr(1)}
    assert dep.admin.model_attestations(task, 2, ZERO) == 0


def test_second_attestation_in_a_round_is_refused(run):
    dep, task = run
    with pytest.raises(AlreadyScored):
        dep.members[0].submit_scores(task, 2, [], [], model=MODEL_A)
    with pytest.raises(AlreadyScored):  # the whole transaction reverts, commit included
        dep.members[0].commit_and_score(task, 3, digest_of(task, 3, 0), 2, [], [], model=MODEL_A)
    assert dep.admin.model_attestations(task, 2, MODEL_A) == 0
    assert dep.admin.commitment(task, 3, dep.addr(0)) is None


def test_audit_rebuilds_attestations_from_events(run):
    dep, task = run
    report = audit(dep.w3, dep.admin.address)
    assert report.ok, report.format_table()
    assert report.rounds[(task, 1)].attestations == {MODEL_A: 3, MODEL_B: 1}
    assert report.rounds[(task, 2)].attestations == {}
    rounds = {(r["task_id"], r["round"]): r for r in json.loads(report.to_json())["rounds"]}
    assert rounds[(task, 1)]["attestations"] == {MODEL_A: 3, MODEL_B: 1}


def test_audit_catches_attestations_that_disagree_with_state(run, monkeypatch):
    dep, task = run
    honest = audit_module.fetch_events

    def forged(*args, **kwargs):
        """Events as a lying log provider would serve them: member 3 attested A instead of B."""
        out = []
        for ev in honest(*args, **kwargs):
            if ev["event"] == "ScoresSubmitted" and ev["args"]["scorer"] == dep.addr(3):
                ev = AttributeDict({**ev, "args": AttributeDict({**ev["args"], "model": bytes.fromhex(MODEL_A[2:])})})
            out.append(ev)
        return out

    monkeypatch.setattr(audit_module, "fetch_events", forged)
    report = audit(dep.w3, dep.admin.address)
    assert sorted(m.what for m in report.mismatches) == [f"task {task} round 1 attestations of model {MODEL_A}"]
    assert (report.mismatches[0].expected, report.mismatches[0].actual) == (4, 3)
