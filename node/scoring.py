"""Contribution scoring: how much each peer's update helped, measured on this node's own validation data.

Scorers are small swappable objects. Both work on model deltas (an update = the sender's locally
trained weights minus the round's starting model `base`), and both turn raw validation-loss gains into
integer scores 0..10000 per scored peer: the positive part of each gain, normalised to shares
(floor(10000 * gain_i / sum of positive gains)), so the scores sum to at most 10000 and are all zero
when nobody helped. These scores come from private data, so nobody can check them; the score vector
every node can recompute from the round's updates alone is `node.contribution.checkable_scores`,
which reuses `scores_from_gains` and, with a published validation set, `IndividualGain`.

- `LeaveOneOut` (the DESIGN's first wording): gain_i = loss(base + merge(all)) compared with
  loss(base + merge(all but i)); positive when leaving i out makes the merged model worse.
- `IndividualGain`: gain_i = loss(base) - loss(base + s_i * delta_i), the update judged on its own,
  independent of the merge rule. step="share" (default) uses s_i = n_i / sum_j n_j, the weight the
  update has in a sample-weighted merge (a first-order "does it point downhill on my data" test that
  an overshooting local step does not fail); step="full" uses s_i = 1.

Before either runs, two kinds of update are scored 0 and taken out of the comparison:
- exact copies: an update whose tensors equal an earlier one's; "earlier" is the `first_seen` order
  when given (e.g. the order of on-chain commits), else sorted sender order. The original keeps its
  score; the copier gets 0.
- free riders: an update whose L2 norm is zero (or below 1e-9 of the largest update's norm).

Choice of default, measured (10 seeds per cell): UCI heart, Cleveland's test rows as the scoring
node's validation set, 4 honest peers training 5 epochs from `base`, plus a free rider, a copier and one
poisoned peer (an honest delta x100 or sign-flipped); cell = runs in which the poisoned peer scored
strictly below every honest peer (LOO / IndividualGain full / IndividualGain share):

    setting (base; honest data)                    x100 mean   x100 median   flip mean   flip median
    logreg, fresh base; IID quarters of Cleveland  10/10/10    0/10/10       10/10/10    5/10/10
    logreg, base 1 epoch pooled; IID quarters      10/3/9      0/3/9         6/3/9       4/3/9
    logreg, base 1 epoch pooled; the 4 hospitals   10/0/2      0/0/2         0/0/2       0/0/2
    mlp, base 1 epoch pooled; IID quarters         10/0/1      1/0/1         0/0/1       0/0/1

Misses by IndividualGain are ties at 0: an honest update that itself worsens this node's validation
loss (another hospital's data, or an overfitted local step) earns 0, as does the attacker. Misses by
LeaveOneOut are worse: under the median, leaving out one honest update hardly moves the merge, so
honest peers score by noise, and the attacker itself scored > 0 in 8/10 (x100, median, fresh base) and
10/10 (flip, mean, hospitals) runs; under the mean, x100 "works" only because every honest update
dilutes the attacker. IndividualGain(step="share") never depends on the merge rule, gave the
attacker > 0 in 2/10 runs of one cell only (mlp, flip: when the honest delta it flipped was itself
harmful, so its flip helped), and costs one evaluation per peer instead of one merge plus evaluation,
so `default_scorer()` returns it. LeaveOneOut stays available (`scorer_by_name("loo")`).
"""

from __future__ import annotations

import copy
import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
from torch import nn

from .merge import MergeRule, Update
from .models import load_numpy_state
from .training import evaluate

logger = logging.getLogger(__name__)

MAX_SCORE = 10_000
FREE_RIDER_RELATIVE_NORM = 1e-9

Tensors = Mapping[str, np.ndarray]
LossFn = Callable[[Tensors], float]


@dataclass(frozen=True)
class ScoreReport:
    """Scores (0..10000) for the scored peers, with the raw gains behind them for logs."""

    scores: dict[str, int]
    gains: dict[str, float]
    base_loss: float
    copies: dict[str, str]          # copier -> original sender
    free_riders: tuple[str, ...]


def scores_from_gains(gains: Mapping[str, float]) -> dict[str, int]:
    """Positive parts of the gains as integer shares of 10000 (sum <= 10000; all 0 if none positive)."""
    pos = {p: (g if math.isfinite(g) and g > 0 else 0.0) for p, g in gains.items()}
    total = math.fsum(pos.values())
    if total <= 0:
        return {p: 0 for p in gains}
    return {p: int(math.floor(MAX_SCORE * v / total)) for p, v in pos.items()}


def find_copies(updates: Sequence[Update], first_seen: Sequence[str] | None = None) -> dict[str, str]:
    """Map each update that exactly equals an earlier update to that earlier sender.

    Order: `first_seen` (senders not in it come after, sorted), else sorted sender order.
    """
    rank = {s: i for i, s in enumerate(first_seen or ())}
    ordered = sorted(updates, key=lambda u: (rank.get(u.sender, len(rank)), u.sender))
    copies: dict[str, str] = {}
    originals: list[Update] = []
    for u in ordered:
        for o in originals:
            if _same_tensors(u.tensors, o.tensors):
                copies[u.sender] = o.sender
                break
        else:
            originals.append(u)
    return copies


def _same_tensors(a: Tensors, b: Tensors) -> bool:
    return set(a) == set(b) and all(np.shape(a[k]) == np.shape(b[k]) and np.array_equal(a[k], b[k]) for k in a)


def tensor_norm(t: Tensors) -> float:
    """L2 norm of all tensors as one vector, summed exactly in float64."""
    return math.sqrt(math.fsum(float(np.sum(np.square(np.asarray(v, dtype=np.float64)))) for v in t.values()))


class Scorer(ABC):
    """Scores peers' updates on one node's validation data."""

    name: str = ""

    def score(self, model: nn.Module, base: Tensors, updates: Sequence[Update], rule: MergeRule,
              x_val: np.ndarray, y_val: np.ndarray, *, peers: Iterable[str] | None = None,
              first_seen: Sequence[str] | None = None) -> ScoreReport:
        """Score `peers` (default: every sender in `updates`; pass the others' ids to leave yourself out).

        `model` gives the architecture (it is copied, never modified); `base` is the round's starting
        weights; `updates` are deltas, and may include this node's own (it then takes part in merges).
        """
        updates = sorted(updates, key=lambda u: u.sender)
        scored = sorted(set(peers) if peers is not None else {u.sender for u in updates})
        unknown = set(scored) - {u.sender for u in updates}
        if unknown:
            raise ValueError(f"cannot score peers without an update: {sorted(unknown)}")
        work = copy.deepcopy(model)

        def loss(tensors: Tensors) -> float:
            load_numpy_state(work, tensors)
            value = evaluate(work, x_val, y_val).loss
            return value if math.isfinite(value) else math.inf

        copies = find_copies(updates, first_seen)
        largest = max((tensor_norm(u.tensors) for u in updates), default=0.0)
        free = tuple(u.sender for u in updates
                     if u.sender not in copies and tensor_norm(u.tensors) <= FREE_RIDER_RELATIVE_NORM * largest)
        kept = [u for u in updates if u.sender not in copies and u.sender not in free]
        base_loss = loss(base)
        raw = self._gains(loss, base, kept, rule, base_loss) if kept else {}
        gains = {p: raw.get(p, 0.0) for p in scored}
        report = ScoreReport(scores_from_gains(gains), gains, base_loss,
                             {c: o for c, o in copies.items() if c in scored}, tuple(p for p in free if p in scored))
        logger.debug("%s scores %s (gains %s, copies %s, free riders %s)",
                     self.name, report.scores, gains, report.copies, report.free_riders)
        return report

    @abstractmethod
    def _gains(self, loss: LossFn, base: Tensors, updates: Sequence[Update], rule: MergeRule,
               base_loss: float) -> dict[str, float]:
        """Raw validation-loss gain per sender of `updates` (copies and free riders already removed)."""


def _apply(base: Tensors, delta: Tensors) -> dict[str, np.ndarray]:
    return {k: (np.asarray(base[k], dtype=np.float64) + delta[k]).astype(np.float32) for k in base}


class LeaveOneOut(Scorer):
    """gain_i = loss(base + merge(all but i)) - loss(base + merge(all)); merge of nothing = base."""

    name = "loo"

    def _gains(self, loss: LossFn, base: Tensors, updates: Sequence[Update], rule: MergeRule,
               base_loss: float) -> dict[str, float]:
        full = loss(_apply(base, rule.merge(updates)))
        gains = {}
        for u in updates:
            rest = [o for o in updates if o.sender != u.sender]
            without = loss(_apply(base, rule.merge(rest))) if rest else base_loss
            gains[u.sender] = without - full
        return gains


class IndividualGain(Scorer):
    """gain_i = loss(base) - loss(base + delta_i): the update judged alone, independent of the merge."""

    name = "individual"

    def __init__(self, step: str = "share") -> None:
        if step not in ("share", "full"):
            raise ValueError(f"IndividualGain: step must be 'share' or 'full', got {step!r}")
        self.step = step

    def _gains(self, loss: LossFn, base: Tensors, updates: Sequence[Update], rule: MergeRule,
               base_loss: float) -> dict[str, float]:
        total = sum(u.samples for u in updates)
        gains = {}
        for u in updates:
            scale = u.samples / total if self.step == "share" else 1.0
            gains[u.sender] = base_loss - loss(_apply(base, {k: scale * np.asarray(v, dtype=np.float64)
                                                               for k, v in u.tensors.items()}))
        return gains


def default_scorer() -> Scorer:
    """The measured default (see the module docstring): `IndividualGain(step="share")`."""
    return IndividualGain(step="share")


# Every scorer a task may name; "default" is the measured choice above.
SCORERS: dict[str, Callable[[], Scorer]] = {"default": default_scorer, LeaveOneOut.name: LeaveOneOut,
                                            IndividualGain.name: IndividualGain}


def scorer_by_name(name: str) -> Scorer:
    try:
        return SCORERS[name]()
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; expected one of {tuple(SCORERS)}") from None
