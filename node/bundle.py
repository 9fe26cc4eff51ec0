"""The model bundle: what a node checkpoints and offers late joiners, in one tensor set.

A bundle holds the merged weights (names prefixed "w/"), the swarm's input-scaling statistics
("s/"), when the swarm optimiser keeps any, its state ("o/", node.swarmopt), and, when the run
ends on its best-validation model, that model and its round and loss ("b/", node.selection), so a
node that adopts a bundle gets a model, the scaling it expects, the optimiser state to continue
from and the swarm's choice of final model.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .preprocess import STATS_TENSOR_NAMES, FeatureStats

__all__ = ["BUNDLE_MAX_ABS", "bundle_shapes", "model_bundle", "optimizer_state", "selection_state", "split_bundle",
           "stats_shapes"]

Tensors = dict[str, np.ndarray]
WEIGHT_PREFIX, STATS_PREFIX, OPTIMIZER_PREFIX, SELECTION_PREFIX = "w/", "s/", "o/", "b/"
# The codec's bound on values in a bundle: the combined statistics of up to a million members of
# STATS_MAX_ABS each; merged weights move by at most the codec's default bound per round, so
# they stay far below it too.
BUNDLE_MAX_ABS = 1e36


def stats_shapes(n_features: int) -> dict[str, tuple[int, ...]]:
    """Shapes of the statistics tensors a node shares before round 1."""
    return {k: (n_features,) for k in STATS_TENSOR_NAMES}


def bundle_shapes(weight_shapes: Mapping[str, tuple[int, ...]], n_features: int,
                  optimizer_shapes: Mapping[str, tuple[int, ...]] | None = None,
                  selection_shapes: Mapping[str, tuple[int, ...]] | None = None) -> dict[str, tuple[int, ...]]:
    """Shapes of a bundle for a model with `weight_shapes` on `n_features` inputs (and the swarm
    optimiser's and the final-model rule's state, where they keep one)."""
    shapes = {WEIGHT_PREFIX + k: tuple(s) for k, s in weight_shapes.items()}
    shapes.update({STATS_PREFIX + k: s for k, s in stats_shapes(n_features).items()})
    shapes.update({OPTIMIZER_PREFIX + k: tuple(s) for k, s in (optimizer_shapes or {}).items()})
    shapes.update({SELECTION_PREFIX + k: tuple(s) for k, s in (selection_shapes or {}).items()})
    return shapes


def model_bundle(weights: Mapping[str, np.ndarray], stats: FeatureStats,
                 optimizer: Mapping[str, np.ndarray] | None = None,
                 selection: Mapping[str, np.ndarray] | None = None) -> Tensors:
    bundle = {WEIGHT_PREFIX + k: v for k, v in weights.items()}
    bundle.update({STATS_PREFIX + k: v for k, v in stats.to_tensors().items()})
    bundle.update({OPTIMIZER_PREFIX + k: v for k, v in (optimizer or {}).items()})
    bundle.update({SELECTION_PREFIX + k: v for k, v in (selection or {}).items()})
    return bundle


def _prefixed(bundle: Mapping[str, np.ndarray], prefix: str) -> Tensors:
    return {k[len(prefix):]: v for k, v in bundle.items() if k.startswith(prefix)}


def optimizer_state(bundle: Mapping[str, np.ndarray]) -> Tensors:
    """The swarm optimiser's state in a bundle (empty for a stateless one)."""
    return _prefixed(bundle, OPTIMIZER_PREFIX)


def selection_state(bundle: Mapping[str, np.ndarray]) -> Tensors:
    """The final-model rule's state in a bundle (empty for `last`)."""
    return _prefixed(bundle, SELECTION_PREFIX)


def split_bundle(bundle: Mapping[str, np.ndarray]) -> tuple[Tensors, FeatureStats]:
    """The weights and the statistics of a bundle."""
    return _prefixed(bundle, WEIGHT_PREFIX), FeatureStats.from_tensors(_prefixed(bundle, STATS_PREFIX))
