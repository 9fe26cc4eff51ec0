"""Swarm-wide preprocessing: feature means and spreads from sums and counts, never rows.

Before round 1 every node computes `FeatureStats.of(train.x)` on its own training rows (per encoded
column: count of present values, sum, sum of squares), shares it as a handful of float32 tensors
(`to_tensors`, travels with the p2p tensor codec as an announcement of kind "stats"), and combines
what it receives with `FeatureStats.robust_combine`. `Scaler.from_stats` then standardises every
node's inputs identically and imputes missing values with the swarm mean. Test rows never feed the
stats.

Statistics are what peers claim, so with three or more nodes the swarm's mean and variance per
column are the medians of the nodes' own means and variances (`robust_combine`): a minority
claiming extreme values or millions of rows cannot move the scaling outside what the honest
nodes span. Exact pooling (`combine`) is kept for two nodes, where no median protects anything,
and is what `swarm.statistics = "pooled"` asks for (STATISTICS): every row counts once, as if the
rows were in one place, which a consortium of trusted members may prefer (the heart files' settings),
and which one member's claims move arbitrarily.

Float64 sums do not survive a float32 codec exactly, so `to_tensors` splits each float64 vector into
a float32 high part and a float32 remainder; `from_tensors` adds them back (relative error ~1e-14).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)

STATS_TENSOR_NAMES: tuple[str, ...] = ("count", "sum_hi", "sum_lo", "sumsq_hi", "sumsq_lo")
# The codec's bound on values (`max_abs`) for a node's statistics blob. Sums over rows go far
# beyond the default bound for model updates (a real breast cancer shard: sums of squares of
# 5e8); with feature values within `datasets.MAX_FEATURE_ABS` (1e12) and a million rows they
# stay below this, and a peer cannot send values whose sum would overflow float32.
STATS_MAX_ABS = 1e30


def _split64(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    hi = v.astype(np.float32)
    lo = (v - hi.astype(np.float64)).astype(np.float32)
    return hi, lo


@dataclass(frozen=True, eq=False)
class FeatureStats:
    """Per encoded column: number of present (non-NaN) values, their sum and sum of squares (float64)."""

    count: np.ndarray
    sum: np.ndarray
    sumsq: np.ndarray

    def __post_init__(self) -> None:
        shapes = {a.shape for a in (self.count, self.sum, self.sumsq)}
        if len(shapes) != 1 or self.count.ndim != 1:
            raise ValueError(f"count, sum and sumsq must be 1-D of equal length, got {shapes}")
        for name in ("count", "sum", "sumsq"):
            a = getattr(self, name)
            if a.dtype != np.float64:
                object.__setattr__(self, name, a.astype(np.float64))
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"feature stats: {name} holds NaN or Inf")
        if np.any(self.count < 0) or np.any(self.sumsq < 0) or np.any(self.count != np.round(self.count)):
            raise ValueError("feature stats: counts must be non-negative integers and sums of squares >= 0")

    @property
    def n_features(self) -> int:
        return int(self.count.shape[0])

    @classmethod
    def of(cls, x: np.ndarray) -> "FeatureStats":
        """Statistics of one node's training rows (NaN = missing, not counted)."""
        if x.ndim != 2:
            raise ValueError(f"x must be 2-D, got shape {x.shape}")
        x64 = np.asarray(x, dtype=np.float64)
        present = ~np.isnan(x64)
        filled = np.where(present, x64, 0.0)
        return cls(present.sum(axis=0).astype(np.float64), filled.sum(axis=0), (filled * filled).sum(axis=0))

    @classmethod
    def combine(cls, parts: Sequence["FeatureStats"]) -> "FeatureStats":
        """Swarm statistics: the element-wise sum of every node's statistics (order-independent)."""
        if not parts:
            raise ValueError("cannot combine zero feature statistics")
        widths = {p.n_features for p in parts}
        if len(widths) != 1:
            raise ValueError(f"feature statistics disagree on the number of features: {sorted(widths)}")
        # math.fsum-like exactness is not needed; sort by value to make the sum order-independent
        count = np.sort(np.stack([p.count for p in parts]), axis=0).sum(axis=0)
        total = np.sort(np.stack([p.sum for p in parts]), axis=0).sum(axis=0)
        sumsq = np.sort(np.stack([p.sumsq for p in parts]), axis=0).sum(axis=0)
        return cls(count, total, sumsq)

    @classmethod
    def robust_combine(cls, parts: Sequence["FeatureStats"]) -> "FeatureStats":
        """Swarm statistics that a minority of lying parts cannot steer (see the module docstring).

        Per column: mean and variance are the medians over the parts that have values there;
        the count is the parts' total with each part clipped at 3x the median count. The result
        is written back as sums, so `Scaler.from_stats` reads it like any other statistics.
        """
        if len(parts) < 3:
            return cls.combine(parts)
        exact = cls.combine(parts)  # checks widths
        count = np.stack([p.count for p in parts])
        present = count > 0
        safe = np.maximum(count, 1.0)
        means = np.stack([p.sum for p in parts]) / safe
        variances = np.maximum(np.stack([p.sumsq for p in parts]) / safe - means * means, 0.0)
        mean = _median_present(means, present)
        var = _median_present(variances, present)
        clipped = np.minimum(count, 3.0 * _median_present(count, present)).sum(axis=0)
        clipped = np.where(exact.count > 0, np.round(clipped), 0.0)
        return cls(clipped, mean * clipped, (var + mean * mean) * clipped)

    def to_tensors(self) -> dict[str, np.ndarray]:
        """float32 tensors for the wire codec (hi/lo split keeps float64 precision)."""
        sum_hi, sum_lo = _split64(self.sum)
        sq_hi, sq_lo = _split64(self.sumsq)
        return {"count": self.count.astype(np.float32), "sum_hi": sum_hi, "sum_lo": sum_lo,
                "sumsq_hi": sq_hi, "sumsq_lo": sq_lo}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, np.ndarray]) -> "FeatureStats":
        """Inverse of `to_tensors`; raises ValueError on missing names, wrong shapes or bad values."""
        if set(tensors) != set(STATS_TENSOR_NAMES):
            raise ValueError(f"feature stats tensors must be named {STATS_TENSOR_NAMES}, got {tuple(tensors)}")
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in tensors.items()}
        return cls(arrays["count"], arrays["sum_hi"] + arrays["sum_lo"], arrays["sumsq_hi"] + arrays["sumsq_lo"])

    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes to pass to the codec's `expected` when decoding a peer's stats."""
        return {k: (self.n_features,) for k in STATS_TENSOR_NAMES}


def _median_present(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Per column, the median of `values` over the rows where `present` (0 where none is)."""
    masked = np.where(present, values, np.nan)
    with np.errstate(all="ignore"):
        out = np.nanmedian(masked, axis=0) if present.any() else np.zeros(values.shape[1])
    return np.nan_to_num(out, nan=0.0)


@dataclass(frozen=True, eq=False)
class Scaler:
    """Standardise with swarm mean and std; missing values become the swarm mean (0 after scaling)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_stats(cls, stats: FeatureStats, min_std: float = 1e-6) -> "Scaler":
        """Columns with no values get mean 0; constant columns get std 1 (left unscaled)."""
        count = np.maximum(stats.count, 1.0)
        mean = np.where(stats.count > 0, stats.sum / count, 0.0)
        var = np.maximum(stats.sumsq / count - mean * mean, 0.0)
        std = np.sqrt(var)
        std = np.where(std < min_std, 1.0, std)
        return cls(mean, std)

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """float32 (n, n_features): (x - mean) / std, NaN -> 0 (the swarm mean)."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected (n, {self.n_features}) input, got {x.shape}")
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0).astype(np.float32)


# How a node combines the swarm's statistics (`swarm.statistics`): "robust", the medians of the nodes'
# own means and variances (the default); "pooled", the exact sums over every node's rows.
STATISTICS: dict[str, Callable[[Sequence[FeatureStats]], FeatureStats]] = {
    "robust": FeatureStats.robust_combine, "pooled": FeatureStats.combine}
