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

    def tolerates(self, n: int) -> int:
        return (n - 1) // 2

    def _merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        # Sorting the short axis and taking the middle gives np.median's values bit for bit,
        # 2-4x faster on a few updates of millions of parameters (np.median partitions).
        n, out = len(updates), {}
        for name in updates[0].tensors:
            ranked = np.sort(self._stack(updates, name), axis=0)
            out[name] = ranked[n // 2] if n % 2 else (ranked[n // 2 - 1] + ranked[n // 2]) / 2
        return out
