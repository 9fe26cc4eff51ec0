"""The model bundle: what a node checkpoints and offers late joiners, in one tensor set.

A bundle holds the merged weights (names prefixed "w/") and the swarm's input-scaling
statistics ("s/"), so a node that adopts a bundle gets a model and the scaling it expects.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .preprocess import STATS_TENSOR_NAMES, FeatureStats

__all__ = ["BUNDLE_MAX_ABS", "bundle_shapes", "model_bundle", "split_bundle", "stats_shapes"]

Tensors = dict[str, np.ndarray]
WEIGHT_PREFIX, STATS_PREFIX = "w/", "s/"
# The codec's bound on values in a bundle: the combined statistics of up to a million members of
# STATS_MAX_ABS each; merged weights move by at most the codec's default bound per round, so
# they stay far below it too.
BUNDLE_MAX_ABS = 1e36


def stats_shapes(n_features: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the statistics tensors a node shares before round 1."""
    return {k: (n_features,) for k in STATS_TENSOR_NAMES}


def bundle_shapes(weight_shapes: Mapping[str, tuple[int, ...]], n_features: int) -> dict[str, tuple[int, ...]]:
    """Shapes of a bundle for a model with `weight_shapes` on `n_features` inputs."""
    shapes = {WEIGHT_PREFIX + k: tuple(s) for k, s in weight_shapes.items()}
    shapes.update({STATS_PREFIX + k: s for k, s in stats_shapes(n_features).items()})
    return shapes


def model_bundle(weights: Mapping[str, np.ndarray], stats: FeatureStats) -> Tensors:
    bundle = {WEIGHT_PREFIX + k: v for k, v in weights.items()}
    bundle.update({STATS_PREFIX + k: v for k, v in stats.to_tensors().items()})
    return bundle


def split_bundle(bundle: Mapping[str, np.ndarray]) -> tuple[Tensors, FeatureStats]:
    """The weights and the statistics of a bundle."""
    weights = {k[len(WEIGHT_PREFIX):]: v for k, v in bundle.items() if k.startswith(WEIGHT_PREFIX)}
    stats = {k[len(STATS_PREFIX):]: v for k, v in bundle.items() if k.startswith(STATS_PREFIX)}
    return weights, FeatureStats.from_tensors(stats)
