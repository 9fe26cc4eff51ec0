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

How many groups (`GROUP_COUNTS`, `swarm.group_count`): "fixed" cuts the clustering at exactly
`swarm.groups`; "silhouette" finds the count. It cuts the same clustering at every k from 2 to
min(`swarm.groups`, updates // 2) (a group of alike sites has two members on average), scores each
cut by its mean silhouette (Rousseeuw, J. Comput. Appl. Math. 20, 1987; distance 1 - cosine
similarity, a member alone in its group scores 0), and keeps the best k (equal scores: the smaller
k) if that score reaches SILHOUETTE_MIN, else one group for all. SILHOUETTE_MIN is 0.5, where
Kaufman and Rousseeuw ("Finding Groups in Data", 1990) place "a reasonable structure"; below it a
structure is weak and may be an artefact of the noise. Measured on round-1 updates of real
learners (scratch measurement, 2026-12-01): the two kinds of hospital of `ecg_sites` score 0.60 to
0.79 (seeds 0-2, 4 and 8 hospitals); IID splits of the breast-cancer data 0.04 to 0.37, the
ECG hospitals with near-equal class mixes (Dirichlet(1000)) 0.29 and 0.45.

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
from typing import Callable, Iterator, Mapping, Sequence

import numpy as np

from .merge import Update

__all__ = ["AUTO_GROUPS", "GROUP_COUNTS", "GroupModels", "Grouping", "group_updates", "silhouette_groups"]

AUTO_GROUPS = "auto"  # a swarm's `--groups`: as many groups as round 1's updates show (SwarmPlan.groups)
SIMILARITY_DIGITS = 6
SILHOUETTE_MIN = 0.5  # the mean silhouette a grouping needs, else one group (module docstring)
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


def _checked(updates: Sequence[Update], groups: int) -> list[str]:
    """The updates' senders, sorted; refuses an empty list, a group count below 1, a repeated sender."""
    if groups < 1:
        raise ValueError(f"groups must be at least 1, got {groups}")
    if not updates:
        raise ValueError("no updates to group")
    senders = sorted(u.sender for u in updates)
    if len(set(senders)) != len(senders):
        raise ValueError("more than one update from one sender")
    return senders


def _linkage(sim: np.ndarray) -> Iterator[list[list[int]]]:
    """Average-linkage agglomerative clustering of `sim`'s rows: the clusters (each sorted, in order
    of their first member) after every merge, from every row alone down to one cluster."""
    clusters: list[list[int]] = [[i] for i in range(len(sim))]
    yield [list(c) for c in clusters]
    while len(clusters) > 1:
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
        yield [list(c) for c in clusters]


def _grouping(senders: list[str], clusters: list[list[int]]) -> Grouping:
    return Grouping.from_lists([[senders[i] for i in c] for c in clusters])


def group_updates(updates: Sequence[Update], groups: int) -> Grouping:
    """Average-linkage clustering of `updates` into `groups` groups by cosine similarity (every
    update alone when there are no more updates than groups)."""
    senders = _checked(updates, groups)
    cut = next(c for c in _linkage(similarities(updates)) if len(c) <= groups)
    return _grouping(senders, cut)


def silhouette(sim: np.ndarray, clusters: list[list[int]]) -> float:
    """Mean silhouette of `clusters` over distance 1 - `sim`, rounded to SIMILARITY_DIGITS: per row
    (b - a) / max(a, b), a its mean distance to its own cluster's other rows, b to the nearest other
    cluster's; 0 for a row alone in its cluster (Rousseeuw 1987)."""
    dist = 1.0 - sim
    scores = []
    for c in clusters:
        others = [o for o in clusters if o is not c]
        for i in c:
            own = [j for j in c if j != i]
            if not own or not others:
                scores.append(0.0)
                continue
            a = float(np.mean(dist[i, own]))
            b = min(float(np.mean(dist[i, o])) for o in others)
            scores.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return round(float(np.mean(scores)), SIMILARITY_DIGITS)


def silhouette_groups(updates: Sequence[Update], groups: int) -> Grouping:
    """As many groups as the updates show, at most `groups` and at most half the updates: the cut of
    the average-linkage clustering with the best mean silhouette, if it reaches SILHOUETTE_MIN;
    otherwise one group holding every sender."""
    senders = _checked(updates, groups)
    most = min(groups, len(senders) // 2)
    sim = similarities(updates)
    best: tuple[float, list[list[int]]] | None = None
    for cut in _linkage(sim):
        if 2 <= len(cut) <= most:
            score = silhouette(sim, cut)
            if best is None or score >= best[0]:  # cuts come from many groups to few: ties go to fewer
                best = (score, cut)
    if best is None or best[0] < SILHOUETTE_MIN:
        return Grouping((tuple(senders),))
    return _grouping(senders, best[1])


# How many groups, from the grouping round's updates and `swarm.groups` (the number of models the
# swarm's state holds): all of them, or as many as the silhouette finds
GROUP_COUNTS: dict[str, Callable[[Sequence[Update], int], Grouping]] = {
    "fixed": group_updates,
    "silhouette": silhouette_groups,
}


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
