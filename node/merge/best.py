"""Best model on a unified validation set: the evaluation layer of the rare-disease framework that
the project's seed review describes, in which every site trains, one shared validation set ranks the
sites' models, and the swarm adopts the model of the site that performs best on it.

Every update is judged as the model it makes: `base + update`, scored by a `judge` (lower is
better; the loss on a validation set the task's sponsor publishes by its keccak256 digest). The
round adopts the update of the best model, unchanged. Ties, and losses that differ only below
`TIE_DIGITS` significant digits (float noise between processes), go to the first sender in sorted
order, so every node that holds the published set and received the same updates adopts the same
one.

Only a rule bound to the round's starting weights (`at(base)`) can judge models. Unbound, as the
reference direction of the contribution scores (`node.contribution`), it merges like the
coordinate median: the reference must describe the whole round's work, not one member's model.

Not robust: the published set is public, so a member that trains on it wins every round
(`tolerates` is 0). It is for consortia whose members trust one another's intent and want the
model that generalises best to a neutral set, not an average of site optima.
"""

from __future__ import annotations

import logging
import math
from typing import Callable, Sequence

import numpy as np

from .base import MergeError, MergeRule, Update
from .median import CoordinateMedian

logger = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]
Judge = Callable[[Tensors], float]
TIE_DIGITS = 6  # losses are compared at 6 significant digits


class BestModel(MergeRule):
    name = "best"

    def __init__(self, judge: Judge | None = None, base: Tensors | None = None) -> None:
        self.judge = judge
        self.base = base
        self.last_losses: dict[str, float] = {}  # sender -> judged loss of the latest merge

    def tolerates(self, n: int) -> int:
        return 0

    def at(self, base: Tensors) -> "BestModel":
        """This rule judging the models `base + update` (the round's starting weights)."""
        return BestModel(self.judge, {k: np.asarray(v, dtype=np.float32) for k, v in base.items()})

    def _merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        if self.base is None or self.judge is None:
            return CoordinateMedian()._merge(updates)
        losses: dict[str, float] = {}
        for u in updates:
            if set(u.tensors) != set(self.base):
                raise MergeError(f"update from {u.sender}: tensor names {sorted(u.tensors)} differ from "
                                 f"the model's {sorted(self.base)}")
            model = {k: (self.base[k] + u.tensors[k]).astype(np.float32) for k in self.base}
            losses[u.sender] = _comparable(self.judge(model))
        self.last_losses = losses
        # `updates` are sorted by sender: min() keeps the first of equal losses
        best = min(updates, key=lambda u: losses[u.sender])
        logger.debug("best model on the validation set: %s (loss %.6g of %s)", best.sender, losses[best.sender],
                     ", ".join(f"{s}={v:.6g}" for s, v in losses.items()))
        return {k: np.asarray(v, dtype=np.float64) for k, v in best.tensors.items()}


def _comparable(loss: float) -> float:
    """The loss rounded to TIE_DIGITS significant digits; NaN and Inf lose to every finite loss."""
    loss = float(loss)
    if not math.isfinite(loss):
        return math.inf
    return float(f"{loss:.{TIE_DIGITS - 1}e}")
