"""Models and local training: seeded, deterministic, and they learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from node.datasets import heart_hospital, heart_hospitals
from node.models import build_model, load_numpy_state, parameter_count, state_shapes, state_to_numpy
from node.preprocess import FeatureStats, Scaler
from node.training import evaluate, roc_auc, train_local


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
