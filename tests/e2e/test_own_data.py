"""A hospital's own files in, a usable model out: `--data DIR`, a one-class site, evaluate, export."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from node.cli import main
from node.datadir import read_data_dir
from node.launcher import LocalSwarm, SwarmPlan
from node.portable import PortableModel
from node.trained import TrainedModel
from tests.e2e.swarms import quiet

CATEGORIES = ("absent", "mild", "severe")


def _write(path: Path, rng: np.random.Generator, n: int, only: int | None = None) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["age", "pain", "marker", "target"])
        for _ in range(n):
            label = int(rng.integers(0, 2)) if only is None else only
            marker = rng.normal(1.5 * label, 1.0)
            cell = "NA" if rng.random() < 0.05 else f"{marker:.3f}"
            out.writerow([int(rng.integers(30, 80)), CATEGORIES[int(rng.integers(0, 3))], cell, label])


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    root = tmp_path_factory.mktemp("own")
    data = root / "data"
    data.mkdir()
    rng = np.random.default_rng(7)
    _write(data / "north_train.csv", rng, 80)
    _write(data / "north_test.csv", rng, 40)
    _write(data / "south_train.csv", rng, 30, only=1)  # every training row positive
    _write(data / "south_test.csv", rng, 12, only=1)
    plan = SwarmPlan(nodes=2, rounds=3, data=read_data_dir(data), in_process=True, out=root / "run",
                     round_timeout=20, model="logreg",  # rounds end once both are in
                     node_overrides=('data.missing_indicators=["marker"]',))  # a 0/1 "marker:missing" input too
    report = LocalSwarm(plan, say=quiet).run()
    return root, data, report


def test_each_node_reads_its_own_files_and_the_one_class_site_takes_part(run) -> None:
    root, _, report = run
    assert [r.name for r in report.rows] == ["north", "south"] and all(r.finished for r in report.rows)
    assert report.audit_ok, report.audit_mismatches
    metrics = [json.loads(line) for line in (root / "run" / "south" / "metrics.jsonl").read_text().splitlines()]
    assert [m["heard"] for m in metrics] == [1, 1, 1]  # the one-class site's updates were merged, and it merged
    summary = json.loads((root / "run" / "south" / "summary.json").read_text())
    assert summary["test_rows"] == 12 and summary["test_auc"] is None  # n/a, not 0 and not a crash
    assert "n/a" not in report.table().split("\n")[2]  # north's row has figures


def test_evaluate_writes_metrics_and_curves(run, capsys: pytest.CaptureFixture[str]) -> None:
    root, data, _ = run
    assert main(["evaluate", str(root / "run"), "--csv", str(data / "north_test.csv"), "--out", str(root / "ev")]) == 0
    result = json.loads((root / "ev" / "evaluation.json").read_text())
    m = result["metrics"]
    assert m["n"] == 40 and 0.5 < m["accuracy"] <= 1 and 0.5 < m["roc_auc"] <= 1
    (tn, fp), (fn, tp) = m["confusion_matrix"]["values"]
    assert tn + fp + fn + tp == 40 and m["sensitivity"] == tp / (tp + fn)
    assert (root / "ev" / "evaluation.png").stat().st_size > 10_000
    pooled = ["--csv", str(data / "north_test.csv"), "--csv", str(data / "south_test.csv")]
    assert main(["evaluate", str(root / "run"), *pooled, "--out", str(root / "ev3")]) == 0
    assert json.loads((root / "ev3" / "evaluation.json").read_text())["metrics"]["n"] == 52  # both files pooled
    assert main(["evaluate", str(root / "run" / "south"), "--out", str(root / "ev2")]) == 0  # its own test rows
    one_class = json.loads((root / "ev2" / "evaluation.json").read_text())["metrics"]
    assert one_class["roc_auc"] == "n/a" and one_class["specificity"] == "n/a" and one_class["n"] == 12
    assert "roc_auc            n/a" in capsys.readouterr().out


def test_exported_model_predicts_exactly_what_the_node_predicts(run, tmp_path: Path) -> None:
    root, data, _ = run
    assert main(["export", str(root / "run" / "north"), "--out", str(tmp_path / "model")]) == 0
    assert sorted(p.name for p in (tmp_path / "model").iterdir()) == ["model.json", "model.npz"]
    portable = PortableModel.load(tmp_path / "model")
    node = TrainedModel.from_run(root / "run" / "north")
    with (data / "north_test.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    x = node.schema.encode(rows)
    assert np.array_equal(portable.encode_rows(rows), x, equal_nan=True)  # raw cells -> same features
    assert np.array_equal(portable.predict(x), node.predict_proba(x).argmax(axis=1))
    assert np.abs(portable.predict_proba(x) - node.predict_proba(x)).max() < 1e-6
    # what the node reported for its own test rows is what the exported model scores there
    summary = json.loads((root / "run" / "north" / "summary.json").read_text())
    y = np.array([int(r["target"]) for r in rows])
    assert float((portable.predict(x) == y).mean()) == pytest.approx(summary["test_accuracy"])
    spec = json.loads((tmp_path / "model" / "model.json").read_text())
    assert spec["format"] == "medswarm-model" and spec["inputs"][1]["categories"] == sorted(CATEGORIES)
    assert spec["inputs"][2]["missing_indicator"] is True and spec["feature_names"][-1] == "marker:missing"
    assert np.isnan(x[:, -2]).any() and set(x[:, -1][np.isnan(x[:, -2])]) == {1.0}  # NA cells: indicator 1
    with np.load(tmp_path / "model" / "model.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype != object for k in npz.files)


def test_evaluate_on_a_folder_without_a_model_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "neither a node's run folder" in capsys.readouterr().err
