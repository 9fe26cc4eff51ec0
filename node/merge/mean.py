"""Sample-weighted mean (FedAvg): McMahan et al., "Communication-Efficient Learning of Deep Networks
from Decentralized Data", AISTATS 2017, arXiv:1602.05629.

merged = sum_i n_i * x_i / sum_i n_i, where n_i is update i's training sample count. Not robust: one
scaled or sign-flipped update moves it arbitrarily.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import MergeRule, Update


class WeightedMean(MergeRule):
    name = "mean"

    def tolerates(self, n: int) -> int:
        return 0

    def _merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        w = self._weights(updates)
        return {k: self._weighted_sum(w, [u.tensors[k] for u in updates]) for k in updates[0].tensors}
