"""The model bundle: what a node checkpoints and offers late joiners, in one tensor set.

A bundle holds the merged weights (names prefixed "w/"), the swarm's input-scaling statistics
("s/") and, when the swarm optimiser keeps any, its state ("o/", node.swarmopt), so a node that
adopts a bundle gets a model, the scaling it expects and the optimiser state to continue from.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .preprocess import STATS_TENSOR_NAMES, FeatureStats

__all__ = ["BUNDLE_MAX_ABS", "bundle_shapes", "model_bundle", "optimizer_state", "split_bundle", "stats_shapes"]

Tensors = dict[str, np.ndarray]
WEIGHT_PREFIX, STATS_PREFIX, OPTIMIZER_PREFIX = "w/", "s/", "o/"
# The codec's bound on values in a bundle: the combined statistics of up to a million members of
# STATS_MAX_ABS each; merged weights move by at most the codec's default bound per round, so
# they stay far below it too.
BUNDLE_MAX_ABS = 1e36


def stats_shapes(n_features: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the statistics tensors a node shares before round 1."""
    return {k: (n_features,) for k in STATS_TENSOR_NAMES}


def bundle_shapes(weight_shapes: Mapping[str, tuple[int, ...]], n_features: int,
                  optimizer_shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
    """Shapes of a bundle for a model with `weight_shapes` on `n_features` inputs (and the swarm
    optimiser's state, if it keeps one)."""
    shapes = {WEIGHT_PREFIX + k: tuple(s) for k, s in weight_shapes.items()}
    shapes.update({STATS_PREFIX + k: s for k, s in stats_shapes(n_features).items()})
    shapes.update({OPTIMIZER_PREFIX + k: tuple(s) for k, s in (optimizer_shapes or {}).items()})
    return shapes


def model_bundle(weights: Mapping[str, np.ndarray], stats: FeatureStats,
                 optimizer: Mapping[str, np.ndarray] | None = None) -> Tensors:
    bundle = {WEIGHT_PREFIX + k: v for k, v in weights.items()}
    bundle.update({STATS_PREFIX + k: v for k, v in stats.to_tensors().items()})
    bundle.update({OPTIMIZER_PREFIX + k: v for k, v in (optimizer or {}).items()})
    return bundle


def optimizer_state(bundle: Mapping[str, np.ndarray]) -> Tensors:
    """The swarm optimiser's state in a bundle (empty for a stateless one)."""
    return {k[len(OPTIMIZER_PREFIX):]: v for k, v in bundle.items() if k.startswith(OPTIMIZER_PREFIX)}


def split_bundle(bundle: Mapping[str, np.ndarray]) -> tuple[Tensors, FeatureStats]:
    """The weights and the statistics of a bundle."""
    weights = {k[len(WEIGHT_PREFIX):]: v for k, v in bundle.items() if k.startswith(WEIGHT_PREFIX)}
    stats = {k[len(STATS_PREFIX):]: v for k, v in bundle.items() if k.startswith(STATS_PREFIX)}
    return weights, FeatureStats.from_tensors(stats)
