"""The final-model rules `scripts.bench.quality` compares on validation rows, and how it scores them."""

from __future__ import annotations

import numpy as np
import pytest

from scripts.bench.quality import FINAL_RULES, selected

LOSSES = np.array([0.60, 0.45, 0.50, 0.48, 0.47, 0.46, 0.452])


@pytest.mark.parametrize("rule, index", [
    ("last", 6), ("best_val", 1),
    ("moving3", 6),       # trailing means: 0.60, .525, .5167, .4767, .4833, .47, .4607
    ("moving5", 5),       # ..., (.45+.50+.48+.47+.46)/5 = .472, then .4724
    ("margin0.005", 6),   # best 0.45 is not 0.005 below the last 0.452
    ("second_half", 6),   # rounds 4-7: 0.48, 0.47, 0.46, 0.452
])
def test_each_rule_picks_the_round_it_says(rule: str, index: int) -> None:
    assert FINAL_RULES[rule](LOSSES) == index


def test_margin_takes_the_best_when_clearly_lower() -> None:
    losses = np.array([0.5, 0.40, 0.45, 0.46])
    assert FINAL_RULES["margin0.01"](losses) == 1 and FINAL_RULES["margin0.005"](losses) == 1


def test_held_out_scores_choose_on_one_half_and_score_on_the_other() -> None:
    # half 0 prefers round 1, half 1 prefers round 2; the last round is round 3
    halves = [[0.40, 0.60], [0.70, 0.30], [0.50, 0.50]]
    curve = [{"round": r + 1, "val": {"loss": float(np.mean(h))}, "val_halves": h, "test": {"accuracy": 0.5}}
             for r, h in enumerate(halves)]
    out = selected(curve)
    # best_val: half 0 picks round 1, scored on half 1 (0.60); half 1 picks round 2, scored on half 0 (0.70)
    assert out["held_out_rules"]["best_val"] == pytest.approx(0.65) == out["held_out_val"]
    assert out["held_out_rules"]["last"] == pytest.approx(0.50) == out["held_out_val_last"]
    assert out["round"] == 1  # lowest pooled loss: 0.50 (round 1) = 0.50 (round 2, 3): the first
