"""Which merged model the swarm continues from when its nodes disagree.

Nodes that merged the same updates hold bit-identical models, so they normally agree. A fetch
that failed on some nodes only leaves them apart, and since every later update is a delta on a
node's own model they would stay apart. Each node therefore applies one deterministic rule to
the model digests announced for a round: the digest held by most nodes wins, and a tie goes to
the lowest digest. Nodes that heard the same announcements choose the same model, including
when no digest has a majority (two survivors of a three-node swarm that disagree).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Choice", "choose_model", "rank_models"]


@dataclass(frozen=True)
class Choice:
    """The model to continue from, and how many nodes (this one included) announced it."""

    digest: str
    votes: int
    voters: int  # nodes whose model digest for the round was counted

    @property
    def is_majority(self) -> bool:
        return 2 * self.votes > self.voters


def rank_models(digests: Iterable[str]) -> list[tuple[str, int]]:
    """Distinct digests with their number of holders, best first: most holders, then lowest digest."""
    counts = Counter(d.lower() for d in digests)
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def choose_model(own: str, peers: Iterable[str]) -> Choice:
    """The swarm's model for a round, from this node's digest and its peers' announced ones.

    `peers` holds one digest per peer that announced a model for the round (absent peers are
    simply not counted).
    """
    votes = [own, *peers]
    digest, count = rank_models(votes)[0]
    return Choice(digest=digest, votes=count, voters=len(votes))
