"""Coordinate-wise trimmed mean: Yin, Chen, Ramchandran and Bartlett, "Byzantine-Robust Distributed
Learning: Towards Optimal Statistical Rates", ICML 2018, arXiv:1803.01498.

For each coordinate, drop the floor(beta * n) largest and the floor(beta * n) smallest values over
the n updates and average the rest (unweighted). beta in [0, 0.5); beta = 0 is the plain mean.
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

    def _merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        n = len(updates)
        k = int(np.floor(self.beta * n))
        out = {}
        for name in updates[0].tensors:
            stack = np.sort(self._stack(updates, name), axis=0)
            out[name] = stack[k:n - k].mean(axis=0)
        return out
