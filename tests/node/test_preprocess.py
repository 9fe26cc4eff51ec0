"""Swarm statistics from sums and counts; the scaler is built from training rows only."""

from __future__ import annotations

import numpy as np
import pytest

from node.datasets import heart_hospitals
from node.preprocess import STATISTICS, FeatureStats, Scaler


def test_combined_stats_equal_stats_of_the_concatenation() -> None:
    nodes = heart_hospitals(seed=0)
    parts = [FeatureStats.of(d.train.x) for d in nodes]
    combined = FeatureStats.combine(parts)
    whole = FeatureStats.of(np.concatenate([d.train.x for d in nodes]))
    for name in ("count", "sum", "sumsq"):
        np.testing.assert_allclose(getattr(combined, name), getattr(whole, name), rtol=1e-12)
    reordered = FeatureStats.combine(parts[::-1])
    assert all(np.array_equal(getattr(reordered, n), getattr(combined, n)) for n in ("count", "sum", "sumsq"))


def test_stats_survive_float32_tensors() -> None:
    x = np.random.default_rng(0).normal(1e4, 3.0, size=(500, 3)).astype(np.float32)
    stats = FeatureStats.of(x)
    tensors = stats.to_tensors()
    assert all(v.dtype == np.float32 for v in tensors.values())
    back = FeatureStats.from_tensors({k: v.copy() for k, v in tensors.items()})
    np.testing.assert_allclose(back.sumsq, stats.sumsq, rtol=1e-13)
    np.testing.assert_allclose(Scaler.from_stats(back).std, Scaler.from_stats(stats).std, rtol=1e-6)
    with pytest.raises(ValueError):
        FeatureStats.from_tensors({"count": tensors["count"]})
    with pytest.raises(ValueError):
        FeatureStats.combine([stats, FeatureStats.of(x[:, :2])])


def test_scaler_standardises_and_imputes_with_the_swarm_mean() -> None:
    x = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 8.0]], dtype=np.float32)
    scaler = Scaler.from_stats(FeatureStats.of(x))
    np.testing.assert_allclose(scaler.mean, [2.0, 6.0])
    np.testing.assert_allclose(scaler.std, [1.0, 2.0])
    np.testing.assert_allclose(scaler.transform(x), [[-1.0, 0.0], [1.0, -1.0], [0.0, 1.0]])


def test_scaler_never_sees_test_rows() -> None:
    nodes = heart_hospitals(seed=0)
    scaler = Scaler.from_stats(FeatureStats.combine([FeatureStats.of(d.train.x) for d in nodes]))
    train_only = np.concatenate([d.train.x for d in nodes]).astype(np.float64)
    np.testing.assert_allclose(scaler.mean, np.nanmean(train_only, axis=0), rtol=1e-9)
    with_test = np.concatenate([train_only] + [d.test.x for d in nodes])
    assert not np.allclose(scaler.mean, np.nanmean(with_test, axis=0), rtol=1e-6)
    z = np.concatenate([scaler.transform(d.train.x) for d in nodes])
    np.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-5)   # train rows centred (NaN -> 0 keeps it)


def test_robust_combine_keeps_a_lying_part_from_steering_the_scaling() -> None:
    rng = np.random.default_rng(3)
    honest = [FeatureStats.of(rng.normal(loc, 1.0, size=(200, 3))) for loc in (0.0, 0.5, 1.0)]
    liar = FeatureStats(np.full(3, 1e7), np.full(3, 1e7 * 1e6), np.full(3, 1e7 * 1e12 * 2))
    robust = Scaler.from_stats(FeatureStats.robust_combine(honest + [liar]))
    assert np.all((robust.mean > -0.2) & (robust.mean < 1.2))  # inside the honest means
    assert np.all((robust.std > 0.8) & (robust.std < 1.3))
    pooled = Scaler.from_stats(FeatureStats.combine(honest + [liar]))
    assert np.all(pooled.mean > 1e5)  # what exact pooling would have done
    shuffled = FeatureStats.robust_combine([honest[2], liar, honest[0], honest[1]])
    assert np.array_equal(shuffled.sum, FeatureStats.robust_combine(honest + [liar]).sum)


def test_robust_combine_pools_exactly_for_two_and_skips_missing_columns() -> None:
    x = np.array([[1.0, np.nan], [3.0, np.nan]])
    a, b = FeatureStats.of(x), FeatureStats.of(np.array([[5.0, 2.0]]))
    assert np.array_equal(FeatureStats.robust_combine([a, b]).sum, FeatureStats.combine([a, b]).sum)
    three = FeatureStats.robust_combine([a, a, b])
    assert three.count[1] == 1 and three.sum[1] == 2.0  # only one part has values in column 1


def test_swarm_statistics_choose_medians_or_every_row_once() -> None:
    nodes = heart_hospitals(seed=0)  # four hospitals of 30 to 300 rows, unlike each other
    parts = [FeatureStats.of(d.train.x) for d in nodes]
    rows = np.concatenate([d.train.x for d in nodes])
    pooled = Scaler.from_stats(STATISTICS["pooled"](parts))
    robust = Scaler.from_stats(STATISTICS["robust"](parts))
    # pooled: standardised as central training on all rows would be
    np.testing.assert_allclose(pooled.mean, np.nanmean(rows.astype(np.float64), axis=0), rtol=1e-6)
    assert np.abs(pooled.transform(rows).mean(axis=0)).max() < 1e-4
    # robust: the medians of the hospitals' own means, not the row-weighted mean
    assert np.abs(robust.mean - pooled.mean).max() > 0.1
    # one lying member: the medians stay within what the honest hospitals span, the sums do not
    liar = FeatureStats(parts[0].count, parts[0].sum * 1e3, parts[0].sumsq * 1e6)
    honest = np.stack([Scaler.from_stats(p).mean for p in parts[1:]])
    lo, hi = honest.min(axis=0) - 1e-9, honest.max(axis=0) + 1e-9
    steered = {name: Scaler.from_stats(STATISTICS[name]([liar, *parts[1:]])).mean for name in STATISTICS}
    assert np.all((steered["robust"] >= lo) & (steered["robust"] <= hi))
    assert np.any(steered["pooled"] > 10 * np.abs(hi) + 1)
