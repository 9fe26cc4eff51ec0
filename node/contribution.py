"""Checkable contribution scores: one integer score vector per round that every honest node computes
bit for bit from what the whole swarm saw, so the ledger can take the majority vote.

`checkable_scores(updates, previous, previous_merged, starts=...)` reads only the round's updates
(own included), the previous round's updates, the previous round's merged update and the round's
starting model; no private data.
It returns integer scores 0..10000 (summing to at most 10000) for every sender, flags (reasons)
for updates it can prove are not this round's work, and the measures behind both. Flagged senders
score 0 and get slashed, so every flag threshold sits far from anything honest updates reached in
`python -m scripts.bench.contribution` (5 seeds x 10 rounds of heart mlp/logreg and breast cancer
over 8 nodes, IID and Dirichlet 0.1; numbers at the constants).

Flags:
- free rider: L2 norm at most FREE_RIDER_NORM x the median norm of the round's non-zero updates;
- near-copy of another sender's update of this round, |cos| >= COPY_COS: BOTH are flagged. With
  commit-then-reveal nobody sees a round-r update before committing its own, so a concurrent
  near-duplicate, scaled or sign-flipped alike (|cos| is scale-free), proves collusion;
- stale: |cos| >= COPY_COS with another sender's round r-1 update or the round r-1 merged update.
Re-sending one's OWN round r-1 update is not flagged: an honest node with fewer rows than one
minibatch takes a single Adam step, lr x sign(gradient), and can send the same update bit for bit
round after round (measured: breast cancer, Dirichlet 0.1, logreg). It scores 0, unflagged, and a
concurrent match with such a repeat flags only the copier (it copied old work it could see).

Quality of the other updates, from which the scores are shares (`scoring.scores_from_gains`), is
the product of
- novelty: cos between the update's residual (the part that the round r-1 updates, the merged
  update and the round's starting model do not explain: what it adds to what the swarm already
  had) and the reference's residual (below): round-r work adds a direction the swarm lacked and
  the others share. It counts in full from NOVELTY_FULL: how closely an honest site's new
  direction follows the others' says how alike their patients are, not how much it worked, and
  graded all the way up it made one member's pay hang on whether a particular other member was
  present (below, "What remains"). The starting model is in that basis because weight decay
  puts -c x the weights into every honest update (cos 0.3-0.7 with them on heart mlp at decay
  0.05), and anyone can add that step to an old update: without it, such a copy's residual
  looked like new work the others share (innovation at full credit, tested), and in a replay a
  copier doing so took 20-24% of the pool and cost Hungary 14-29%; with it, 6-9% and at most 2%;
- structure: the share of the update's squared norm that the other updates (this round's and the
  last) explain, in standard deviations above the share they would explain of a random direction
  (`_chance_z`), counted from CHANCE_Z and full from STRUCTURE_Z; honest updates are gradients of
  one model on related data, a random vector is not;
- innovation: how much of the update's residual the other updates' residuals explain, in standard
  deviations above chance for a random direction, full from INNOVATION_Z, never below
  INNOVATION_FLOOR. An old update plus noise of any size has noise for its residual, which no
  one else's residual explains. "Random" means drawn entry by entry at each tensor's typical
  scale: novelty and innovation weigh each tensor by the inverse of its typical mean square in the
  round (`_whitening`). Measured against a direction uniform over all parameters, noise scaled
  per tensor to the copied update's RMS (as `node.attacks` adds it) looked shared, because the
  others' new directions lie mostly in the tensors where updates are large: a loud copy's
  innovation reached 6.6 standard deviations (full credit), and its take cost Switzerland 16%
  of its payout in the incentive benchmark (session 10). Weighed per tensor it is at chance
  (tested). Structure, the flags, size and redundancy keep the plain inner products their
  thresholds were measured with;
- size: min(1, (NORM_TOLERANCE x median norm / norm)^2), so a x100 update keeps 0.36%;
- redundancy: concurrent pairs of unflagged updates between REDUNDANT_COS and COPY_COS (a copy
  with just enough noise to escape the flag) lose their quality linearly, both of them. A flagged
  update counts in no pair: a stale copy of a member's previous update resembles that member's
  new work (|cos| up to 0.996 on heart mlp) and cost it up to 88% of its quality in a round.
A round with no round r-1 vectors (round 1) has no past to tell what an update adds: its residual
is all of it, and novelty and innovation would only measure agreement with whoever else is
present. There, both are 1 and an update's quality is its structure x size x redundancy: every
update that shows structure earns alike, and a member that is missing, copies or sends noise in
round 1 does not move the others' shares of it (they measured agreement: with Switzerland
missing, VA Long Beach's round-1 novelty on heart mlp fell from 0.17 to -0.36, i.e. to 0).
The reference residual is the mean of the kept updates' residual directions (unflagged, not a
repeat), each weighted by its residual share (residual length over update norm: how much of the
update is new), shares capped at their median, whatever the task's merge rule. No kept update
weighs more than 1/k of it, so a member that is missing, flagged or free riding takes only its
own part with it, and an update whose residual is long (a random vector is all residual) cannot
make the reference its own. Every factor is scale-free, so sending one's work x2 earns exactly
what x1 earns. Until session 10 each residual counted by its length, capped at the median length:
a member whose residual was shorter than the median gained by inflating its update up to it
(x1.5, x2, x3 each beat the member's own honest score in 63 of 84 heart rounds; x2 by VA Long
Beach took 23% more than its honest share over 6 heart mlp rounds). Sample counts are claims, so
they weigh nothing here.

Measured on the contribution benchmark's honestly trained rounds (3 seeds x 6-8 rounds, the
attacker in VA Long Beach's place; issue 10's closing notes):
- before the residual clip and the chance baseline, a random vector of the median norm took 54% of
  a heart logreg round and 11% of a Dirichlet 0.1 breast cancer mlp round (honest minimum 7.5% and
  4%); now 0-0.03% (below every honest update in 21/21 and 20/21 rounds). Before the clip the
  reference was the clipped mean of the updates themselves, and a random vector's residual, as
  long as the vector, outweighed the honest residuals (20-30% of theirs) in it;
- before the innovation factor, another member's r-1 update or the r-1 merged update plus noise
  at cos 0.9 or 0.7 took 45-47% of a heart mlp round (honest minimum 13%); now 9-12% against an
  honest minimum of 21% (below every honest update in 17 of 21 rounds each).
What remains: innovation measures agreement, so in a round where nobody else's new direction
explains a member's, the member keeps INNOVATION_FLOOR of its quality, whether its update is a
lone honest site's or an old update plus noise: from the updates alone the two look the same.
Until session 14 novelty was graded up to 1 as well, and a member whose one agreeing partner was
replaced by a copier lost part of every round's score: a loud copy in that partner's place cost
it up to 20.5 % of its payout over six closed-loop heart mlp rounds (6 seeds, 3 of 72 runs above
10 %), 13.4 and 18.1 % in the incentive benchmark; counted in full from NOVELTY_FULL, at most
1.0 % in the same 72 runs and 7.5 % in the incentive benchmark. With one member's updates left
out of the scores (3 seeds x 8 rounds) no other member's share falls on heart mlp or IID breast
cancer; it falls by at most 31.1 % on heart logreg and 10.0 % on Dirichlet 0.1 breast cancer mlp.
With few parameters (heart logreg, 46) an honest update's innovation is hardly above chance, so
the factor separates little there: an old update plus noise at cos 0.9 still scores above the
lowest honest update in most heart logreg rounds, and in a closed loop costs an honest member
more than 10 % in 20 of 36 runs. That is the setting for the optional validation component below.
A leave-self-out reference (the merge of the OTHER updates) was measured first and rejected: near
convergence each honest update pulls towards its own site's optimum, the others' merge points
about the opposite way, and honest nodes scored 0 in about half of the rounds.

Known limit, measured: near convergence a sign-flipped copy of one's own work (x1) points where
the others pull, so it can score like honest work: it stayed below every honest update in 13/21
rounds of heart mlp, 6/21 of heart logreg (`python -m scripts.bench.contribution --seeds 3
--rounds 8`). The merge rule bounds what it does to the model; the scores do not always catch it.

Optional: with a `PublicValidation` (a validation set the sponsor publishes by hash, plus the
round's starting weights), each kept update's loss gain on it (`scoring.IndividualGain`, times the
size factor) becomes shares too, and a score is the mean of the two shares. Torch evaluates it in
one thread: reproducible on one machine and torch build, not across machines; the update-only part
does not touch torch. Measured, it raises Switzerland's share but lets stale copies plus noise
earn more often, and does not catch sign flips either.

Determinism: updates are sorted by sender, tensors taken in sorted name order. All
O(parameters) work is one Gram matrix per tensor (`gram`); the plain Gram matrix is their sum and
the weighed one their weighted sum, added in that order. Each is computed in blocks of GRAM_BLOCK
entries: in each block every vector is multiplied by a power of two (exact) and rounded to
integers of at most GRAM_BITS bits, so each product and every partial sum of the block's matrix
product is an integer below 2^52, exact in float64 in whatever order or thread count BLAS adds
them; the blocks' results, scaled back by powers of two, are added in a fixed order. IEEE float64
arithmetic therefore gives the same bits on every machine and BLAS build. The rounding costs at
most 2^-21 of a block's largest value per entry. Measured against the float64 inner products used
before, on the contribution benchmark's rounds (5 settings x 2 seeds x 4 rounds, under the
settings' merge rule and under mean, honest and every attack: 920 score vectors), 884 vectors came
out the same, no score moved by more than 1 of 10000 points, and no flag changed. (Before, each
inner product was a fixed-order `np.add.reduce(a * b)` in float64: 3-4x the CPU time, and the
same bits only with the same numpy build.) The rest is a few operations on matrices of a few
dozen entries; integers appear only at the end. The small projections go through LAPACK, whose
last bits may differ across machines, which moves a score only if a value sits within ~1e-12 of
a rounding or threshold boundary (PINV_RCOND keeps the choice of directions away from such
boundaries). The caller must pass the same sets: the updates the swarm's attested merge used,
not whatever this node happened to receive; as `previous`, the engine passes round r-1's updates
less the ones that round flagged (a stale copy is no basis to judge this round's work against: it added an old
direction to the projection and cost the member it resembled part of its share).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .merge import Update, WeightedMean
from .scoring import IndividualGain, scores_from_gains

logger = logging.getLogger(__name__)

# Honest norms measured 0.53-5.1 x the round's median: a margin of 50.
FREE_RIDER_NORM = 1e-2
# Largest honest |cos| measured: 0.979 between concurrent updates, 0.985 with another sender's
# r-1 update, 0.961 with the r-1 merged update (all breast cancer, Dirichlet 0.1, logreg; with an
# mlp 0.92). As distances between unit vectors, sqrt(2(1 - cos)): 0.17 against 0.045 here.
COPY_COS = 0.999
# From here to COPY_COS a concurrent pair's quality falls linearly to 0. Honest pairs above it
# (up to 0.979, single-step logreg updates) lose part of their score, never get flagged.
REDUNDANT_COS = 0.95
# Honest norms reach 5.1x the round's median (a node with 10x its peers' rows).
NORM_TOLERANCE = 6.0
# Structure: the share of an update's squared norm that the other updates (this round's and the
# last) explain, in standard deviations above the share they explain of a random direction: none
# up to CHANCE_Z (a random direction stays below it 98% of the time), full from STRUCTURE_Z.
# Honest (3 seeds x 6 rounds): heart mlp 437-461 from round 2 on, 165-687 in round 1; heart logreg
# (46 parameters) 7.9-10.6 from round 2, 3.2-12.8 in round 1. A random vector of the median norm:
# -1.6 to 3.7. The share above chance, full at 0.6 (before session 10), gave VA Long Beach's
# round-1 update 0.15 of its structure with Switzerland missing: three updates in ~2000
# dimensions explain 9% of it, which is 60 standard deviations above chance.
STRUCTURE_Z = 6.0
CHANCE_Z = 2.0
# Innovation: the share of an update's residual (what the round r-1 vectors do not explain) that
# the other updates' residuals explain, in standard deviations above chance for a random
# direction; full from INNOVATION_Z, never below INNOVATION_FLOOR (an honest site whose new
# direction nobody shares keeps a twentieth). Heart mlp: honest 0.001-0.35 (median 0.084) against
# 0.000-0.004 for noise (0.0016 expected); heart logreg: honest median 0.19 against noise 0.06.
# The floor is what an old update plus noise earns (its innovation sits at chance): at 0.2 a loud
# copy took 5-9 % of the incentive benchmark's pool and, where its sender had been another
# member's only support, cost that member 12.8 and 18.4 % of its payout; at 0.1 7.3 and 10.1 %,
# at 0.05 7.3 and 9.4 % (session 12; the honest runs' payouts moved by at most 0.05 ETH of 2.5).
INNOVATION_Z = 3.0
INNOVATION_FLOOR = 0.05
# Novelty counts in full from here, linearly from 0 below (a residual against the others' counts 0).
# Heart mlp, rounds 2-6 (3 seeds, median merge, each member in turn flipping, closed loop): honest
# 5th percentile 0.39, median 0.58, 97 % at 0.35 or more; a member's own work sign-flipped: median
# 0.28, a third at 0.35 or more. Graded up to 1, a loud copy in the place of the one member whose
# new direction another shared cost that member up to 20.5 % of its payout over 6 rounds (6 seeds,
# each member the copier of each other member in turn: 3 of 72 runs above the 10 %); full
# from 0.35, at most 1.0 % in the same 72 runs; from 0.45, 11.5 % (session 14).
NOVELTY_FULL = 0.35
# Residuals shorter than this share of their vector count as zero (rounding noise is ~1e-15).
RESIDUAL_FLOOR = 1e-9
# Projections drop directions whose Gram eigenvalue is below this share of the largest. Under the
# mean rule the merged update lies in the span of the updates up to float32 rounding (eigenvalue
# ~1e-14 relative); distinct honest updates are far above. A cut far from both keeps the choice
# the same on machines whose LAPACK differs in the last bits.
PINV_RCOND = 1e-9

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


# The Gram matrix is summed over blocks of GRAM_BLOCK entries. Within a block each vector is
# scaled by a power of two and rounded to integers of at most GRAM_BITS bits, so every product and
# partial sum of a block's matrix product is an integer below 2^52: exact in float64 whatever
# order or thread count BLAS adds them in. 2 x 20 + log2(2048) = 51.
GRAM_BLOCK = 2048
GRAM_BITS = 20
GRAM_BLOCKS_AT_ONCE = 32  # blocks converted to float64 together: 17 vectors take 9 MB


def gram(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Inner products of equally long float vectors, the same bits on every machine (module
    docstring): exact integer block products through BLAS, the blocks added in a fixed order."""
    k, size = len(vectors), int(vectors[0].size)
    g = np.zeros((k, k), dtype=np.float64)
    step = GRAM_BLOCK * GRAM_BLOCKS_AT_ONCE
    for start in range(0, size, step):
        end = min(size, start + step)
        blocks = -(-(end - start) // GRAM_BLOCK)
        q = np.empty((k, blocks, GRAM_BLOCK), dtype=np.float64)
        shift = np.empty((k, blocks), dtype=np.int64)
        for i, v in enumerate(vectors):
            part = v[start:end]
            if part.size < blocks * GRAM_BLOCK:  # the last block, padded with zeros
                part = np.concatenate([part, np.zeros(blocks * GRAM_BLOCK - part.size, dtype=part.dtype)])
            part = part.reshape(blocks, GRAM_BLOCK)
            # 2^shift puts a block's largest |value| in [2^(GRAM_BITS-1), 2^GRAM_BITS); an all-zero
            # block stays 0. Read in the vector's own precision; the product is exact in float64.
            shift[i] = GRAM_BITS - np.frexp(np.maximum(part.max(axis=1), -part.min(axis=1)))[1]
            np.multiply(part, np.ldexp(1.0, shift[i])[:, None], out=q[i])
        np.rint(q, out=q)
        q = q.transpose(1, 0, 2)  # (block, vector, entry)
        products = q @ q.transpose(0, 2, 1)
        products *= np.ldexp(1.0, -(shift.T[:, :, None] + shift.T[:, None, :]))
        for p in products:
            g += p
    return g


def checkable_scores(updates: Sequence[Update], previous: Sequence[Update],
                     previous_merged: Tensors | None, *, starts: Sequence[Tensors] = (),
                     validation: PublicValidation | None = None) -> ContributionReport:
    """Score round r's `updates` (deltas, own included) against round r-1's `previous` deltas and
    `previous_merged` delta (empty and None in round 1), and the round's `starts`: the model the
    members trained from (one per group in a grouped swarm); see the module docstring."""
    current = _ordered(updates, "updates")
    if not current:
        raise ValueError("no updates to score")
    old = [(f"{u.sender}'s round r-1 update", u.sender, u.tensors) for u in _ordered(previous, "previous")]
    if previous_merged is not None:
        old.append(("the round r-1 merged update", None, previous_merged))
    given = [("the round's starting model", start) for start in starts]
    layout = _layout(current[0].tensors, [(f"update from {u.sender}", u.tensors) for u in current]
                     + [(what, tensors) for what, _, tensors in old] + given)
    sets = [u.tensors for u in current] + [t for _, _, t in old] + [t for _, t in given]
    rows = _Rows([gram([np.ravel(t[k]) for t in sets]) for k, _ in layout], [math.prod(shape) for _, shape in layout],
                 [u.sender for u in current], [(what, sender) for what, sender, _ in old])
    flags, repeats = rows.flags()
    kept = [i for i in range(rows.n) if rows.senders[i] not in flags and i not in repeats]
    quality = {s: 0.0 for s in rows.senders}
    if kept:
        quality.update(rows.quality(kept, [i for i in range(rows.n) if rows.senders[i] not in flags]))
    for s in rows.senders:
        rows.measures[s]["quality"] = quality[s]
    scores = scores_from_gains(quality)
    if validation is not None and kept:
        gains = _validation_gains([current[i] for i in kept], validation)
        for s, gain in gains.items():
            rows.measures[s]["validation_gain"] = gain
        # the size factor applies here too: far from a minimum a x100 step lowers the loss a lot
        shares = scores_from_gains({s: gains.get(s, 0.0) * rows.measures[s].get("size_factor", 0.0)
                                    for s in rows.senders})
        scores = {s: (scores[s] + shares[s]) // 2 for s in rows.senders}
    scores.update({s: 0 for s in flags})
    logger.debug("contribution scores %s, flags %s", scores, flags)
    return ContributionReport(scores, flags, rows.measures)


class _Rows:
    """The round's updates (indices 0..n-1, sorted by sender) and the old vectors after them, with
    their Gram matrices: every decision below reads inner products only. `g` is the plain one
    (flags, structure, size, redundancy); `quality` weighs each tensor's Gram matrix by
    `_whitening` for novelty and innovation (module docstring)."""

    def __init__(self, per_tensor: list[np.ndarray], sizes: list[int], senders: list[str],
                 old: list[tuple[str, str | None]]) -> None:
        self.senders, self.old = senders, old
        self.n = len(senders)
        self.g = _summed(per_tensor, [1.0] * len(per_tensor))
        self.norms = np.sqrt(np.diag(self.g)[:self.n])
        # of the non-zero updates: a crowd of all-zero updates must not make honest ones look huge
        active = self.norms > 0
        self.median = float(np.median(self.norms[active])) if np.any(active) else 0.0
        self.per_tensor, self.sizes = per_tensor, sizes
        self.old_idx = list(range(self.n, self.n + len(old)))
        # what the swarm already had: the r-1 vectors and the starting model (whose weight decay
        # every honest update carries, and anyone can add to an old update)
        self.known = list(range(self.n, len(self.g)))
        self.size = sum(sizes)
        self.measures = {s: {"norm_ratio": float(self.norms[i] / self.median) if self.median > 0 else 0.0}
                         for i, s in enumerate(senders)}

    def cos(self, i: int, j: int) -> float:
        denom = math.sqrt(self.g[i, i] * self.g[j, j])
        return float(self.g[i, j] / denom) if denom > 0 else 0.0

    def flags(self) -> tuple[dict[str, str], set[int]]:
        """Reasons per flagged sender, and the senders (indices) that repeat their own r-1 update."""
        flags = {s: f"free rider: norm {self.measures[s]['norm_ratio']:.3g} x the round's median"
                 for i, s in enumerate(self.senders) if self.norms[i] <= FREE_RIDER_NORM * self.median}
        # A scaled-down copy is a free rider and still proves that its source colluded: copies
        # are looked for among every non-zero update.
        active = [i for i in range(self.n) if self.norms[i] > 0]
        own = {a: j for a in active for j in self.old_idx if self.old[j - self.n][1] == self.senders[a]}
        repeats = {a for a, j in own.items() if abs(self.cos(a, j)) >= COPY_COS}
        for a in active:
            m = self.measures[self.senders[a]]
            concurrent = [(abs(self.cos(a, b)), f"{self.senders[b]}'s update of this round") for b in active if b != a]
            stale = [(abs(self.cos(a, j)), self.old[j - self.n][0]) for j in self.old_idx if j != own.get(a)]
            if a in own:
                m["own_previous_cos"] = self.cos(a, own[a])
            m["concurrent_cos"] = max((c for c, _ in concurrent), default=0.0)
            m["previous_cos"] = max((c for c, _ in stale), default=0.0)
            # a repeater's concurrent twin copied the repeater's old update: only the twin is flagged
            copied = [(c, what) for c, what in stale + ([] if a in repeats else concurrent) if c >= COPY_COS]
            if copied and self.senders[a] not in flags:
                flags[self.senders[a]] = "near-copy of {1} (|cos| {0:.6f})".format(*max(copied))
        return flags, repeats

    def quality(self, kept: list[int], unflagged: list[int]) -> dict[str, float]:
        """Novelty x structure x innovation x size x redundancy factors of each kept update (module
        docstring)."""
        # weighed by the updates that stay, so a flagged one changes nothing of the others' scores
        w = _summed(self.per_tensor, _whitening(self.per_tensor, self.sizes,
                                                [i for i in unflagged if self.norms[i] > 0]))
        w_norms = np.sqrt(np.maximum(np.diag(w), 0.0))
        known_rank = _rank(w, self.known)
        residual = _residual_gram(w, list(range(self.n)), self.known)
        novelty = _novelty(residual[np.ix_(kept, kept)], [float(w_norms[i]) for i in kept])
        # With no round r-1 vectors (round 1) there is no past to tell what is new: novelty and
        # innovation would only measure agreement with whoever else is present.
        first = not self.old_idx
        out = {}
        for a, i in enumerate(kept):
            m = self.measures[self.senders[i]]
            m["novelty"] = 1.0 if first else novelty[a]
            others = [j for j in unflagged if j != i]
            basis = others + self.old_idx
            m["explained"] = _explained(self.g, i, basis)
            # alone in round 1 there is nothing to compare with: no evidence against the update
            m["structure_z"] = _chance_z(m["explained"], _rank(self.g, basis), self.size) if basis else STRUCTURE_Z
            m["structure_factor"] = min(1.0, max(0.0, (m["structure_z"] - CHANCE_Z) / (STRUCTURE_Z - CHANCE_Z)))
            if not first and others and residual[i, i] > 0:
                m["innovation"] = _explained(residual, i, others)
                m["innovation_z"] = _chance_z(m["innovation"], _rank(residual, others), self.size - known_rank)
            else:  # nothing to compare with, or nothing new: no evidence against the update
                m["innovation"], m["innovation_z"] = 1.0, INNOVATION_Z
            m["innovation_factor"] = INNOVATION_FLOOR + (1 - INNOVATION_FLOOR) * min(
                1.0, max(0.0, m["innovation_z"]) / INNOVATION_Z)
            m["size_factor"] = min(1.0, (NORM_TOLERANCE * self.median / self.norms[i]) ** 2)
            # only pairs of updates that both stay: a flagged update earns nothing already, and a
            # stale copy of a member's previous update must not make that member's new work redundant
            m["redundant_cos"] = max((abs(self.cos(i, j)) for j in others), default=0.0)
            m["redundancy_factor"] = min(1.0, max(0.0, (COPY_COS - m["redundant_cos"]) / (COPY_COS - REDUNDANT_COS)))
            m["novelty_factor"] = min(1.0, max(0.0, m["novelty"]) / NOVELTY_FULL)
            out[self.senders[i]] = (m["novelty_factor"] * m["structure_factor"] * m["innovation_factor"]
                                    * m["size_factor"] * m["redundancy_factor"])
        return out


def _summed(per_tensor: list[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted sum of the tensors' Gram matrices, added in tensor-name order (the same bits
    everywhere: each term is exact or a correctly rounded product)."""
    total = np.zeros_like(per_tensor[0])
    for g, weight in zip(per_tensor, weights):
        total += g * weight
    return total


def _whitening(per_tensor: list[np.ndarray], sizes: list[int], rows: list[int]) -> list[float]:
    """Each tensor's weight: the inverse of its typical mean square, the median over `rows` (the
    unflagged non-zero updates) of the tensor's share of the update's squared norm, per entry; 0
    for a tensor that most of them leave untouched. A direction drawn entry by entry at each
    tensor's typical scale is then uniformly random. Shares are scale-free, so scaling an update
    changes no weight, and a flagged update none either."""
    if not rows:
        return [1.0] * len(per_tensor)
    squares = np.array([np.diag(g)[rows] for g in per_tensor])  # (tensor, row)
    typical = np.median(squares / squares.sum(axis=0), axis=1) / np.array(sizes, dtype=np.float64)
    return [1.0 / t if t > 0 else 0.0 for t in typical]


def _residual_gram(g: np.ndarray, rows: list[int], old: list[int]) -> np.ndarray:
    """Inner products of vectors[rows], each less its projection onto span(vectors[old])."""
    g_rr = g[np.ix_(rows, rows)]
    if not old:
        return g_rr
    g_ro = g[np.ix_(rows, old)]
    return g_rr - g_ro @ np.linalg.pinv(g[np.ix_(old, old)], rcond=PINV_RCOND, hermitian=True) @ g_ro.T


def _novelty(residual: np.ndarray, norms: list[float]) -> list[float]:
    """cos between each kept update's residual and the reference's: the mean of the kept residual
    directions, each weighted by its residual share (length / update norm) capped at the median
    share, so no weight depends on how large a sender made its update (module docstring)."""
    lengths = np.sqrt(np.maximum(np.diag(residual), 0.0))
    shares = np.array([x / n if n > 0 else 0.0 for x, n in zip(lengths, norms)])
    bound = float(np.median(shares))
    weights = np.array([min(share, bound) / x if x > 0 else 0.0 for share, x in zip(shares, lengths)])
    total = float(weights @ residual @ weights)
    out = []
    for a, length in enumerate(lengths):
        if length <= RESIDUAL_FLOOR * norms[a] or total <= 0:
            out.append(0.0)
        else:
            out.append(float(residual[a] @ weights) / (float(length) * math.sqrt(total)))
    return out


def _rank(g: np.ndarray, rows: list[int]) -> int:
    """Dimension of span(vectors[rows]), cut where the projections cut (PINV_RCOND)."""
    if not rows:
        return 0
    eigen = np.linalg.eigvalsh(g[np.ix_(rows, rows)])
    top = float(eigen.max())
    return int(np.sum(eigen > PINV_RCOND * top)) if top > 0 else 0


def _chance_z(share: float, rank: int, size: int) -> float:
    """The share in standard deviations above its mean for a random direction: the share of a
    uniformly random unit vector in `size` dimensions that a `rank`-dimensional span explains is
    Beta(rank / 2, (size - rank) / 2), mean p = rank / size, variance p (1 - p) / (size / 2 + 1)."""
    if size <= rank or rank == 0:
        return 0.0
    p = rank / size
    return (share - p) / math.sqrt(p * (1 - p) / (size / 2 + 1))


def _explained(g: np.ndarray, i: int, basis: list[int]) -> float:
    """Share of vector i's squared norm inside span(vectors[basis])."""
    if not basis or g[i, i] <= 0:
        return 0.0
    g_ib = g[i, basis]
    inverse = np.linalg.pinv(g[np.ix_(basis, basis)], rcond=PINV_RCOND, hermitian=True)
    return float(min(1.0, max(0.0, g_ib @ inverse @ g_ib / g[i, i])))


def _validation_gains(kept: list[Update], validation: PublicValidation) -> dict[str, float]:
    """Each update's loss gain on the public validation set (`scoring.IndividualGain`, whose step
    is the update's weight in a sample-weighted mean)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one reduction order, whatever the machine's core count
    try:
        return IndividualGain().score(validation.model, validation.base, kept, WeightedMean(), validation.x,
                                      validation.y).gains
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
