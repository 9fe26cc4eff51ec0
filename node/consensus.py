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

from collections.abc import Mapping

__all__ = ["attestation_threshold", "majority_model"]


def attestation_threshold(committers: int, quorum: int) -> int:
    """Attestations a model needs among a round's `committers`: a strict majority, at least `quorum`."""
    return max(quorum, committers // 2 + 1)


def majority_model(counts: Mapping[str, int], threshold: int) -> str | None:
    """The digest attested at least `threshold` times, if one is (at most one can be, since each
    committer attests once and the threshold is a strict majority)."""
    winners = [d for d, n in counts.items() if n >= threshold]
    return winners[0].lower() if winners else None
