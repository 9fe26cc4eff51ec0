"""Learning-quality parts: swarm optimisers (FedOpt), FedProx, the learning-rate schedule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from node.bundle import bundle_shapes, model_bundle, optimizer_state, split_bundle
from node.models import build_model, state_to_numpy
from node.preprocess import FeatureStats
from node.swarmopt import SWARM_OPTIMIZERS, optimizer_by_name
from node.training import scheduled_lr, train_local

SHAPES = {"w": (3, 2), "b": (3,)}


def _deltas(seed: int, n: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in SHAPES.items()} for _ in range(n)]


def test_plain_is_the_merged_update_added() -> None:
    w = {k: np.ones(s, np.float32) for k, s in SHAPES.items()}
    d = _deltas(0, 1)[0]
    out = optimizer_by_name("none", SHAPES).step(w, d)
    assert all(np.array_equal(out[k], (w[k] + d[k]).astype(np.float32)) for k in SHAPES)
    assert optimizer_by_name("none", SHAPES).state_shapes() == {}


def test_momentum_accumulates_past_updates() -> None:
    opt = optimizer_by_name("momentum", SHAPES, lr=1.0)
    w = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
    d = {k: np.full(s, 0.5, np.float32) for k, s in SHAPES.items()}
    w1 = opt.step(w, d)
    w2 = opt.step(w1, d)
    assert np.allclose(w1["b"], 0.5) and np.allclose(w2["b"], 0.5 + 0.5 * (1 + 0.9))


@pytest.mark.parametrize("name", ["momentum", "adam", "yogi"])
def test_a_node_adopting_the_state_stays_bit_identical(name: str) -> None:
    """Two nodes step together; a third adopts the state from the first's bundle mid-run."""
    a, b = optimizer_by_name(name, SHAPES), optimizer_by_name(name, SHAPES)
    wa = wb = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
    deltas = _deltas(1, 6)
    stats = FeatureStats.of(np.ones((4, 2), np.float32))
    for i, d in enumerate(deltas):
        wa, wb = a.step(wa, d), b.step(wb, d)
        if i == 2:  # c joins from a's checkpointed bundle
            bundle = model_bundle(wa, stats, a.state())
            assert set(bundle_shapes(SHAPES, 2, a.state_shapes())) == set(bundle)
            c = optimizer_by_name(name, SHAPES)
            c.load(optimizer_state(bundle))
            wc = split_bundle(bundle)[0]
        elif i > 2:
            wc = c.step(wc, d)
    assert all(np.array_equal(wa[k], wb[k]) and np.array_equal(wa[k], wc[k]) for k in SHAPES)
    assert any(np.abs(v).sum() > 0 for v in a.state().values())


def test_adaptive_optimisers_move_by_about_lr_per_coordinate() -> None:
    for name in ("adam", "yogi"):
        opt = optimizer_by_name(name, SHAPES, lr=0.01)
        w = {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}
        tiny = {k: np.full(s, 1e-4, np.float32) for k, s in SHAPES.items()}
        out = opt.step(w, tiny)
        # first step: m = 0.1 d, v = 0.01 d^2 (adam) -> a move of lr x 0.1 d / (0.1 |d| + tau)
        assert 0 < float(out["b"][0]) < 0.01


def test_bad_state_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown swarm optimiser"):
        optimizer_by_name("lion", SHAPES)
    opt = optimizer_by_name("adam", SHAPES)
    with pytest.raises(ValueError, match="state names differ"):
        opt.load({"m/w": np.zeros((3, 2))})
    bad = opt.state()
    bad["m/b"] = np.full(3, np.nan, np.float32)
    with pytest.raises(ValueError, match="non-finite"):
        opt.load(bad)
    assert set(SWARM_OPTIMIZERS) == {"none", "momentum", "adam", "yogi"}


def test_fedprox_keeps_local_training_near_the_start() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    moved = {}
    for mu in (0.0, 10.0):
        model = build_model("logreg", 5, 2, seed=0)
        start = state_to_numpy(model)
        train_local(model, x, y, epochs=5, batch_size=16, lr=0.1, seed=0, optimizer="sgd", prox_mu=mu)
        moved[mu] = sum(float(np.abs(v - start[k]).sum()) for k, v in state_to_numpy(model).items())
    assert moved[10.0] < 0.5 * moved[0.0]
    with pytest.raises(ValueError, match="invalid training settings"):
        train_local(build_model("logreg", 5, 2), x, y, epochs=1, batch_size=8, lr=0.1, seed=0, prox_mu=-1)
    assert torch.get_num_threads() >= 1


def test_cosine_schedule_decays_to_its_floor() -> None:
    assert scheduled_lr(0.1, "constant", 7, 10) == 0.1
    lrs = [scheduled_lr(0.1, "cosine", r, 10) for r in range(1, 11)]
    assert lrs[0] == pytest.approx(0.1) and lrs[-1] == pytest.approx(0.01)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert scheduled_lr(0.1, "cosine", 1, 1) == 0.1
