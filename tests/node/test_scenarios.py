"""Scenario data and the evaluation layer: seeded ECG generation, framings, the published set's
digest, the task-digest check, the plain-array cache, and `medswarm swarm --scenario` parsing."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from node.cli import build_parser
from node.datasets import NodeData, RawShard
from node.evaluation import EvaluationLayer, ValidationMismatch
from node.launcher import SwarmPlan
from node.merge import BestModel
from node.scenarios import SCENARIOS, PublishedSet, ecg, read_published_set, write_published_set
from node.scenarios.cache import cached_arrays


def test_an_ecg_recording_is_seeded_and_leaves_the_global_generators_alone() -> None:
    random.seed(5)
    np.random.seed(5)
    before = (random.random(), np.random.random())
    random.seed(5)
    np.random.seed(5)
    a = ecg.recording(1, seed=11, noise=0.5, heart_rate=70.0)
    after = (random.random(), np.random.random())
    b = ecg.recording(1, seed=11, noise=0.5, heart_rate=70.0)
    c = ecg.recording(1, seed=12, noise=0.5, heart_rate=70.0)
    assert before == after
    assert a.shape == (ecg.SEGMENTS_PER_RECORDING, ecg.SEGMENT) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    np.testing.assert_allclose(a.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(a.std(axis=1), 1.0, atol=1e-4)


def test_hospitals_differ_in_class_mix_and_noise() -> None:
    mixes = [ecg.hospital_mix(i, 4, 0.5, seed=0) for i in range(4)]
    assert all(abs(m.sum() - 1.0) < 1e-9 for m in mixes)
    assert max(np.abs(mixes[0] - m).max() for m in mixes[1:]) > 0.2  # non-IID
    assert np.array_equal(mixes[2], ecg.hospital_mix(2, 4, 0.5, seed=0))
    assert [ecg.hospital_noise(i, 4) for i in (0, 3)] == list(ecg.NOISE_RANGE)
    with pytest.raises(ValueError):
        ecg.hospital_mix(4, 4, 0.5, seed=0)


def test_framings() -> None:
    y = np.array([0, 1, 2, 3, 4, 0])
    assert ecg.frame(y, "rhythm").tolist() == y.tolist()
    assert ecg.frame(y, "anomaly").tolist() == [0, 1, 1, 1, 1, 0]
    with pytest.raises(ValueError):
        ecg.frame(y, "other")


def test_a_node_missing_a_class_still_builds_the_task_s_model() -> None:
    shard = RawShard(np.zeros((4, 3), np.float32), np.array([0, 1, 0, 1]), ("a", "b", "c"))
    assert NodeData(shard, shard, "h").n_classes == 2
    assert NodeData(shard, shard, "h", classes=5).n_classes == 5


def test_published_digest_covers_every_value_and_the_shape() -> None:
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    y = np.array([0, 1, 2])
    ref = PublishedSet(x, y).digest
    assert ref == PublishedSet(x.copy(), y.copy()).digest and ref.startswith("0x") and len(ref) == 66
    changed = x.copy()
    changed[2, 3] = 11.5
    assert PublishedSet(changed, y).digest != ref
    assert PublishedSet(x.reshape(3, 2, 2), y).digest == ref  # same values, same row count and width
    assert PublishedSet(x[:, :2], y).digest != ref
    assert PublishedSet(x, np.array([0, 1, 1])).digest != ref


def test_a_published_set_file_keeps_its_digest_and_bad_files_are_clear_errors(tmp_path: Path) -> None:
    x = np.array([[0.5, np.nan], [1.0, 2.0]], np.float32)  # NaN: a missing value, as in members' rows
    published = PublishedSet(x, np.array([0, 1]))
    path = tmp_path / "sponsor" / "validation.npz"
    assert write_published_set(path, published) == published.digest == read_published_set(path).digest
    np.savez(tmp_path / "objects.npz", x=np.array([object()]), y=np.array([0]))
    np.savez(tmp_path / "no-y.npz", x=x)
    np.savez(tmp_path / "ragged.npz", x=x, y=np.array([0, 1, 1]))
    np.savez(tmp_path / "inf.npz", x=np.array([[np.inf]]), y=np.array([1]))
    np.save(tmp_path / "one.npy", x)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name, message in [("missing.npz", "no such file"), ("objects.npz", "not an .npz of arrays x and y"),
                          ("no-y.npz", "not an .npz of arrays x and y"),
                          ("ragged.npz", "x must be rows of features and y one label per row"),
                          ("inf.npz", "labels must be integers and features finite or NaN"),
                          ("one.npy", r"not an .npz of arrays x and y \(a single array"),
                          ("junk.npz", "not an .npz of arrays x and y")]:
        with pytest.raises(ValueError, match=f"validation set {tmp_path / name}: {message}"):
            read_published_set(tmp_path / name)


def test_the_best_rule_refuses_a_task_naming_another_validation_set() -> None:
    published = PublishedSet(np.ones((2, 4), np.float32), np.array([0, 1]))
    layer = EvaluationLayer(BestModel(), published)
    layer.check(published.digest)
    layer.check(published.digest.upper().replace("0X", "0x"))
    for other in (None, "0x" + "00" * 32):
        with pytest.raises(ValidationMismatch, match="validation-set digest"):
            layer.check(other)
    EvaluationLayer(BestModel(), None).check(None)  # rules without a published set check nothing


def test_cache_stores_plain_arrays_and_rebuilds_a_broken_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MEDSWARM_CACHE", str(tmp_path))
    calls = []

    def build():
        calls.append(1)
        return {"x": np.ones((2, 3), np.float32), "y": np.array([0, 1])}

    first = cached_arrays("demo", build)
    again = cached_arrays("demo", build)
    assert len(calls) == 1 and sorted(again) == ["x", "y"]
    assert all(np.array_equal(first[k], again[k]) and first[k].dtype == again[k].dtype for k in first)
    (tmp_path / "demo.npz").write_bytes(b"not a zip")
    cached_arrays("demo", build)
    assert len(calls) == 2
    with pytest.raises(ValueError):
        cached_arrays("../escape", build)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.npz"]


def test_scenario_settings_are_defaults_that_options_override() -> None:
    argv = ["swarm", "--scenario", "ecg-anomaly", "--rounds", "2"]
    args = build_parser("ecg-anomaly").parse_args(argv)
    assert (args.dataset, args.model, args.rounds, args.merge) == ("ecg_anomaly", "cnn1d", 2, "mean")
    assert build_parser().parse_args(["swarm"]).dataset == "heart"
    for name, scenario in SCENARIOS.items():  # every scenario is a plan the launcher accepts
        plan = SwarmPlan(**scenario.plan, node_overrides=scenario.node_settings)
        plan.validate()
        config = plan.node_config(1, Path("/tmp/x"), "0x" + "11" * 20, "http://127.0.0.1:1", 1, "/ip4/127.0.0.1/tcp/0", ())
        assert config.data.dataset == scenario.plan["dataset"] and config.model.kind == "cnn1d", name


def test_the_report_shows_personalised_accuracy_when_nodes_have_it() -> None:
    from node.report import NodeRow, SwarmReport

    def row(name: str, personal: float | None) -> NodeRow:
        return NodeRow(name, 0.8, 0.9, 1, 0, "0xab", True, personalised_accuracy=personal)

    def report(*rows: NodeRow) -> SwarmReport:
        return SwarmReport({}, "0x0", 1, rows, 0, 0, True, (), {}, 1.0)

    table = report(row("subject4", 0.75), row("subject5", 0.95)).table()
    assert "personalised (output layer fine-tuned on own rows): subject4 75.0%, subject5 95.0%; mean 85.0%" in table
    assert "personalised" not in report(row("a", None)).table()


def test_site_mixes_alternate_two_kinds_of_hospital() -> None:
    """ecg_sites: even hospitals are rhythm clinics, odd ones chest-pain units; each holds the other
    kind's classes only within the rare share, and every class at least a little."""
    for i in range(4):
        mix = ecg.site_mix(i, 4, 1.0, seed=3)
        rare = [c for c in range(len(ecg.CLASSES)) if c not in ecg.SITE_KINDS[i % 2]]
        assert mix.sum() == pytest.approx(1.0) and np.all(mix > 0)
        assert mix[rare].sum() <= ecg.SITE_RARE_SHARE + 1e-12
    assert np.array_equal(ecg.site_mix(1, 4, 1.0, seed=3), ecg.site_mix(1, 4, 1.0, seed=3))
    with pytest.raises(ValueError):
        ecg.hospital_segments(0, 4, mixes="clusters")
