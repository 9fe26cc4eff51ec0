"""The `best` merge rule (the evaluation layer): known losses give a known choice, on every node alike."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from node.merge import BestModel, CoordinateMedian, Update, rule_by_name
from node.merge.best import _comparable

BASE = {"w": np.array([1.0, 1.0], dtype=np.float32), "b": np.array([0.0], dtype=np.float32)}
TARGET = np.array([2.0, 3.0])


def upd(sender: str, w, b=0.0) -> Update:
    return Update({"w": np.asarray(w, dtype=np.float32), "b": np.asarray([b], dtype=np.float32)}, 10, sender)


def distance_to_target(model: dict[str, np.ndarray]) -> float:
    """A judge with known values: the squared distance of the model's w from TARGET."""
    return float(np.sum((model["w"] - TARGET) ** 2) + model["b"][0] ** 2)


def test_adopts_the_update_whose_model_scores_best() -> None:
    ups = [upd("a", [0.0, 0.0]), upd("b", [1.0, 2.0]), upd("c", [5.0, 5.0])]  # b makes w = TARGET
    rule = BestModel(distance_to_target).at(BASE)
    out = rule.merge(ups)
    np.testing.assert_array_equal(out["w"], [1.0, 2.0])
    np.testing.assert_array_equal(out["b"], [0.0])
    assert rule.last_losses == {"a": 5.0, "b": 0.0, "c": 25.0}


def test_choice_is_the_same_in_every_arrival_order_and_ties_go_to_the_first_sender() -> None:
    ups = [upd("d", [1.0, 2.0], 0.5), upd("b", [1.0, 2.0], -0.5), upd("c", [0.0, 0.0]), upd("a", [9.0, 9.0])]
    rule = BestModel(distance_to_target).at(BASE)
    for perm in itertools.permutations(ups):
        out = rule.merge(list(perm))
        assert out["b"][0] == -0.5  # b and d tie at loss 0.25: b sorts first


def test_losses_equal_to_six_digits_are_a_tie() -> None:
    assert _comparable(1.0000001) == _comparable(1.0000004) == 1.0
    assert _comparable(1.00001) > _comparable(1.0)
    assert _comparable(math.nan) == math.inf and _comparable(-math.inf) == math.inf


def test_a_model_with_nan_loss_never_wins() -> None:
    losses = {"a": math.nan, "b": 3.0}
    rule = BestModel(lambda m: losses["a" if m["b"][0] > 0 else "b"]).at(BASE)
    out = rule.merge([upd("a", [0.0, 0.0], 1.0), upd("b", [0.0, 0.0], -1.0)])
    assert out["b"][0] == -1.0


def test_unbound_it_merges_like_the_median_for_the_contribution_reference() -> None:
    ups = [upd("a", [0.0, 0.0]), upd("b", [1.0, 2.0]), upd("c", [5.0, 5.0])]
    for rule in (BestModel(distance_to_target), rule_by_name("best")):
        out = rule.merge(ups)
        ref = CoordinateMedian().merge(ups)
        assert all(np.array_equal(out[k], ref[k]) for k in ref)


def test_binding_leaves_the_configured_rule_unbound() -> None:
    rule = BestModel(distance_to_target)
    bound = rule.at(BASE)
    assert rule.base is None and bound.base is not None and bound.judge is rule.judge
    assert rule_by_name("median").at(BASE).merge([upd("a", [1.0, 1.0])])["w"].tolist() == [1.0, 1.0]


def test_bad_updates_are_refused_before_judging() -> None:
    judged: list[str] = []
    rule = BestModel(lambda m: judged.append("x") or 0.0).at(BASE)
    with pytest.raises(ValueError):
        rule.merge([upd("a", [0.0, 0.0]), upd("b", [np.nan, 0.0])])
    assert judged == []
