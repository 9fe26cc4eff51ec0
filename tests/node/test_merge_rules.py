"""Merge rules on known inputs with known outputs, validation, and order independence."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from node.merge import (CoordinateMedian, GeometricMedian, MergeError, TrimmedMean, Update, WeightedMean,
                        reweighted, rule_by_name)


def upd(sender: str, w, b=0.0, samples: int = 1) -> Update:
    return Update({"w": np.asarray(w, dtype=np.float32), "b": np.asarray([b], dtype=np.float32)}, samples, sender)


def test_weighted_mean_is_exact() -> None:
    out = WeightedMean().merge([upd("a", [1.0, 2.0], 1.0, samples=1), upd("b", [4.0, 8.0], 4.0, samples=3)])
    np.testing.assert_array_equal(out["w"], np.array([3.25, 6.5], dtype=np.float32))
    np.testing.assert_array_equal(out["b"], np.array([3.25], dtype=np.float32))
    assert list(out) == ["w", "b"] and out["w"].dtype == np.float32


def test_median_ignores_one_wild_outlier() -> None:
    ups = [upd("a", [1.0, -1.0]), upd("b", [2.0, -2.0]), upd("c", [3.0, -3.0]), upd("evil", [1e6, 1e6])]
    out = CoordinateMedian().merge(ups[:3] + [upd("evil", [1e6, -1e6], 5.0)])
    np.testing.assert_array_equal(out["w"], [2.5, -2.5])  # even count: mean of the middle two
    out = CoordinateMedian().merge(ups[:3] + [ups[3], upd("d", [2.0, -2.0])])
    np.testing.assert_array_equal(out["w"], [2.0, -2.0])


def test_trimmed_mean_drops_extremes() -> None:
    ups = [upd("a", [1.0]), upd("b", [2.0]), upd("c", [3.0]), upd("d", [4.0]), upd("e", [-100.0]), upd("f", [100.0])]
    out = TrimmedMean(beta=0.2).merge(ups)  # floor(0.2 * 6) = 1 from each end
    np.testing.assert_allclose(out["w"], [2.5])
    np.testing.assert_allclose(TrimmedMean(beta=0.0).merge(ups)["w"], [10.0 / 6.0], rtol=1e-6)
    with pytest.raises(ValueError):
        TrimmedMean(beta=0.5)


@pytest.mark.parametrize("n", [4, 8, 13])
def test_trimmed_mean_has_the_bits_of_float64_sorting(n: int) -> None:
    rng = np.random.default_rng(n)
    ups = [Update({"w": (rng.standard_normal((40, 30)) * 10.0 ** rng.integers(-3, 3)).astype(np.float32)}, 1, f"s{i}")
           for i in range(n)]
    rule = TrimmedMean(beta=0.2)
    k = rule.trimmed(n)
    wide = np.sort(np.stack([u.tensors["w"].astype(np.float64) for u in ups]), axis=0)
    expected = wide[k:n - k].mean(axis=0).astype(np.float32)
    assert rule.merge(ups)["w"].tobytes() == expected.tobytes()


def test_geometric_median_stays_near_the_cluster() -> None:
    rng = np.random.default_rng(0)
    cluster = [upd(f"h{i}", rng.normal(1.0, 0.01, size=5), 1.0) for i in range(5)]
    ups = cluster + [upd("x", np.full(5, 1000.0), 1000.0), upd("y", np.full(5, -500.0), 0.0)]
    out = GeometricMedian().merge(ups)
    assert np.all(np.abs(out["w"] - 1.0) < 0.05) and abs(out["b"][0] - 1.0) < 0.05
    # mean is far away: the outliers would have dragged it
    assert np.all(WeightedMean().merge(ups)["w"] > 50)


def test_geometric_median_of_symmetric_points_is_the_centre_and_unweighted() -> None:
    ups = [upd("a", [1.0, 0.0]), upd("b", [-1.0, 0.0]), upd("c", [0.0, 1.0]), upd("d", [0.0, -1.0])]
    np.testing.assert_allclose(GeometricMedian().merge(ups)["w"], [0.0, 0.0], atol=1e-5)
    heavy = [upd("a", [0.0, 0.0], samples=1_000_000), upd("b", [1.0, 0.0]), upd("c", [1.0, 0.0])]
    np.testing.assert_allclose(GeometricMedian().merge(heavy)["w"], [1.0, 0.0], atol=1e-4)


@pytest.mark.parametrize("name", ["mean", "median", "trimmed", "geomedian"])
def test_merge_is_independent_of_update_order(name: str) -> None:
    rng = np.random.default_rng(1)
    ups = [Update({"w": rng.normal(size=(3, 4)).astype(np.float32), "b": rng.normal(size=4).astype(np.float32)},
                  int(rng.integers(1, 100)), f"n{i}") for i in range(5)]
    rule = rule_by_name(name)
    ref = rule.merge(ups)
    for perm in itertools.islice(itertools.permutations(ups), 0, 120, 7):
        out = rule.merge(list(perm))
        assert all(np.array_equal(out[k], ref[k]) for k in ref)


def test_validation_rejects_bad_updates() -> None:
    good = upd("a", [1.0, 2.0])
    cases = [
        [],
        [good, upd("a", [1.0, 2.0])],                                           # duplicate sender
        [good, upd("b", [1.0, 2.0, 3.0])],                                      # shape
        [good, Update({"w": np.ones(2, np.float32)}, 1, "b")],                  # names
        [good, upd("b", [np.nan, 1.0])],                                        # NaN
        [good, upd("b", [np.inf, 1.0])],                                        # Inf
        [good, upd("b", [1.0, 1.0], samples=0)],                                # samples
    ]
    for case in cases:
        with pytest.raises(MergeError):
            WeightedMean().merge(case)


def test_registry_names_and_errors() -> None:
    assert isinstance(rule_by_name("trimmed", beta=0.1), TrimmedMean)
    with pytest.raises(ValueError, match="unknown merge rule"):
        rule_by_name("krum")
    with pytest.raises(ValueError, match="bad options"):
        rule_by_name("median", beta=0.1)


def test_trimmed_mean_trims_one_of_four() -> None:
    honest = [upd("a", [1.0]), upd("b", [2.0]), upd("c", [3.0])]
    out = TrimmedMean(beta=0.2).merge(honest + [upd("evil", [100.0 * 3.0])])  # floor(0.8) would trim 0
    np.testing.assert_allclose(out["w"], [2.5])
    assert [TrimmedMean(beta=0.2).trimmed(n) for n in (2, 3, 4, 10, 16)] == [0, 1, 1, 2, 3]


@pytest.mark.parametrize("name", ["mean", "median", "trimmed", "geomedian"])
@pytest.mark.parametrize("n", [3, 4, 5, 8])
def test_each_rule_keeps_its_stated_bound(name: str, n: int) -> None:
    """With `tolerates(n)` updates replaced by huge ones, the merge stays near the honest ones
    (coordinate rules: inside their range per coordinate; the geometric median: within
    (n - f) / (n - 2f) times their radius of their centre); one more drags it far away."""
    rng = np.random.default_rng(n)
    rule = rule_by_name(name)
    f = rule.tolerates(n)
    honest = [upd(f"h{i}", rng.uniform(-1, 1, size=6), samples=int(rng.integers(50, 150))) for i in range(n - f)]
    lo = np.min([u.tensors["w"] for u in honest], axis=0)
    hi = np.max([u.tensors["w"] for u in honest], axis=0)
    evil = [upd(f"x{i}", np.full(6, 1e4), samples=10_000_000) for i in range(f)]
    out = rule.merge(honest + evil)["w"]
    if name == "geomedian":
        points = np.array([u.tensors["w"] for u in honest])
        centre = points.mean(axis=0)
        radius = np.linalg.norm(points - centre, axis=1).max()
        assert np.linalg.norm(out - centre) <= (n - f) / (n - 2 * f) * radius + 1e-3
    else:
        assert np.all(out >= lo - 1e-3) and np.all(out <= hi + 1e-3)
    beyond = [upd(f"x{i}", np.full(6, 1e4), samples=100) for i in range(f + 1)]
    assert np.any(rule.merge(honest[: n - f - 1] + beyond)["w"] > hi + 1.0)


def test_claimed_sample_counts_are_clipped() -> None:
    ups = [upd("a", [0.0], samples=100), upd("b", [0.0], samples=100), upd("liar", [1.0], samples=10_000_000)]
    out = WeightedMean().merge(ups)["w"]
    np.testing.assert_allclose(out, [0.6])  # the liar weighs 3 x the median (300), not 99.998%


def test_reputation_reweighting_moves_the_mean_and_not_the_median() -> None:
    ups = [Update({"w": np.array([v], dtype=np.float32)}, 100, s) for v, s in ((0.0, "a"), (1.0, "b"), (4.0, "c"))]
    factors = {"a": 1.0, "b": 1.0, "c": 0.25}  # c's reputation is a quarter of the average
    weighted = reweighted(ups, factors)
    assert [u.samples for u in weighted] == [100, 100, 25]
    assert rule_by_name("mean").merge(weighted)["w"][0] == pytest.approx((0 + 100 + 4 * 25) / 225)
    assert rule_by_name("mean").merge(ups)["w"][0] == pytest.approx(5 / 3)
    assert rule_by_name("median").merge(weighted)["w"][0] == rule_by_name("median").merge(ups)["w"][0] == 1.0
    assert reweighted(ups, {"a": 0.0})[0].samples == 1  # never 0: a rule's weights must stay positive


def _fixed_order(weights: list[float], rows: list[np.ndarray]) -> np.ndarray:
    total = np.zeros(rows[0].shape)
    for w, row in zip(weights, rows):
        total = total + w * row.astype(np.float64)
    return total


def test_weighted_sums_add_in_sender_order_whatever_the_column() -> None:
    # Rows whose sum depends on the order of the additions: a BLAS product (tensordot, @) added
    # them in kernel order and gave 6 in four columns and 5 in the fifth; every node must get the
    # same bits on any CPU, so the rules add row by row.
    values = [1e16, 1.0, -1e16, 1.0, 1.0, 1.0, 1.0, 1.0]
    rows = [np.full(5, v, dtype=np.float64) for v in values]
    assert WeightedMean._weighted_sum([1.0] * 8, rows).tolist() == [5.0] * 5
    updates = [Update({"w": np.full(5, v, dtype=np.float32)}, samples=10, sender=f"n{i}") for i, v in enumerate(values)]
    merged = WeightedMean().merge(updates)["w"]
    expected = np.float32(_fixed_order([1 / 8] * 8, [np.full(5, v) for v in values]))
    assert merged.tolist() == expected.tolist() and len(set(merged.tolist())) == 1


def test_geometric_median_is_the_written_out_weiszfeld_iteration() -> None:
    rng = np.random.default_rng(4)
    points = [rng.normal(size=300) * 10.0 ** rng.integers(-3, 4) for _ in range(7)]
    updates = [Update({"w": p.astype(np.float32)}, samples=1, sender=f"n{i}") for i, p in enumerate(points)]
    rule = GeometricMedian()
    merged = rule.merge(updates)["w"]
    # the same Weiszfeld steps written out with fixed-order sums
    x = [p.astype(np.float32).astype(np.float64) for p in points]
    alphas = [1 / 7] * 7
    z = _fixed_order(alphas, x)

    def objective(z):
        dist = np.maximum(rule.eps, np.linalg.norm(np.stack(x) - z, axis=1)).tolist()
        return dist, sum(a * d for a, d in zip(alphas, dist))

    dist, value = objective(z)
    for _ in range(rule.max_iter):
        betas = [a / d for a, d in zip(alphas, dist)]
        z = _fixed_order(betas, x) / sum(betas)
        dist, new = objective(z)
        stop = abs(value - new) <= rule.ftol * max(new, 1e-300)
        value = new
        if stop:
            break
    assert merged.tolist() == z.astype(np.float32).tolist()
