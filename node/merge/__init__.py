"""Merge rules as small swappable objects, one module per rule (Flower-style), and a registry.

    rule = rule_by_name("median")
    merged = rule.merge([Update(tensors, samples, sender), ...])
"""

from __future__ import annotations

from .base import MergeError, MergeRule, Update, reweighted
from .geomedian import GeometricMedian
from .mean import WeightedMean
from .median import CoordinateMedian
from .trimmed import TrimmedMean

RULES: dict[str, type[MergeRule]] = {
    cls.name: cls for cls in (WeightedMean, CoordinateMedian, TrimmedMean, GeometricMedian)
}


def rule_by_name(name: str, **kwargs: object) -> MergeRule:
    """Build a merge rule by its registry name ("mean", "median", "trimmed", "geomedian")."""
    try:
        cls = RULES[name]
    except KeyError:
        raise ValueError(f"unknown merge rule {name!r}; expected one of {tuple(RULES)}") from None
    try:
        return cls(**kwargs)  # type: ignore[arg-type]
    except TypeError as exc:
        raise ValueError(f"merge rule {name!r}: bad options {sorted(kwargs)}: {exc}") from None


__all__ = ["MergeError", "MergeRule", "Update", "RULES", "reweighted", "rule_by_name",
           "WeightedMean", "CoordinateMedian", "TrimmedMean", "GeometricMedian"]
