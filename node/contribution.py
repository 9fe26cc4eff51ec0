"""Checkable contribution scores: one integer score vector per round that every honest node computes
bit for bit from what the whole swarm saw.

`checkable_scores(updates, previous, previous_merged, rule)` looks only at the round's updates (own
included), the previous round's updates and the previous round's merged update: no private data,
so any member can recompute a vote and the ledger can slash raters who voted otherwise. It returns
integer scores 0..10000 (summing to at most 10000) for every sender, and flags the updates it can
prove are not work of this round; flagged senders score 0.

Flags (each threshold set against `python -m scripts.bench.contribution`, see the constants):
- free rider: L2 norm below FREE_RIDER_NORM x the round's median norm (also catches x1e-3 copies);
- near-copy of a concurrent update of another sender, |cos| >= COPY_COS: both are flagged, since
  with commit-then-reveal nobody sees another's round-r update before committing its own, so a
  concurrent near-duplicate (scaled or sign-flipped alike: |cos| is scale-free) proves collusion;
- stale: |cos| >= COPY_COS with another sender's round r-1 update or the round r-1 merged update.
A repeat of the sender's OWN round r-1 update is not flagged: honest nodes with fewer rows than one
minibatch take a single Adam step, lr x sign(gradient), and re-send the same update bit for bit
(measured on breast cancer, Dirichlet 0.1, logreg). Such a repeat scores 0 unflagged.

Quality of the remaining updates is their novelty: the cosine between the part of the update that
the round r-1 updates and merged update do not explain (the residual after projecting onto their
span) and the same residual of the round's reference `rule.merge(kept updates)`. Work of round r
adds a direction the swarm did not have and that the merge took up; an old update plus noise
leaves only noise, which the merge does not share. Alignment with a leave-self-out reference was
measured first and rejected: near convergence honest updates point to their own sites' optima,
the others' consensus is about minus the update itself, and honest nodes scored 0 in most rounds
while sign-flipped updates scored. Quality is multiplied by min(1, (NORM_TOLERANCE x median norm / norm)^2), so a
x100 update keeps 0.16% of its worth; a negative novelty (sign-flipped work) earns 0.
Scores are the qualities' shares of 10000 (`scoring.scores_from_gains`).

Optional: with a `PublicValidation` (a validation set the sponsor publishes by hash, and the round's
starting weights), each kept update's loss gain on it (`scoring.IndividualGain`) is turned into
shares too, and the score is the mean of the two shares. Torch evaluates it with one thread, so it
is reproducible on one machine and torch build, not across machines; the update-only part is.

Determinism: updates are sorted by sender and flattened in sorted tensor-name order to float64
(exact for float32 values); all O(parameters) work is the Gram matrix of those vectors, whose
entries are `np.add.reduce(a * b)`: each product of two float32 values is exact in float64, and
numpy's pairwise summation adds them in an order fixed by the vector length alone, in one thread
(BLAS `np.dot` is avoided: OpenBLAS splits long dot products over threads, so the order would
follow the thread count). Everything after is a few small numpy operations on that matrix, and
integers appear only at the end.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .merge import MergeRule, Update
from .scoring import MAX_SCORE, IndividualGain, scores_from_gains

logger = logging.getLogger(__name__)

# Honest norms measured 0.53-3.4 x the round's median (scripts.bench.contribution): 50x margin.
FREE_RIDER_NORM = 1e-2
# Largest |cos| measured between two honest updates, concurrent or across rounds: 0.985 (distance
# between unit vectors sqrt(2(1-cos)) = 0.17). 0.999 (distance 0.045) leaves a factor ~4 in distance.
COPY_COS = 0.999
# Honest concurrent updates reach |cos| 0.979 (0.91 with an mlp); from here to COPY_COS a pair's quality falls linearly
# to 0, so a copy with just enough noise to escape the flag earns (almost) nothing, nor does its source.
REDUNDANT_COS = 0.95
# Honest norms reach 3.4x the round's median (a node with 10x its peers' rows); above 4x the median
# quality falls with the square of the excess, so a x100 update keeps (4/100)^2 = 0.16% of it.
NORM_TOLERANCE = 4.0
# Honest updates are gradients of one model on related data: the swarm's other updates (this round's
# and last round's) explain >= 11.6% of an honest update's squared norm, <= 1.4% of a random vector's
# (mlp, ~2000 parameters). Below this share quality falls proportionally. With a few dozen parameters
# (logreg) random vectors reach 45% and this factor does not separate them.
STRUCTURE_FULL = 0.1
# Residuals shorter than this share of the vector count as zero (no novelty): rounding noise of the
# projection is ~1e-15 relative.
RESIDUAL_FLOOR = 1e-9

Tensors = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ContributionReport:
    """Scores for every sender of the round, reasons for the flagged ones, and what they came from."""

    scores: dict[str, int]
    flags: dict[str, str]
    measures: dict[str, dict[str, float]]


@dataclass(frozen=True, eq=False)
class PublicValidation:
    """A published validation set, the model architecture, and the round's starting weights."""

    model: nn.Module
    base: Tensors
    x: np.ndarray
    y: np.ndarray


def _ordered(updates: Sequence[Update], what: str) -> list[Update]:
    ordered = sorted(updates, key=lambda u: u.sender)
    senders = [u.sender for u in ordered]
    if len(set(senders)) != len(senders):
        raise ValueError(f"{what}: more than one update from a sender: {senders}")
    return ordered


def _layout(reference: Tensors, others: Sequence[tuple[str, Tensors]]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Sorted tensor names with shapes; ValueError if any tensor set differs from `reference`."""
    if not reference:
        raise ValueError("updates hold no tensors")
    layout = tuple((k, tuple(np.shape(reference[k]))) for k in sorted(reference))
    for who, tensors in others:
        if sorted(tensors) != [k for k, _ in layout]:
            raise ValueError(f"{who}: tensor names {sorted(tensors)} differ from {[k for k, _ in layout]}")
        for k, shape in layout:
            if tuple(np.shape(tensors[k])) != shape:
                raise ValueError(f"{who}: {k} has shape {tuple(np.shape(tensors[k]))}, expected {shape}")
            if not np.all(np.isfinite(tensors[k])):
                raise ValueError(f"{who}: {k} holds NaN or Inf")
    return layout


def _flat(tensors: Tensors, layout: tuple[tuple[str, tuple[int, ...]], ...]) -> np.ndarray:
    return np.concatenate([np.asarray(tensors[k], dtype=np.float64).ravel() for k, _ in layout])


def gram(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Inner products of float64 vectors, each summed in a fixed order (see the module docstring)."""
    k = len(vectors)
    g = np.empty((k, k), dtype=np.float64)
    for i in range(k):
        for j in range(i, k):
            g[i, j] = g[j, i] = float(np.add.reduce(vectors[i] * vectors[j]))
    return g


def _cos(g: np.ndarray, i: int, j: int) -> float:
    denom = math.sqrt(g[i, i] * g[j, j])
    return float(g[i, j] / denom) if denom > 0 else 0.0


def _residual_gram(g: np.ndarray, keep: Sequence[int], old: Sequence[int]) -> np.ndarray:
    """Inner products of the `keep` vectors after removing their projection onto span(`old`)."""
    k = np.ix_(keep, keep)
    if not old:
        return g[k]
    g_ko = g[np.ix_(keep, old)]
    inverse = np.linalg.pinv(g[np.ix_(old, old)], rcond=1e-12, hermitian=True)
    return g[k] - g_ko @ inverse @ g_ko.T


def checkable_scores(updates: Sequence[Update], previous: Sequence[Update],
                     previous_merged: Tensors | None, rule: MergeRule, *,
                     validation: PublicValidation | None = None) -> ContributionReport:
    """Score round r's `updates` (deltas, own included) against round r-1's `previous` deltas and
    `previous_merged` delta (empty and None in round 1); see the module docstring."""
    current = _ordered(updates, "updates")
    if not current:
        raise ValueError("no updates to score")
    old = [(f"{u.sender}'s round r-1 update", u.sender, u.tensors) for u in _ordered(previous, "previous")]
    if previous_merged is not None:
        old.append(("the round r-1 merged update", None, previous_merged))
    layout = _layout(current[0].tensors, [(f"update from {u.sender}", u.tensors) for u in current]
                     + [(what, tensors) for what, _, tensors in old])
    n, senders = len(current), [u.sender for u in current]
    vectors = [_flat(u.tensors, layout) for u in current] + [_flat(t, layout) for _, _, t in old]
    g = gram(vectors)
    norms = np.sqrt(np.diag(g)[:n])
    median = float(np.median(norms))
    measures = {s: {"norm_ratio": float(norms[i] / median) if median > 0 else 0.0} for i, s in enumerate(senders)}
    flags: dict[str, str] = {}
    for i, s in enumerate(senders):
        if norms[i] <= FREE_RIDER_NORM * median:
            flags[s] = f"free rider: norm {measures[s]['norm_ratio']:.3g} x the round's median"
    # A scaled-down copy is a free rider and still proves that its source colluded: copies are
    # looked for among every non-zero update.
    active = [i for i in range(n) if norms[i] > 0]
    own = {a: n + j for a in active for j, (_, sender, _) in enumerate(old) if sender == senders[a]}
    # A sender that repeats its own r-1 update is not flagged for a concurrent near-copy: whoever
    # matches it copied old work it could see (and is flagged for that), not a fresh update.
    repeats = {a for a, j in own.items() if abs(_cos(g, a, j)) >= COPY_COS}
    for a in active:
        m = measures[senders[a]]
        concurrent = [(abs(_cos(g, a, b)), f"{senders[b]}'s update of this round") for b in active if b != a]
        stale = [(abs(_cos(g, a, n + j)), what) for j, (what, sender, _) in enumerate(old) if sender != senders[a]]
        if a in own:
            m["own_previous_cos"] = _cos(g, a, own[a])
        m["concurrent_cos"] = max((c for c, _ in concurrent), default=0.0)
        m["previous_cos"] = max((c for c, _ in stale), default=0.0)
        copied = [(c, what) for c, what in stale + ([] if a in repeats else concurrent) if c >= COPY_COS]
        if copied and senders[a] not in flags:
            flags[senders[a]] = "near-copy of {1} (|cos| {0:.6f})".format(*max(copied))
    kept = [i for i in active if senders[i] not in flags and i not in repeats]
    quality = {s: 0.0 for s in senders}
    if kept:
        reference = _flat(rule.merge([current[i] for i in kept]), layout)
        old_idx = list(range(n, len(vectors)))
        for i in kept:
            m = measures[senders[i]]
            m["novelty"] = _novelty(vectors, g, i, reference, old_idx)
            m["explained"] = _explained(g, i, [j for j in active if j != i and senders[j] not in flags] + old_idx)
            m["size_factor"] = min(1.0, (NORM_TOLERANCE * median / norms[i]) ** 2)
            # Concurrent near-duplicates below the flag (a copy plus a little noise) share one credit.
            m["redundancy_factor"] = min(1.0, max(0.0, (COPY_COS - m["concurrent_cos"]) / (COPY_COS - REDUNDANT_COS)))
            m["structure_factor"] = min(1.0, m["explained"] / STRUCTURE_FULL)
            quality[senders[i]] = (max(0.0, m["novelty"]) * m["size_factor"] * m["redundancy_factor"]
                                   * m["structure_factor"])
    for s in senders:
        measures[s]["quality"] = quality[s]
    scores = scores_from_gains(quality)
    if validation is not None and kept:
        gains = _validation_gains([current[i] for i in kept], rule, validation)
        for s, gain in gains.items():
            measures[s]["validation_gain"] = gain
        shares = scores_from_gains({s: gains.get(s, 0.0) for s in senders})
        scores = {s: (scores[s] + shares[s]) // 2 for s in senders}
    scores.update({s: 0 for s in flags})
    logger.debug("contribution scores %s, flags %s", scores, flags)
    return ContributionReport(scores, flags, measures)


def _explained(g: np.ndarray, i: int, basis: list[int]) -> float:
    """Share of vector i's squared norm inside span(vectors[basis])."""
    if not basis or g[i, i] <= 0:
        return 0.0
    g_ib = g[i, basis]
    inverse = np.linalg.pinv(g[np.ix_(basis, basis)], rcond=1e-12, hermitian=True)
    return float(min(1.0, max(0.0, g_ib @ inverse @ g_ib / g[i, i])))


def _novelty(vectors: list[np.ndarray], g: np.ndarray, i: int, reference: np.ndarray, old: list[int]) -> float:
    """cos between vector i and `reference`, each less its projection onto span(vectors[old])."""
    dots = np.array([float(np.add.reduce(reference * vectors[j])) for j in [i] + old])
    ref_sq = float(np.add.reduce(reference * reference))
    idx = [i] + old
    small = np.block([[g[np.ix_(idx, idx)], dots[:, None]], [dots[None, :], np.array([[ref_sq]])]])
    order = [0, len(idx)] + list(range(1, len(idx)))  # update, reference, then the old vectors
    res = _residual_gram(small[np.ix_(order, order)], [0, 1], list(range(2, len(order))))
    own_len, ref_len = math.sqrt(max(res[0, 0], 0.0)), math.sqrt(max(res[1, 1], 0.0))
    if own_len <= RESIDUAL_FLOOR * math.sqrt(g[i, i]) or ref_len <= RESIDUAL_FLOOR * math.sqrt(ref_sq):
        return 0.0
    return float(res[0, 1] / (own_len * ref_len))


def _validation_gains(kept: list[Update], rule: MergeRule, validation: PublicValidation) -> dict[str, float]:
    """Each update's loss gain on the public validation set (`scoring.IndividualGain`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one reduction order, whatever the machine's core count
    try:
        return IndividualGain().score(validation.model, validation.base, kept, rule, validation.x, validation.y).gains
    finally:
        torch.set_num_threads(threads)


Contribution = Callable[..., ContributionReport]
# Every contribution rule a task may name; "checkable" is the default.
CONTRIBUTIONS: dict[str, Contribution] = {"checkable": checkable_scores}


def contribution_by_name(name: str) -> Contribution:
    try:
        return CONTRIBUTIONS[name]
    except KeyError:
        raise ValueError(f"unknown contribution rule {name!r}; expected one of {tuple(CONTRIBUTIONS)}") from None


__all__ = ["COPY_COS", "CONTRIBUTIONS", "FREE_RIDER_NORM", "MAX_SCORE", "ContributionReport", "PublicValidation",
           "checkable_scores", "contribution_by_name", "gram"]
