"""Coordinate-wise trimmed mean: Yin, Chen, Ramchandran and Bartlett, "Byzantine-Robust Distributed
Learning: Towards Optimal Statistical Rates", ICML 2018, arXiv:1803.01498.

For each coordinate, drop the k largest and the k smallest values over the n updates and average
the rest (unweighted), with k = floor(beta * n) but at least 1 whenever beta > 0 and n >= 3: the
paper's floor alone trims nothing from the 4-hospital swarm (floor(0.2 * 4) = 0), and one update
scaled x100 then went straight through. beta in [0, 0.5); beta = 0 is the plain mean. Tolerates
k arbitrary updates among n.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .base import MergeRule, Update


class TrimmedMean(MergeRule):
    name = "trimmed"

    def __init__(self, beta: float = 0.2) -> None:
        if not 0.0 <= beta < 0.5:
            raise ValueError(f"trimmed mean: beta must be in [0, 0.5), got {beta}")
        self.beta = float(beta)

    def trimmed(self, n: int) -> int:
        """How many values are dropped from each end of each coordinate when merging n updates."""
        k = int(np.floor(self.beta * n))
        return max(k, 1) if self.beta > 0 and n >= 3 else k

    def tolerates(self, n: int) -> int:
        return self.trimmed(n)

    def _merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        n = len(updates)
        k = self.trimmed(n)
        out = {}
        for name in updates[0].tensors:
            # Sorted in the tensors' own precision (float32 on the wire) and summed in float64: the
            # same bits as sorting float64 copies, which cost half as much again.
            stack = np.sort(np.stack([np.asarray(u.tensors[name]) for u in updates]), axis=0)
            out[name] = stack[k:n - k].mean(axis=0, dtype=np.float64)
        return out
