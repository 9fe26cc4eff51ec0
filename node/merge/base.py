"""Merge-rule base: the `Update` value and the `MergeRule` class that every rule extends.

`MergeRule.merge(updates)` validates the input once (non-empty, unique senders, identical tensor
names and shapes, finite values, positive sample counts), sorts the updates by sender so the result
never depends on arrival order, and hands them to the rule's `_merge`, which is a few lines of numpy
in float64; weighted sums go through `_weighted_sum`, in sender order, so every node gets the same
bits on any CPU. Results are float32 arrays in the tensor order of the first (sorted) update.
Rules are agnostic to whether updates are model deltas or full weights.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

logger = logging.getLogger(__name__)
SAMPLE_CLIP = 3.0  # no update weighs more than 3x the median claimed sample count


class MergeError(ValueError):
    """Updates that cannot be merged together; the message says which and why."""


@dataclass(frozen=True, eq=False)
class Update:
    """One node's contribution to a round: named tensors, its training sample count, its sender id."""

    tensors: dict[str, np.ndarray]
    samples: int
    sender: str


class MergeRule(ABC):
    """Combine several updates into one set of tensors. Subclasses implement `_merge` only."""

    name: str = ""

    def merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        ordered = self._validate(updates)
        merged = self._merge(ordered)
        return {k: np.asarray(v, dtype=np.float32) for k, v in merged.items()}

    @abstractmethod
    def _merge(self, updates: Sequence[Update]) -> dict[str, np.ndarray]:
        """Merge validated updates, sorted by sender."""

    def at(self, base: dict[str, np.ndarray]) -> "MergeRule":
        """This rule for a round that starts from the weights `base`. Rules that combine updates
        without judging the models they make ignore it; `best` scores `base + update`."""
        return self

    @abstractmethod
    def tolerates(self, n: int) -> int:
        """How many of n updates may be arbitrary (scaled, flipped, garbage within the codec's
        bounds) while the merged result stays within the range the others span."""

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({params})"

    # helpers for subclasses -----------------------------------------------------------------

    @staticmethod
    def _weighted_sum(weights: Sequence[float], rows: Sequence[np.ndarray]) -> np.ndarray:
        """sum_i weights[i] * rows[i] in float64, added in row order, element by element.

        Every honest node must merge to the same bits, on whatever CPU its hospital runs: a BLAS
        product (`w @ X`, `tensordot`) adds its terms in an order its kernel picks, which differs
        between CPUs and even between columns of one call (8 rows of 1e16, 1, -1e16, 1, ... gave 6
        in four columns and 5 in the fifth). Separate IEEE multiplies and adds do not."""
        total = np.zeros(np.shape(rows[0]), dtype=np.float64)
        term = np.empty_like(total)
        for weight, row in zip(weights, rows):
            np.multiply(row, float(weight), out=term, dtype=np.float64)
            total += term
        return total

    @staticmethod
    def _stack(updates: Sequence[Update], name: str) -> np.ndarray:
        """(n_updates, *shape) float64 stack of one tensor."""
        return np.stack([np.asarray(u.tensors[name], dtype=np.float64) for u in updates])

    @staticmethod
    def _weights(updates: Sequence[Update]) -> np.ndarray:
        """Sample counts, each clipped to SAMPLE_CLIP x the median count, normalised to sum to 1.

        Counts are what senders claim: unclipped, one member claiming 10 million rows would own
        nearly all the weight of a weighted rule. Every node clips the same claims the same way.
        """
        w = np.array([u.samples for u in updates], dtype=np.float64)
        w = np.minimum(w, SAMPLE_CLIP * np.median(w))
        return w / w.sum()

    @staticmethod
    def _validate(updates: Sequence[Update]) -> list[Update]:
        if not updates:
            raise MergeError("no updates to merge")
        ordered = sorted(updates, key=lambda u: u.sender)
        senders = [u.sender for u in ordered]
        dupes = sorted({s for s in senders if senders.count(s) > 1})
        if dupes:
            raise MergeError(f"more than one update from sender(s) {dupes}")
        ref = ordered[0]
        if not ref.tensors:
            raise MergeError(f"update from {ref.sender} has no tensors")
        ref_shapes = {k: np.shape(v) for k, v in ref.tensors.items()}
        for u in ordered:
            if isinstance(u.samples, bool) or not isinstance(u.samples, (int, np.integer)) or u.samples <= 0:
                raise MergeError(f"update from {u.sender}: samples must be a positive integer, got {u.samples!r}")
            if set(u.tensors) != set(ref_shapes):
                raise MergeError(f"update from {u.sender}: tensor names {sorted(u.tensors)} differ from "
                                 f"{sorted(ref_shapes)} (from {ref.sender})")
            for k, shape in ref_shapes.items():
                v = u.tensors[k]
                if np.shape(v) != shape:
                    raise MergeError(f"update from {u.sender}: {k} has shape {np.shape(v)}, expected {shape}")
                if not np.all(np.isfinite(v)):
                    raise MergeError(f"update from {u.sender}: {k} holds NaN or Inf")
        return ordered


def reweighted(updates: Sequence[Update], factors: Mapping[str, float]) -> list[Update]:
    """The updates with each sender's sample count scaled by its factor (default 1), at least 1:
    how weighted rules (mean) take a per-member weight such as on-chain reputation. Rules that
    ignore counts (median, trimmed mean, geometric median) are unchanged by it."""
    return [replace(u, samples=max(1, round(u.samples * factors.get(u.sender, 1.0)))) for u in updates]
