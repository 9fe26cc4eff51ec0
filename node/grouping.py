"""Grouping of similar sites: which members merge together, computed alike by every node.

Averaging the updates of sites whose data differ strongly (different case mixes) pulls one model
in conflicting directions; the seed review's remedy is to group the sites whose data look alike
and train one model per group (clustered federated learning: Sattler, Mueller and Samek, IEEE
TNNLS 2020, arXiv:1910.01991; Briggs et al., arXiv:2004.11791, cluster by update similarity).

The grouping here is a pure function of one round's committed updates (`swarm.groups` > 1: round
1's, when every member started from the same model, so the direction of a member's update says
where its data pull). Cosine similarity of every pair of updates (all tensors as one vector,
rounded to SIMILARITY_DIGITS decimals so float noise between machines cannot flip a choice), then
average-linkage agglomerative clustering: merge the two most similar groups until `groups` are
left; equal similarities go to the pair whose sorted member lists come first. Every node that
merged the same round-1 updates gets the same groups, in the same order, and anyone holding those
updates (their digests are on chain) can recompute them.

Every node keeps every group's model (`GroupModels`: one copy of the model per group, as one
tensor set): it receives every committed update anyway, to score it, so it can merge each group's
updates into that group's copy. Until the groups form, every copy takes the same merged update.
The swarm's state is then the same on every honest node (all copies), so the chain's model
attestation, the majority rule that settles differing merges, restarts and catch-up work as for
one model, and the score vector still covers every committed update. A node trains, tests and
reports its own group's copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .merge import Update

__all__ = ["GroupModels", "Grouping", "group_updates"]

SIMILARITY_DIGITS = 6
Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class Grouping:
    """Groups of sender ids, each sorted, ordered by their first member."""

    groups: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        senders = [s for g in self.groups for s in g]
        if len(senders) != len(set(senders)) or any(not g for g in self.groups):
            raise ValueError("a grouping needs non-empty groups with each sender in exactly one")

    def group_of(self, sender: str) -> tuple[str, ...] | None:
        """The group holding `sender`; None if the grouping's round had no update of it."""
        return next((g for g in self.groups if sender in g), None)

    def to_lists(self) -> list[list[str]]:
        return [list(g) for g in self.groups]

    @classmethod
    def from_lists(cls, groups: Sequence[Sequence[str]]) -> "Grouping":
        """A grouping read back (from a node's run folder): checked and put in canonical order."""
        if not isinstance(groups, (list, tuple)) or not all(
                isinstance(g, (list, tuple)) and all(isinstance(s, str) for s in g) for g in groups):
            raise ValueError("a grouping is a list of lists of sender ids")
        return cls(tuple(sorted(tuple(sorted(g)) for g in groups)))


def similarities(updates: Sequence[Update]) -> np.ndarray:
    """Cosine similarity of every pair of updates (sorted by sender), each flattened over all its
    tensors in name order, rounded to SIMILARITY_DIGITS; an all-zero update is 0 to every other."""
    ordered = sorted(updates, key=lambda u: u.sender)
    names = sorted(ordered[0].tensors)
    flat = np.stack([np.concatenate([np.asarray(u.tensors[k], np.float64).ravel() for k in names])
                     for u in ordered])
    norms = np.linalg.norm(flat, axis=1)
    unit = flat / np.where(norms > 0, norms, 1.0)[:, None]
    return np.round(unit @ unit.T, SIMILARITY_DIGITS)


def group_updates(updates: Sequence[Update], groups: int) -> Grouping:
    """Average-linkage clustering of `updates` into `groups` groups by cosine similarity (every
    update alone when there are no more updates than groups)."""
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    if not updates:
        raise ValueError("no updates to group")
    senders = sorted(u.sender for u in updates)
    if len(set(senders)) != len(senders):
        raise ValueError("more than one update from one sender")
    sim = similarities(updates)
    clusters: list[list[int]] = [[i] for i in range(len(senders))]
    while len(clusters) > groups:
        best: tuple[float, int, int] | None = None
        for a in range(len(clusters)):
            for b in range(a + 1, len(clusters)):
                s = float(np.mean(sim[np.ix_(clusters[a], clusters[b])]))
                # strictly greater: among equal similarities the first pair (clusters are kept
                # in order of their first member) wins
                if best is None or s > best[0]:
                    best = (s, a, b)
        assert best is not None
        _, a, b = best
        clusters[a] = sorted(clusters[a] + clusters[b])
        del clusters[b]
    return Grouping.from_lists([[senders[i] for i in c] for c in clusters])


@dataclass(frozen=True)
class GroupModels:
    """`count` copies of a model as one tensor set, copy i's tensors named "g{i}/<name>"."""

    count: int

    def __post_init__(self) -> None:
        if self.count < 2:
            raise ValueError(f"a grouped swarm keeps 2 or more models, got {self.count}")

    @staticmethod
    def key(i: int, name: str) -> str:
        return f"g{i}/{name}"

    def shapes(self, shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        return {self.key(i, k): tuple(s) for i in range(self.count) for k, s in shapes.items()}

    def replicate(self, tensors: Mapping[str, np.ndarray]) -> Tensors:
        """The same tensors in every copy (the start, and every merged update before the groups form)."""
        return {self.key(i, k): v for i in range(self.count) for k, v in tensors.items()}

    def copy(self, state: Mapping[str, np.ndarray], i: int) -> Tensors:
        """Copy i's tensors under their own names."""
        prefix = self.key(i, "")
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

    @classmethod
    def of(cls, state: Mapping[str, np.ndarray]) -> "GroupModels | None":
        """The copies a state holds, read from its tensor names; None for a single model."""
        heads = {k.split("/", 1)[0] for k in state}
        if "/" not in next(iter(state), "") or not all(h[:1] == "g" and h[1:].isdigit() for h in heads):
            return None
        return cls(len(heads))

    def join(self, copies: Sequence[Mapping[str, np.ndarray]]) -> Tensors:
        if len(copies) != self.count:
            raise ValueError(f"expected {self.count} copies, got {len(copies)}")
        return {self.key(i, k): v for i, c in enumerate(copies) for k, v in c.items()}
