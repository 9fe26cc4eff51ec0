"""The exact optima `scripts.bench.quality` measures convergence and generalisation against."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from node.models import build_model
from node.preprocess import FeatureStats, Scaler
from scripts.bench.quality import objective, optimum, with_squares, _score, _pred


def _rows(n: int, seed: int, u_shaped: bool) -> tuple[np.ndarray, np.ndarray]:
    """A continuous column c and a 0/1 column b (a tenth of c missing); y from |c| > 1 (U-shaped in c)
    or from c + b (linear)."""
    rng = np.random.default_rng(seed)
    c, b = rng.normal(size=n), rng.integers(0, 2, size=n).astype(float)
    y = (np.abs(c) > 1.0) if u_shaped else (c + b + 0.3 * rng.normal(size=n) > 0.5)
    c[rng.random(n) < 0.1] = np.nan
    return np.column_stack([c, b]), y.astype(np.int64)


def _learner(x: np.ndarray) -> SimpleNamespace:
    """What these functions use of a node's Learner: its scaler, its fresh model and set_weights."""
    model = build_model("logreg", x.shape[1], 2)

    def set_weights(weights: dict[str, np.ndarray]) -> None:
        import torch

        model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()})

    return SimpleNamespace(scaler=Scaler.from_stats(FeatureStats.of(x)), model=model, set_weights=set_weights,
                           fresh_model=lambda: build_model("logreg", x.shape[1], 2))


def test_optimum_is_the_minimum_of_the_objective() -> None:
    x, y = _rows(300, 0, u_shaped=False)
    learner = _learner(x)
    best = optimum(learner, x, y, 0.05)
    floor = objective(learner, best, x, y, 0.05)
    rng = np.random.default_rng(1)
    for _ in range(5):  # any nearby point is higher
        moved = {k: v + 0.05 * rng.normal(size=v.shape).astype(np.float32) for k, v in best.items()}
        assert objective(learner, moved, x, y, 0.05) > floor


@pytest.mark.parametrize("u_shaped", [True, False])
def test_squares_help_only_where_the_label_is_curved_in_a_continuous_input(u_shaped: bool) -> None:
    fit_x, fit_y = _rows(400, 2, u_shaped)
    val_x, val_y = _rows(400, 3, u_shaped)
    learner = _learner(fit_x)
    linear = _score(val_y, _pred(learner, optimum(learner, fit_x, fit_y, 0.01), val_x))["loss"]
    squares = with_squares(learner, fit_x, fit_y, val_x, val_y, 0.01)
    if u_shaped:  # a line cannot separate |c| > 1; c^2 can
        assert squares < linear - 0.2
    else:  # nothing to gain: about the same loss (one more weight, fitted to noise)
        assert abs(squares - linear) < 0.02
