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
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from collections import Counter

import numpy as np
import trio

from incentive.ledger import LedgerError

from .bundle import optimizer_state, split_bundle
from .chainduties import wait_future
from .chainwriter import ChainOutage
from .consensus import MergeRecord

if TYPE_CHECKING:
    from .engine import SwarmNode

__all__ = ["referee_rounds"]


async def referee_rounds(node: "SwarmNode") -> None:
    """Referee every round of the node's task, in order, until the last or until the members stop."""
    cfg = node.config.swarm
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
        try:
            await wait_future(node.duties.referee_vote(r, scores, model))
        except (LedgerError, ChainOutage) as exc:
            node.log.warning("round %d: referee vote refused (%s)", r, exc)
            continue
        named = ", ".join(f"{node._name(p)} {'flagged' if v < 0 else v}" for p, v in sorted(
            scores.items(), key=lambda kv: node._name(kv[0])))
        node.log.info("round %d/%d refereed: %d update(s); voted %s", r, cfg.rounds, len(received), named or "nothing")


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
        weights, _stats = split_bundle(bundle)
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
