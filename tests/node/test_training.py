"""Models and local training: seeded, deterministic, and they learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from node.datasets import heart_hospital, heart_hospitals
from node.models import build_model, load_numpy_state, parameter_count, state_shapes, state_to_numpy
from node.preprocess import FeatureStats, Scaler
from node.merge import Update, rule_by_name
from node.training import evaluate, passes_for, roc_auc, train_local


@pytest.fixture(scope="module")
def cleveland():
    nodes = heart_hospitals(seed=0)
    scaler = Scaler.from_stats(FeatureStats.combine([FeatureStats.of(d.train.x) for d in nodes]))
    d = nodes[0]
    return scaler.transform(d.train.x), d.train.y, scaler.transform(d.test.x), d.test.y


def test_models_build_identically_and_round_trip_their_state() -> None:
    before = torch.random.get_rng_state()
    for kind in ("logreg", "mlp", "cnn1d"):
        a, b = build_model(kind, 22, seed=5), build_model(kind, 22, seed=5)
        sa = state_to_numpy(a)
        assert all(np.array_equal(sa[k], v) for k, v in state_to_numpy(b).items())
        assert list(sa) == list(a.state_dict()) and all(v.dtype == np.float32 for v in sa.values())
        c = build_model(kind, 22, seed=6)
        load_numpy_state(c, sa)
        assert all(np.array_equal(sa[k], v) for k, v in state_to_numpy(c).items())
        assert parameter_count(a) == sum(int(np.prod(s)) for s in state_shapes(a).values())
    assert torch.equal(before, torch.random.get_rng_state())    # global RNG untouched
    with pytest.raises(ValueError):
        load_numpy_state(build_model("logreg", 22), {"linear.weight": np.zeros((2, 3), np.float32),
                                                      "linear.bias": np.zeros(2, np.float32)})
    with pytest.raises(ValueError, match="unknown model kind"):
        build_model("transformer", 22)


def test_cnn1d_accepts_signals() -> None:
    model = build_model("cnn1d", 64, n_classes=3, in_channels=2, hidden=8)
    x = np.random.default_rng(0).normal(size=(10, 2, 64)).astype(np.float32)
    y = np.arange(10) % 3
    stats = train_local(model, x, y, epochs=2, batch_size=4, lr=1e-3, seed=0)
    assert stats.steps == 6
    assert model(torch.from_numpy(x)).shape == (10, 3)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_training_is_deterministic(cleveland, optimizer: str) -> None:
    xtr, ytr, _, _ = cleveland
    states = []
    for _ in range(2):
        model = build_model("mlp", xtr.shape[1], seed=1)
        train_local(model, xtr, ytr, epochs=3, batch_size=16, lr=0.01, seed=7, optimizer=optimizer, momentum=0.9)
        states.append(state_to_numpy(model))
    assert all(np.array_equal(states[0][k], states[1][k]) for k in states[0])
    other = build_model("mlp", xtr.shape[1], seed=1)
    train_local(other, xtr, ytr, epochs=3, batch_size=16, lr=0.01, seed=8, optimizer=optimizer, momentum=0.9)
    assert not all(np.array_equal(states[0][k], v) for k, v in state_to_numpy(other).items())


def test_cleveland_logreg_learns(cleveland) -> None:
    xtr, ytr, xte, yte = cleveland
    model = build_model("logreg", xtr.shape[1], seed=0)
    before = evaluate(model, xte, yte)
    stats = train_local(model, xtr, ytr, epochs=30, batch_size=32, lr=0.01, seed=0, weight_decay=1e-4)
    after = evaluate(model, xte, yte)
    assert stats.final_loss < stats.first_loss
    assert after.accuracy > 0.7 and after.auc > 0.8 and after.loss < before.loss


def test_training_rejects_unscaled_nan_inputs() -> None:
    d = heart_hospital("Hungary")
    with pytest.raises(ValueError, match="NaN"):
        train_local(build_model("logreg", 22), d.train.x, d.train.y, epochs=1, batch_size=8, lr=0.1, seed=0)


def test_roc_auc_matches_known_values() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(roc_auc(np.array([1, 1]), np.array([0.2, 0.3])))
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 200), rng.integers(0, 10, 200).astype(float)
    assert abs(roc_auc(y, s) - roc_auc_score(y, s)) < 1e-12


def test_local_steps_take_exactly_that_many_minibatches() -> None:
    x = np.random.default_rng(0).normal(size=(10, 3)).astype(np.float32)
    y = np.arange(10) % 2
    model = build_model("logreg", 3, seed=0)
    stats = train_local(model, x, y, epochs=1, batch_size=4, lr=0.1, seed=0, steps=7)
    assert (stats.steps, stats.epochs) == (7, 3) == (7, passes_for(10, 4, 1, 7))   # 3 batches a pass
    assert train_local(build_model("logreg", 3), x, y, epochs=5, batch_size=4, lr=0.1, seed=0, steps=2).steps == 2
    # whole passes' worth of steps are exactly those epochs (same shuffles, same weights)
    by_steps, by_epochs = build_model("logreg", 3, seed=0), build_model("logreg", 3, seed=0)
    train_local(by_steps, x, y, epochs=1, batch_size=4, lr=0.1, seed=3, steps=6)
    train_local(by_epochs, x, y, epochs=2, batch_size=4, lr=0.1, seed=3)
    a, b = state_to_numpy(by_steps), state_to_numpy(by_epochs)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="steps=-1"):
        train_local(build_model("logreg", 3), x, y, epochs=1, batch_size=4, lr=0.1, seed=0, steps=-1)


def _pooled_loss(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)))


def test_equal_local_steps_let_the_mean_merge_reach_the_pooled_optimum() -> None:
    """A site of 160 rows and one of 16 with other labels: with one pass each, the sample-weighted
    mean weighs the big site by rows x steps and settles off the pooled optimum; with the same steps
    on both it settles (nearly) on it."""
    rng = np.random.default_rng(0)
    big_x = rng.normal(size=(160, 4)).astype(np.float32)
    big_y = (big_x[:, 0] + 0.5 * rng.normal(size=160) > 0).astype(np.int64)
    small_x = (rng.normal(size=(16, 4)) + [0, 1, 0, 0]).astype(np.float32)
    small_y = (small_x[:, 1] > 0.5).astype(np.int64)
    x, y = np.concatenate([big_x, small_x]), np.concatenate([big_y, small_y])
    best = build_model("logreg", 4, seed=0)
    opt = torch.optim.LBFGS(best.parameters(), lr=1, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(best(torch.from_numpy(x)), torch.from_numpy(y))
        loss.backward()
        return loss

    opt.step(closure)
    optimum = _pooled_loss(best, x, y)
    gaps = {}
    for steps in (0, 10):   # 0: one pass each (10 and 1 steps of 16 rows)
        model = build_model("logreg", 4, seed=0)
        weights = state_to_numpy(model)
        for r in range(30):
            updates = []
            for name, (sx, sy) in {"big": (big_x, big_y), "small": (small_x, small_y)}.items():
                load_numpy_state(model, weights)
                train_local(model, sx, sy, epochs=1, batch_size=16, lr=0.2, seed=r, optimizer="sgd", steps=steps)
                trained = state_to_numpy(model)
                updates.append(Update({k: trained[k] - weights[k] for k in weights}, len(sx), name))
            merged = rule_by_name("mean").merge(updates)
            weights = {k: (weights[k] + merged[k]).astype(np.float32) for k in weights}
        load_numpy_state(model, weights)
        gaps[steps] = _pooled_loss(model, x, y) - optimum
    assert gaps[10] < 0.01 < gaps[0]
