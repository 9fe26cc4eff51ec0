"""Data sets: the four heart hospitals, breast-cancer partitions, a hospital's own CSV, loading from a config."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from node.config import DataConfig
from node.datasets import (HEART_HOSPITALS, Column, HEART_SCHEMA, DataError, Schema, breast_cancer_shards,
                           csv_shard, dirichlet_partition, heart_hospital, load_node_data)

EXPECTED = {"Cleveland": (303, 0.459), "Hungary": (294, 0.361), "Switzerland": (123, 0.935),
            "VA Long Beach": (200, 0.745)}


def test_heart_hospitals_row_counts_and_prevalence() -> None:
    for name in HEART_HOSPITALS:
        d = heart_hospital(name, seed=0)
        n, prevalence = EXPECTED[name]
        y = np.concatenate([d.train.y, d.test.y])
        assert len(y) == n
        assert abs(float(y.mean()) - prevalence) < 0.005
        assert abs(len(d.test) - 0.25 * n) <= 2
        assert abs(d.train.prevalence() - d.test.prevalence()) < 0.03   # stratified
        assert d.train.feature_names == HEART_SCHEMA.feature_names and d.n_features == 22
        assert d.train.x.dtype == np.float32 and d.train.y.dtype == np.int64


def test_heart_split_is_stable_and_seeded() -> None:
    a, b = heart_hospital("Cleveland", seed=0), heart_hospital("cleveland", seed=0)
    assert np.array_equal(a.train.x, b.train.x, equal_nan=True) and np.array_equal(a.test.y, b.test.y)
    c = heart_hospital("Cleveland", seed=1)
    assert not np.array_equal(a.test.x, c.test.x, equal_nan=True)


def test_switzerland_cholesterol_zero_is_missing() -> None:
    d = heart_hospital("Switzerland", seed=0)
    chol = np.concatenate([d.train.x, d.test.x])[:, HEART_SCHEMA.index("chol")]
    assert np.isnan(chol).all()
    assert not (np.concatenate([d.train.x, d.test.x]) == 0)[:, HEART_SCHEMA.index("chol")].any()


def test_unknown_hospital_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown hospital"):
        heart_hospital("Boston")


def test_dirichlet_split_is_non_iid_and_covers_all_rows() -> None:
    y = np.repeat([0, 1], 300)
    parts = dirichlet_partition(y, 5, alpha=0.3, rng=np.random.default_rng(0))
    allrows = np.concatenate(parts)
    assert sorted(allrows.tolist()) == list(range(600))
    prevalences = [y[p].mean() for p in parts]
    assert max(prevalences) - min(prevalences) > 0.4

    shards = breast_cancer_shards(4, seed=0, partition="dirichlet", alpha=0.3)
    assert sum(len(s.train) + len(s.test) for s in shards) == 569
    rows = np.concatenate([np.concatenate([s.train.x, s.test.x]) for s in shards])
    assert len(np.unique(rows, axis=0)) == 569
    prev = [s.train.prevalence() for s in shards]
    assert max(prev) - min(prev) > 0.4
    iid = breast_cancer_shards(4, seed=0, partition="iid")
    iid_prev = [s.train.prevalence() for s in iid]
    assert max(iid_prev) - min(iid_prev) < 0.05
    assert sum(len(s.train) + len(s.test) for s in iid) == 569


def test_csv_shard_loads_and_reports_clear_errors(tmp_path: Path) -> None:
    good = tmp_path / "mine.csv"
    rows = ["age,bp,smoker,label"] + [f"{40 + i},{120 + i % 7},{'1' if i % 3 else ''},{i % 2}" for i in range(40)]
    good.write_text("\n".join(rows) + "\n")
    d = csv_shard(good, "label", seed=3)
    assert len(d.train) + len(d.test) == 40 and d.train.feature_names == ("age", "bp", "smoker")
    schema = Schema((Column("age", "numeric"), Column("smoker", "boolean")))
    d2 = csv_shard(good, "label", schema)
    assert d2.train.feature_names == ("age", "smoker")
    assert np.isnan(np.concatenate([d2.train.x, d2.test.x])[:, 1]).sum() == 14
    assert csv_shard(good, "label", ["bp"]).train.feature_names == ("bp",)

    with pytest.raises(DataError, match="not found"):
        csv_shard(tmp_path / "nope.csv", "label")
    with pytest.raises(DataError, match="label column 'outcome' not found"):
        csv_shard(good, "outcome")
    bad = tmp_path / "bad.csv"
    bad.write_text("age,label\n41,0\nforty,1\n43,1\n")
    with pytest.raises(DataError, match=r"row 3: column 'age': 'forty' is not a number"):
        csv_shard(bad, "label")


def test_data_config_picks_the_loader() -> None:
    assert load_node_data(DataConfig(dataset="heart", hospital="Switzerland")).name == "Switzerland"
    assert load_node_data(DataConfig(dataset="heart", hospital="VA Long Beach")).name == "VA Long Beach"
    assert load_node_data(DataConfig(dataset="breast_cancer", node_index=1, n_nodes=3)).name == "node1"
    for config, msg in [(DataConfig(dataset="mnist"), "unknown data set"),
                        (DataConfig(dataset="heart", hospital="Paris"), "unknown hospital"),
                        (DataConfig(dataset="breast_cancer", node_index=3, n_nodes=3), "node_index"),
                        (DataConfig(dataset="breast_cancer", partition="zipf"), "unknown partition"),
                        (DataConfig(dataset="csv"), "csv_path"),
                        (DataConfig(dataset="csv", csv_path="/nonexistent.csv"), "not found")]:
        with pytest.raises(ValueError, match=msg):
            load_node_data(config)


@pytest.mark.parametrize("cell, message", [
    ("1e39", "row 3: column 'age': '1e39' is not a finite number"),      # overflows float32
    ("1e308", "row 3: column 'age': '1e308' is not a finite number"),
    ("-1e13", "row 3: column 'age': '-1e13' is not a finite number"),
    ("inf", "row 3: column 'age': 'inf' is not a finite number"),
    ("-Infinity", "row 3: column 'age': '-Infinity' is not a finite number"),
    ("-nan", "row 3: column 'age': '-nan' is not a finite number"),         # not a missing marker
    ("9" * 5000, "row 3: column 'age': '99999"),
])
def test_csv_values_beyond_float32_are_one_line(tmp_path: Path, cell: str, message: str) -> None:
    path = tmp_path / "big.csv"
    path.write_text(f"age,label\n41,0\n{cell},1\n43,1\n44,0\n")
    with pytest.raises(DataError, match=re.escape(message)) as err:
        csv_shard(path, "label")
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


@pytest.mark.parametrize("label", ["1e18", "1e308", "64", "inf", "nan", "-1", "0.5", ""])
def test_csv_labels_must_be_small_classes(tmp_path: Path, label: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"age,label\n41,0\n42,{label}\n43,1\n44,0\n")
    with pytest.raises(DataError, match="row 3: label 'label' .* not an integer class in 0..63"):
        csv_shard(path, "label")


def test_csv_short_row_and_missing_markers(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("age,label,bp\n41,0,1\n42,1\n43,1,1\n")
    with pytest.raises(DataError, match="row 3: missing column"):
        csv_shard(path, "label", ["age", "bp"])
    path.write_text("age,label\n41,0\nNaN,1\n43,1\n44,0\n")
    d = csv_shard(path, "label")
    assert np.isnan(np.concatenate([d.train.x, d.test.x])).sum() == 1  # "NaN" is a missing marker


@pytest.mark.parametrize("header, message", [
    ("age,age,label", "column names repeated in the header: ['age']"),
    ("x,y", "label column 'label' not found"),
    ("label", "a schema needs at least one column"),
])
def test_csv_header_mistakes_are_data_errors(tmp_path: Path, header: str, message: str) -> None:
    """Found by fuzzing: these raised a bare ValueError from Schema."""
    path = tmp_path / "header.csv"
    width = header.count(",") + 1
    path.write_text(header + "\n" + "\n".join(",".join([str(i % 2)] * width) for i in range(6)) + "\n")
    with pytest.raises(DataError, match=re.escape(message)):
        csv_shard(path, "label")


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


def test_csv_with_a_test_file_keeps_every_train_row(tmp_path: Path) -> None:
    train = _write(tmp_path / "a_train.csv", "age,cp,target", [f"{40 + i},{'xy'[i % 2]},{i % 2}" for i in range(30)])
    test = _write(tmp_path / "a_test.csv", "age,cp,target", [f"{50 + i},{'yz'[i % 2]},{(i + 1) % 2}" for i in range(9)])
    config = DataConfig(dataset="csv", csv_path=str(train), test_csv=str(test), label_column="target",
                        categorical_columns=("cp=x|y|z",), missing_values=("-9",))
    d = load_node_data(config)
    assert len(d.train) == 30 and len(d.test) == 9  # nothing of the train file held out
    assert d.train.feature_names == ("age", "cp=x", "cp=y", "cp=z")
    assert d.test.x[0].tolist() == [50.0, 0.0, 1.0, 0.0] and d.test.y[0] == 1
    _write(train, "age,cp,target", ["-9,x,0", "41,z,1", "42,y,0"])
    assert np.isnan(load_node_data(config).train.x[0, 0])  # "-9" read as missing
    with pytest.raises(DataError, match="unknown category 'w'"):
        _write(test, "age,cp,target", ["50,w,1"])
        load_node_data(config)


def test_one_class_site_loads_and_trains(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from node.config import config_from_mapping
    from node.learner import Learner
    from node.preprocess import FeatureStats

    path = _write(tmp_path / "swiss.csv", "age,label", [f"{40 + i},1" for i in range(20)])
    data = csv_shard(path, "label", seed=0)
    assert set(data.train.y.tolist()) == {1} and len(data.test) == 5
    config = config_from_mapping({"name": "swiss", "data": {"dataset": "csv", "csv_path": str(path)}})
    with caplog.at_level("INFO"):
        learner = Learner(config, data)
    assert "15 training rows -> 12 train / 3 validation (validation_fraction 0.20); 5 test rows" in caplog.text
    learner.set_scaling(FeatureStats.of(learner.fit_rows.x))
    delta = learner.train_update(1)
    assert any(np.abs(v).sum() > 0 for v in delta.values())
    metrics = learner.evaluate(learner.weights(), learner.test)
    assert metrics.n == 5 and np.isnan(metrics.auc) and 0.0 <= metrics.accuracy <= 1.0


def test_csv_missing_marker_of_one_column_and_its_indicator(tmp_path: Path) -> None:
    """`chol=0` makes 0 missing in chol only (0 stays a value elsewhere); the indicator says so."""
    train = tmp_path / "site_train.csv"
    train.write_text("chol,oldpeak,cp,target\n0,0,a,1\n240,1.5,b,0\nNA,0,?,1\n200,2,a,0\n")
    config = DataConfig(dataset="csv", csv_path=str(train), test_csv=str(train), label_column="target",
                        categorical_columns=("cp=a|b",), missing_values=("chol=0",),
                        missing_indicators=("chol", "cp"))
    data = load_node_data(config)
    assert data.train.feature_names == ("chol", "chol:missing", "oldpeak", "cp=a", "cp=b", "cp:missing")
    x = data.train.x
    assert np.isnan(x[[0, 2], 0]).all() and x[1, 0] == 240 and x[3, 0] == 200
    assert x[:, 1].tolist() == [1, 0, 1, 0] and x[:, 2].tolist() == [0, 1.5, 0, 2]  # oldpeak's 0 stays 0
    assert np.isnan(x[2, 3:5]).all() and x[:, 5].tolist() == [0, 0, 1, 0]
    for entries, indicators, message in ((("bp=0",), (), "'bp' is not a feature column"),
                                         ((), ("bp",), r"missing-indicator columns \['bp'\]")):
        with pytest.raises(DataError, match=message):
            load_node_data(DataConfig(dataset="csv", csv_path=str(train), label_column="target",
                                      categorical_columns=("cp=a|b",), missing_values=entries,
                                      missing_indicators=indicators))


def test_no_validation_share_trains_on_every_row(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from node.config import config_from_mapping
    from node.learner import Learner
    from node.preprocess import FeatureStats
    from node.records import RoundReport

    path = _write(tmp_path / "site.csv", "age,label", [f"{40 + i},{i % 2}" for i in range(20)])
    data = csv_shard(path, "label", seed=0)
    config = config_from_mapping({"name": "site", "data": {"dataset": "csv", "csv_path": str(path),
                                                           "validation_fraction": 0.0}})
    with caplog.at_level("INFO"):
        learner = Learner(config, data)
    assert "16 training rows -> 16 train / 0 validation (validation_fraction 0.00)" in caplog.text
    assert (len(learner.fit_rows), len(learner.val_rows)) == (16, 0)
    learner.set_scaling(FeatureStats.of(learner.fit_rows.x))
    val = learner.evaluate(learner.weights(), learner.val)
    assert val.n == 0 and np.isnan(val.loss)
    line = RoundReport(round=1, val_loss=val.loss, val_accuracy=val.accuracy, test_accuracy=0.5, test_auc=0.5,
                       heard=1, expected=1, committed=True, bytes_in=0, bytes_out=0, model_digest="0x",
                       scores={}, dropped={}, phases={}, chain="ok", val_rows=0).line(3)
    assert line.startswith("round 1/3 | val n/a (no validation rows) |")
