"""The final-model rule (node.selection): pooled validation loss, the choice, and its bundle state."""

from __future__ import annotations

import numpy as np
import pytest

from node.bundle import bundle_shapes, model_bundle, selection_state, split_bundle
from node.preprocess import FeatureStats
from node.selection import (BestValidation, LastModel, decode_report, encode_report, final_model_by_name,
                            pooled_loss)
from p2p.codec import decode_update, encode_update

SHAPES = {"linear.weight": (2, 3), "linear.bias": (2,)}


def _weights(value: float) -> dict[str, np.ndarray]:
    return {k: np.full(s, value, dtype=np.float32) for k, s in SHAPES.items()}


def test_pooled_loss_weights_by_rows_and_clips_a_claim_of_millions() -> None:
    assert pooled_loss({"a": (0.5, 40), "b": (0.25, 10)}) == pytest.approx((0.5 * 40 + 0.25 * 10) / 50)
    honest = {"a": (0.5, 40), "b": (0.6, 30), "c": (0.4, 20)}
    liar = {**honest, "d": (0.0, 10_000_000)}
    # d's count is clipped at 3x the median count (35): it weighs 105 rows, not ten million
    assert pooled_loss(liar) == pytest.approx((0.5 * 40 + 0.6 * 30 + 0.4 * 20 + 0.0 * 105) / 195)
    assert pooled_loss(dict(reversed(list(liar.items())))) == pooled_loss(liar)  # order-independent
    with pytest.raises(ValueError):
        pooled_loss({})


def test_reports_survive_the_wire_and_nonsense_is_refused() -> None:
    blob = encode_update(encode_report(0.4567, 34), "f32")
    assert decode_report(decode_update(blob, expected={"val": (2,)})) == (pytest.approx(0.4567), 34)
    for bad in ([-0.1, 10], [0.5, 0], [0.5, 2.5], [2e6, 10]):
        with pytest.raises(ValueError):
            decode_report({"val": np.array(bad, dtype=np.float32)})


def test_best_validation_keeps_the_lowest_and_the_last_model_otherwise() -> None:
    rule = BestValidation(SHAPES)
    last = _weights(9.0)
    assert rule.final(last) is last and rule.chosen_round == 0  # nothing chosen yet: the last model
    assert rule.observe(1, _weights(1.0), 0.70)
    assert rule.observe(2, _weights(2.0), 0.50)
    assert not rule.observe(3, _weights(3.0), 0.55)  # worse: round 2 stays the choice
    assert not rule.observe(4, _weights(4.0), 0.50)  # a tie keeps the earlier model
    assert rule.chosen_round == 2
    assert all(np.array_equal(v, _weights(2.0)[k]) for k, v in rule.final(last).items())
    assert LastModel(SHAPES).final(last) is last


def test_the_choice_travels_in_the_bundle_and_a_node_that_adopts_it_holds_the_same() -> None:
    rule = final_model_by_name("best_val", SHAPES)
    rule.observe(3, _weights(3.0), 0.42)
    stats = FeatureStats.of(np.ones((4, 3), dtype=np.float32))
    bundle = model_bundle(_weights(7.0), stats, None, rule.state())
    shapes = bundle_shapes(SHAPES, 3, None, rule.state_shapes())
    decoded = decode_update(encode_update(bundle, "f32", max_abs=1e36), expected=shapes, max_abs=1e36)
    weights, _ = split_bundle(decoded)
    assert set(weights) == set(SHAPES)  # the chosen model's tensors are not taken for the weights
    other = final_model_by_name("best_val", SHAPES)
    other.load(selection_state(decoded))
    assert other.chosen_round == 3 and other.chosen_loss == pytest.approx(0.42)
    assert all(np.array_equal(v, _weights(3.0)[k]) for k, v in other.final(weights).items())
    with pytest.raises(ValueError):
        other.load({})  # another rule's (or no) state
    with pytest.raises(ValueError):
        final_model_by_name("first", SHAPES)
