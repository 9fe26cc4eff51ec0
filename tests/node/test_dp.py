"""DP-SGD: the accountant against reference values, the budget, clipping and reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from node.config import config_from_mapping
from node.datasets import load_node_data
from incentive.ledger import PrivacyTerms
from node.dp import BudgetExhausted, DpSgd, epsilon_spent, plan_for, privacy_conflict
from node.learner import Learner, coarse_count
from node.models import build_model, state_to_numpy


@pytest.mark.parametrize("accountant, expected", [("rdp", 4.52), ("prv", 3.93)])
def test_accountants_match_the_reference_values(accountant: str, expected: float) -> None:
    # noise 1.1, sampling rate 0.125, 24 steps, delta 1e-5 (platform notes, measured with Opacus 1.6)
    assert epsilon_spent(1.1, 0.125, 24, 1e-5, accountant, orders=None) == pytest.approx(expected, abs=0.01)
    # the node's own RDP orders (integers only) give a bound at most a few percent above
    node = epsilon_spent(1.1, 0.125, 24, 1e-5, accountant)
    assert expected - 0.01 <= node <= expected * 1.03
    assert epsilon_spent(1.1, 0.125, 48, 1e-5, accountant) > expected  # more steps, more epsilon
    assert epsilon_spent(2.2, 0.125, 24, 1e-5, accountant) < expected  # more noise, less
    assert epsilon_spent(1.1, 0.125, 0, 1e-5, accountant) == 0.0


def test_the_plan_calibrates_noise_to_spend_the_budget_over_all_rounds() -> None:
    plan = plan_for(n_rows=180, batch_size=32, epochs=2, rounds=10, epsilon=3.0)
    assert plan.delta == pytest.approx(1 / 180)
    assert plan.sample_rate == pytest.approx(32 / 180)
    assert plan.steps_per_round == 2 * math.ceil(180 / 32)
    dp = DpSgd(plan)
    assert 2.9 <= dp.epsilon_after(10) <= 3.0
    assert dp.epsilon_after(11) > 3.0
    with pytest.raises(ValueError, match="delta"):
        plan_for(n_rows=180, batch_size=32, epochs=1, rounds=1, epsilon=1.0, delta=2.0)


def _data(n: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, (x[:, 0] + 0.3 * rng.normal(size=n) > 0).astype(np.int64)


def _train(seed: int, noise: float = 1.0) -> dict[str, np.ndarray]:
    x, y = _data()
    model = build_model("mlp", 6, 2, hidden=8, seed=0)
    plan = plan_for(n_rows=len(x), batch_size=16, epochs=1, rounds=5, epsilon=50.0, noise_multiplier=noise)
    DpSgd(plan).train(model, x, y, lr=0.05, seed=seed)
    return state_to_numpy(model)


def test_dp_training_is_seeded_and_reproducible() -> None:
    a, b, c = _train(7), _train(7), _train(8)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_per_example_clipping_bounds_what_one_outlier_row_can_move_the_model() -> None:
    x, y = _data(64)
    x[0] *= 1e4  # one patient with absurd values: a huge gradient
    start = build_model("logreg", 6, 2, hidden=8, seed=0)
    before = torch.cat([p.detach().flatten().clone() for p in start.parameters()])
    # q = 1 (every row every step), noise negligible, plain SGD: update = lr * sum(clipped) / n
    plan = plan_for(n_rows=64, batch_size=64, epochs=1, rounds=1, epsilon=math.inf, noise_multiplier=1e-3,
                    max_grad_norm=0.5)
    DpSgd(plan).train(start, x, y, lr=1.0, seed=0, optimizer="sgd")
    after = torch.cat([p.detach().flatten() for p in start.parameters()])
    assert float(torch.linalg.vector_norm(after - before)) <= 0.5 + 1e-3


def test_a_node_stops_before_it_would_exceed_its_budget() -> None:
    x, y = _data()
    plan = plan_for(n_rows=len(x), batch_size=16, epochs=1, rounds=10, epsilon=1.0, noise_multiplier=2.0)
    dp = DpSgd(plan)
    model = build_model("mlp", 6, 2, hidden=8, seed=0)
    trained = 0
    with pytest.raises(BudgetExhausted, match="budget of 1"):
        for r in range(10):
            dp.train(model, x, y, lr=0.05, seed=r)
            trained += 1
    assert 0 < trained < 10 and dp.rounds_trained == trained
    assert dp.spent <= 1.0 < dp.epsilon_after(trained + 1)


def test_the_learner_trains_with_dp_from_its_config_and_reports_epsilon() -> None:
    config = config_from_mapping({"name": "n"}, ["swarm.rounds=3", "dp.epsilon=2", "training.seed=4"])
    learner = Learner(config, load_node_data(config.data))
    learner.set_scaling(learner.local_stats())
    assert learner.dp is not None and learner.epsilon_spent == 0.0
    deltas = [learner.train_update(r) for r in (1, 2, 3)]
    assert all(np.isfinite(d[k]).all() for d in deltas for k in d)
    assert 1.8 < learner.epsilon_spent <= 2.0
    with pytest.raises(BudgetExhausted):
        learner.train_update(4)
    assert Learner(config_from_mapping({"name": "n"}), load_node_data(config.data)).dp is None


def test_announced_sample_counts_keep_two_significant_digits() -> None:
    assert [coarse_count(n) for n in (0, 7, 99, 100, 114, 115, 303, 1234, 99_999)] == \
        [1, 7, 99, 100, 110, 120, 300, 1200, 100_000]


def test_a_node_refuses_a_task_whose_privacy_terms_its_settings_break() -> None:
    dp = DpSgd(plan_for(n_rows=120, batch_size=16, epochs=1, rounds=5, epsilon=3.0, noise_multiplier=1.2))
    assert privacy_conflict(None, dp) is None and privacy_conflict(None, None) is None
    assert privacy_conflict(PrivacyTerms(epsilon=3.0), dp) is None
    assert privacy_conflict(PrivacyTerms(epsilon=3.0, noise_multiplier=1.0, max_grad_norm=1.0), dp) is None
    assert "DP is off" in privacy_conflict(PrivacyTerms(epsilon=3.0), None)
    assert "exceeds the task's budget" in privacy_conflict(PrivacyTerms(epsilon=2.0), dp)
    assert "below the task's" in privacy_conflict(PrivacyTerms(epsilon=3.0, noise_multiplier=1.5), dp)
    assert "clipping norm" in privacy_conflict(PrivacyTerms(epsilon=3.0, max_grad_norm=0.5), dp)
    assert "accountant" in privacy_conflict(PrivacyTerms(epsilon=3.0, accountant="prv"), dp)
    assert "delta" in privacy_conflict(PrivacyTerms(epsilon=3.0, delta=1e-5), dp)


def test_after_a_restart_the_rounds_behind_the_epsilon_on_chain_count_as_spent() -> None:
    plan = plan_for(n_rows=120, batch_size=16, epochs=1, rounds=10, epsilon=3.0, noise_multiplier=2.0)
    before = DpSgd(plan)
    before.rounds_trained = 3
    again = DpSgd(plan)
    assert again.resume(before.spent) == 3 and again.spent == before.spent
    assert DpSgd(plan).resume(0.0) == 0
    assert DpSgd(plan).resume(before.epsilon_after(4) - 0.002) == 3  # a report below round 4's
