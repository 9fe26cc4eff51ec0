"""Coordinate-wise median: Yin, Chen, Ramchandran and Bartlett, "Byzantine-Robust Distributed
Learning: Towards Optimal Statistical Rates", ICML 2018, arXiv:1803.01498.

Each coordinate of the merged tensors is the (unweighted) median of that coordinate over the updates
(the mean of the two middle values for an even count). Tolerates fewer than half bad updates.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import MergeRule, Update


class CoordinateMedian(MergeRule):
    name = "median"

    def _merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        return {k: np.median(self._stack(updates, k), axis=0) for k in updates[0].tensors}
