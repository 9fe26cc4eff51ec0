"""The task's referee: the sponsor's scorer, whose vote decides a round the members split.

A task may name a referee when it is created (`createTask(..., referee, validationDigest)`). It is
registered like a member, so members let it connect and release their round-r updates to it
before the commit window closes (it commits nothing, so it has nothing to copy into, and it is
paid nothing). In each round it collects the committed updates as a member would, computes the
same checkable score vector from them (`node.contribution`) and votes it alone. On chain the
referee's vector is the round's winner whenever it voted: a round whose committers split half
and half, as two colluders in a swarm of four do, is credited by the honest computation instead
of crediting nobody, and the colluders' votes deviate from it (credit 0, slashed if staked).
A vote names the merged model too, and a vote naming another model is another vote: the referee
attests the model the members announced whose weights are exactly its own merge of the round's
updates onto the previous model (it trains nothing and commits nothing, but it merges).

With the sponsor's published validation set (`load_validation`: `chain.validation_file`, or the
data set's own published set, its digest checked against the task's `validationDigest`), the
referee does not vote at once: it judges each kept update on the set, waits for the members'
votes (while the next round runs), and when they split it votes the members' vector that
`node.arbitration.choose` picks; with a strict majority it votes its recomputation as before.
It votes before a quarter of the voting window (one round after the deadline) is left, since
anyone may finalize the round without it once the window has closed.
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import trio

from incentive.ledger import LedgerError

from .arbitration import Candidate, choose, validation_value
from .bundle import optimizer_state, split_bundle
from .chainduties import wait_future
from .chainwriter import ChainOutage
from .consensus import MergeRecord
from .contribution import PublicValidation
from .evaluation import ValidationMismatch
from .scenarios import PublishedSet, published_set, read_published_set

if TYPE_CHECKING:
    from .engine import SwarmNode

__all__ = ["load_validation", "referee_rounds"]

VOTE_POLL_SECONDS = 1.0
# In a split round the referee votes before this share of the voting window (one round after the
# deadline) is left: once the window closes, anyone may finalize the round without its vote.
VOTE_MARGIN = 0.25


async def referee_rounds(node: "SwarmNode") -> None:
    """Referee every round of the node's task, in order, until the last or until the members stop."""
    cfg = node.config.swarm
    async with trio.open_nursery() as deciding:  # split rounds are decided while the next one runs
        for r in range(1, cfg.rounds + 1):
            # A round opens with its first commit; its announcements follow at once. Waiting longer
            # than the pre-round statistics exchange plus a whole round means the swarm has stopped.
            opened = await node.inbox.wait_until(lambda: bool(node.inbox.get("update", r)),
                                                 trio.current_time() + cfg.stats_timeout + node.round_duration)
            if not opened:
                node.log.warning("round %d: no member announced an update; refereeing stops", r)
                return
            deadline = await node.duties.round_deadline(r, node.round_duration)
            received = await node.exchange.collect("update", r, node.pipeline, deadline, node._awaited(r),
                                                   grace=cfg.absent_wait * node.round_duration)
            node._last_heard.update({p: r for p in received})
            updates = [received[k] for k in sorted(received)]
            node._previous, node._merged = node._merged, MergeRecord(r, node.weights, updates)
            scores = await trio.to_thread.run_sync(node._vote, node._merged)
            model = await _model(node, r, updates)
            node.round = r
            if node.validation is None or not updates or node.learner.scaler is None:
                await _vote(node, r, scores, model)
                continue
            value = await trio.to_thread.run_sync(_validation_value, node, node._merged, node.validation)
            deciding.start_soon(_arbitrate, node, r, deadline, scores, model, value)


async def _vote(node: "SwarmNode", r: int, scores: dict[str, int], model: str | None) -> None:
    try:
        await wait_future(node.duties.referee_vote(r, scores, model))
    except (LedgerError, ChainOutage) as exc:
        node.log.warning("round %d: referee vote refused (%s)", r, exc)
        return
    named = ", ".join(f"{node._name(p)} {'flagged' if v < 0 else v}" for p, v in sorted(
        scores.items(), key=lambda kv: node._name(kv[0])))
    node.log.info("round %d/%d refereed: voted %s", r, node.config.swarm.rounds, named or "nothing")


def load_validation(node: "SwarmNode", task_digest: str | None) -> PublishedSet | None:
    """The sponsor's published validation set this referee decides splits with: `chain.validation_file`,
    else the data set's own published set; None when the task names none. ValidationMismatch when
    the file is missing or unreadable, or its digest is not the task's `validationDigest`."""
    path = node.config.chain.validation_file
    if path:
        try:
            published = read_published_set(Path(path))
        except ValueError as exc:
            raise ValidationMismatch(f"chain.validation_file: {exc}") from None
    else:
        published = node.evaluation.published or published_set(node.config.data)
    if published is None or task_digest is None:
        if path:
            raise ValidationMismatch(f"chain.validation_file: task {node.task} names no validation set on chain; "
                            f"{path} hashes to {published.digest}")
        if task_digest is not None:
            node.log.warning("the task names validation set %s, but this referee holds none (chain.validation_file): "
                             "it decides split rounds by recomputation alone", task_digest[:10])
        return None
    if published.digest != task_digest.lower():
        raise ValidationMismatch(f"the task's validation-set digest is {task_digest}, the referee's set "
                        f"({path or 'the data set' + chr(39) + 's published set'}) hashes to {published.digest}")
    node.log.info("deciding split rounds with the sponsor's validation set %s (%d rows)",
                  published.digest[:10], len(published.y))
    return published


def _validation_value(node: "SwarmNode", record: MergeRecord, published: PublishedSet) -> dict[str, int]:
    """Each kept update's validation value (`node.arbitration.validation_value`) by member address."""
    previous, previous_merged = node.score_basis(record)
    x = node.learner.scaler.transform(published.x)
    public = PublicValidation(node.learner.model, record.start, x, published.y)
    value = validation_value(node.contribution(record.updates, previous, previous_merged,
                                               starts=node.starts_of(record), validation=public))
    members = node.members
    return {members[p].address: v for p, v in value.items() if p in members}


async def _arbitrate(node: "SwarmNode", r: int, deadline: float, scores: dict[str, int], model: str | None,
                     value: dict[str, int]) -> None:
    """Wait for the members' votes on round r; with a strict majority (or none at all) vote as
    without a validation set, in a split vote the vector `node.arbitration.choose` picks. Votes
    are read until every committer voted or a share VOTE_MARGIN of the voting window is left."""
    cutoff = deadline + (1 - VOTE_MARGIN) * node.round_duration
    while True:
        try:
            state = await node.duties.round_state(r)
            votes = await node.duties.read(f"read round {r} votes", partial(node.ledger.votes, node.task, r))
        except ChainOutage as exc:
            node.log.warning("round %d: the members' votes could not be read (%s); not voting", r, exc)
            return
        committers = set(state.committers)
        counted = [v for v in votes if v.voter in committers]
        tally = Counter(v.vote_hash for v in counted)
        majority = any(2 * n > len(committers) for n in tally.values())
        if state.finalized or majority or committers <= {v.voter for v in counted} or trio.current_time() >= cutoff:
            break
        await trio.sleep(VOTE_POLL_SECONDS)
    if state.finalized or majority or not counted:
        await _vote(node, r, scores, model)
        return
    members = node.members
    own = Candidate({members[p].address: v for p, v in scores.items()}, model)
    candidates = [Candidate(v.scores, v.model, v.vote_hash, tuple(sorted(w.voter for w in counted
                                                                         if w.vote_hash == v.vote_hash)))
                  for v in {v.vote_hash: v for v in counted}.values()]
    choice = choose(candidates, own, value)
    names = {m.address: m.name for m in members.values()}

    def who(c: Candidate) -> str:
        return "+".join(sorted(names.get(a, a) for a in c.voters))

    node.log.info("round %d: the members split (%s); the sponsor's validation set decides: voting %s", r,
                  "; ".join(f"{who(c)} withholding {choice.withheld[c.vote_hash]}" for c in candidates),
                  f"{who(choice.winner)}'s vector" if choice.winner.voters else "its own recomputation")
    by_address = {m.address: p for p, m in members.items()}
    await _vote(node, r, {by_address[a]: v for a, v in choice.winner.scores.items() if a in by_address},
                choice.winner.model)


async def _model(node: "SwarmNode", r: int, updates: list) -> str | None:
    """The round-r model to attest: the most announced one among those whose weights equal the
    referee's own merge of `updates` onto its round r-1 model. If none does (the referee missed
    an update the members merged), the most announced one, with a warning. The referee then
    continues from the model it attests."""
    senders = {u.sender for u in updates}
    await node.inbox.wait_until(lambda: senders <= set(node.inbox.get("model", r)),
                                trio.current_time() + node.round_duration)
    counts = Counter(a.digest for a in node.inbox.get("model", r).values())
    if not counts:
        node.log.warning("round %d: no member announced a merged model; attesting none", r)
        return None
    # the swarm optimiser's step, as every member takes it (plain addition by default)
    expected = node.swarm_opt.step(node.weights, node._merge(node.weights, updates)) if updates else node.weights
    fallback = None
    for model, _ in counts.most_common():
        bundle = await node.consensus.fetch(r, model)
        if bundle is None:
            continue
        weights, stats = split_bundle(bundle)
        if node.learner.scaler is None:  # the swarm's input scaling, agreed before round 1: validation needs it
            node.learner.set_scaling(stats)
        if weights.keys() == expected.keys() and all(np.array_equal(weights[k], expected[k]) for k in expected):
            node.weights = weights
            return model
        fallback = fallback or (model, weights, optimizer_state(bundle))
    if fallback is None:
        node.log.warning("round %d: no announced model could be fetched; attesting none", r)
        return None
    node.log.warning("round %d: no announced model is this referee's merge; attesting the most announced, %s",
                     r, fallback[0][:10])
    node.weights = fallback[1]
    node.swarm_opt.load(fallback[2])
    return fallback[0]
