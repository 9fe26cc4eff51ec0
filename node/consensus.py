"""Which merged model the swarm continues from: the one a majority attested on chain.

Nodes that merged the same updates hold bit-identical models. When they do not (an update
reached some nodes only), a node first recomputes its merge with the committed updates it
missed (the engine does that); whatever still differs is settled here. Every node attests on
chain the digest of the merged model it holds after each round (with its next commit), so the
rule needs nothing a peer merely says on gossip: a model is the swarm's when at least
`attestation_threshold` of the round's committers attested it, a strict majority and never
fewer than the task's quorum. There is no tie-break: with no majority a node keeps its own
model, so members who collude cannot win a tie by grinding a digest, and neither can a
minority, since any digest it announces lacks the attestations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import trio

from incentive.ledger import Member

from .chainduties import ChainDuties
from .exchange import Exchange
from .inbox import Inbox
from .merge import Update
from .pipeline import BlobIntake, UpdatePipeline

__all__ = ["MergeRecord", "ModelConsensus", "attestation_threshold", "majority_model"]

Tensors = dict[str, np.ndarray]
LATE_FETCH_SECONDS = 3.0  # how long to try for a committed update this node missed in its round


def attestation_threshold(committers: int, quorum: int) -> int:
    """Attestations a model needs among a round's `committers`: a strict majority, at least `quorum`."""
    return max(quorum, committers // 2 + 1)


def majority_model(counts: Mapping[str, int], threshold: int) -> str | None:
    """The digest attested at least `threshold` times, if one is (at most one can be, since each
    committer attests once and the threshold is a strict majority)."""
    winners = [d for d, n in counts.items() if n >= threshold]
    return winners[0].lower() if winners else None


@dataclass(frozen=True, eq=False)
class MergeRecord:
    """Round r's merge, kept so it can be redone with committed updates that arrived late."""

    round: int
    start: Tensors
    updates: list[Update]
    # The task's merge rule over exactly `updates`, unweighted and ungrouped, when the round's merge
    # was that: the next round's scores take it as their basis instead of merging again.
    merged: Tensors | None = None


class ModelConsensus:
    """What the chain and the swarm say about merged models; the engine decides what to adopt.

    Gossip only proposes candidates (model announcements and their holders); the chain decides
    (attestation counts, committers). Nothing here changes the node's own model.
    """

    def __init__(self, inbox: Inbox, exchange: Exchange, duties: ChainDuties, models: BlobIntake[Tensors],
                 updates: UpdatePipeline, quorum: Callable[[], int], peers: Callable[[], dict[str, Member]],
                 log: logging.LoggerAdapter) -> None:
        self._inbox = inbox
        self._exchange = exchange
        self._duties = duties
        self._models = models
        self._updates = updates
        self._quorum = quorum
        self._peers = peers
        self._log = log

    async def attested(self, r: int, own: str | None = None) -> str | None:
        """The round-r model a majority of r's committers attested on chain, among those announced
        (and `own`)."""
        candidates = {a.digest for a in self._inbox.get("model", r).values()} | ({own} if own else set())
        if not candidates:
            return None
        state = await self._duties.round_state(r)
        counts = await self._duties.attestations(r, candidates)
        return majority_model(counts, attestation_threshold(len(state.committers), self._quorum()))

    async def fetch(self, r: int, model: str) -> Tensors | None:
        """The bundle of `model` announced for round r, from any member announcing it."""
        holders = [a for a in self._inbox.get("model", r).values() if a.digest == model]
        for ann in sorted(holders, key=lambda a: a.sender):
            fetched = await self._exchange.fetch_accepted(ann, self._models)
            if fetched is not None:
                return fetched[1]
        return None

    async def newest_attested(self, after: int) -> tuple[int, str, Tensors] | None:
        """The newest announced model past round `after` that a majority attested, fetched."""
        for r in (r for r in self._inbox.rounds("model") if r > after):
            model = await self.attested(r)
            if model is not None and (bundle := await self.fetch(r, model)) is not None:
                return r, model, bundle
        return None

    async def wait_for_swarm_ahead(self) -> None:
        """Return once the chain shows the swarm has made a model (a majority attested one)."""
        checked = 0
        while True:
            await self._inbox.wait_until(lambda: self._inbox.latest_round("model") > checked)
            checked = self._inbox.latest_round("model")
            for r in (checked, checked - 1):
                if r >= 1 and await self.attested(r) is not None:
                    return

    async def missed_updates(self, record: MergeRecord) -> list[Update]:
        """Updates committed on chain for the record's round that it lacks but a peer can supply."""
        r = record.round
        state = await self._duties.round_state(r)
        by_address = {m.address.lower(): pid for pid, m in self._peers().items()}
        merged = {u.sender for u in record.updates}
        announced = self._inbox.get("update", r)
        late = []
        for pid in (by_address.get(a.lower()) for a in state.committers):
            if pid is None or pid in merged or pid not in announced:
                continue
            fetched = await self._exchange.fetch_accepted(announced[pid], self._updates,
                                                          retry_until=trio.current_time() + LATE_FETCH_SECONDS)
            if fetched is not None:
                self._exchange.relay("update", r, fetched[0], announced[pid].digest, pid)
                late.append(fetched[1])
        return late
