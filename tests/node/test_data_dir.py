"""`medswarm swarm --data DIR`: hospitals and their shared encoding from a folder of CSV files."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.config import dump_config
from node.datadir import read_data_dir
from node.datasets import DataError, load_node_data
from node.launcher import SwarmPlan


def _csv(path: Path, header: str = "age,cp,target", n: int = 12, cp: str = "ab") -> Path:
    path.write_text(header + "\n" + "\n".join(f"{40 + i},{cp[i % len(cp)]},{i % 2}" for i in range(n)) + "\n")
    return path


def test_pairs_and_single_files_become_named_nodes(tmp_path: Path) -> None:
    _csv(tmp_path / "Cleveland_train.csv")
    _csv(tmp_path / "Cleveland_test.csv", n=5, cp="c")
    _csv(tmp_path / "va long beach.csv")
    d = read_data_dir(tmp_path)
    assert d.names == ("cleveland", "va-long-beach")
    assert d.label_column == "target" and d.feature_columns == ("age", "cp")
    assert d.categorical_columns == ("cp=a|b|c",)  # union over every file, train and test
    assert d.hospitals[0].test == tmp_path / "Cleveland_test.csv" and d.hospitals[1].test is None

    plan = SwarmPlan(nodes=2, data=d, out=tmp_path / "run")
    plan.validate()
    config = plan.node_config(0, tmp_path / "run" / "cleveland", "0x" + "1" * 40, "eth-tester", 1,
                              "/ip4/127.0.0.1/tcp/0", ())
    assert config.name == "cleveland" and config.data.test_csv.endswith("Cleveland_test.csv")
    assert "categorical_columns = [\"cp=a|b|c\"]" in dump_config(config)
    data = load_node_data(config.data)
    assert (len(data.train), len(data.test)) == (12, 5) and data.n_features == 4


@pytest.mark.parametrize("files, message", [
    ({}, "no .csv files"),
    ({"a_train.csv": "age,target", "b.csv": "age,target"}, "a_train.csv has no a_test.csv"),
    ({"a_test.csv": "age,target", "b.csv": "age,target"}, "a_test.csv has no a_train.csv"),
    ({"a.csv": "age,target", "b.csv": "age,bp,target"}, "b.csv has other columns than a.csv (extra ['bp']"),
    ({"a.csv": "age,target"}, "at least 2 hospitals"),
    ({"a.csv": "age,y", "b.csv": "age,y"}, "no 'label' or 'target' column"),
])
def test_folder_mistakes_are_one_clear_error(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, header in files.items():
        _csv(tmp_path / name, header, cp="1")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_data_dir(tmp_path)


def test_cli_swarm_data_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from node.cli import main

    assert main(["swarm", "--data", str(tmp_path), "--in-process", "--out", str(tmp_path / "o")]) == 2
    assert "no .csv files" in capsys.readouterr().err


def test_shipped_heart_split_follows_its_recipe() -> None:
    from scripts import heart_split

    assert heart_split.main(["--check"]) == 0  # the committed files are what the script writes
    d = read_data_dir(heart_split.OUT)
    assert d.names == ("cleveland", "hungary", "switzerland", "va-long-beach") and d.label_column == "target"
    assert [c.split("=")[0] for c in d.categorical_columns] == ["cp", "restecg"]
    rows = {h.name: (len(load_node_data(_config(h, d)).train), len(load_node_data(_config(h, d)).test))
            for h in d.hospitals}
    assert sum(r[0] for r in rows.values()) == 486 and sum(r[1] for r in rows.values()) == 254
    assert rows["switzerland"] == (30, 16) and rows["cleveland"] == (199, 104)


def test_the_benchmarks_own_draw_is_written_on_request_only(tmp_path: Path) -> None:
    # The benchmark's code draws with scikit-learn (random_state 43): its Swiss training rows are the
    # 30 that are all positive (its one negative patient is a test row), unlike our draw's.
    from scripts import heart_split

    with pytest.raises(SystemExit):
        heart_split.main(["--draw", "benchmark"])  # never over the shipped split
    assert heart_split.main(["--draw", "benchmark", "--out", str(tmp_path)]) == 0
    d = read_data_dir(tmp_path)
    swiss = load_node_data(_config(next(h for h in d.hospitals if h.name == "switzerland"), d))
    assert (len(swiss.train), len(swiss.test)) == (30, 16) and set(swiss.train.y.tolist()) == {1}
    ours = load_node_data(_config(next(h for h in read_data_dir(heart_split.OUT).hospitals
                                       if h.name == "switzerland"), d))
    assert set(ours.train.y.tolist()) == {0, 1}
    lines = {n: (tmp_path / n).read_text().count("\n") - 1 for n in heart_split.render("benchmark")}
    assert sum(v for n, v in lines.items() if "_train" in n) == 486 and lines["cleveland_test.csv"] == 104


def _config(h, d):
    from node.config import DataConfig

    return DataConfig(dataset="csv", csv_path=str(h.train), test_csv=str(h.test), label_column=d.label_column,
                      categorical_columns=d.categorical_columns)


def test_a_column_without_a_name_is_row_numbers_not_a_feature(tmp_path: Path) -> None:
    # pandas' to_csv writes the row index first, under no name: a model must not learn row numbers,
    # and the heart files written that way are still the heart files.
    from node.cli import _parse
    from scripts import heart_split

    for name, text in heart_split.render().items():
        lines = text.splitlines()
        (tmp_path / name).write_text("\n".join(["," + lines[0]] + [f"{i},{line}" for i, line in
                                                                    enumerate(lines[1:])]) + "\n")
    d = read_data_dir(tmp_path)
    assert "" not in d.feature_columns and d.feature_columns == read_data_dir(heart_split.OUT).feature_columns
    assert _parse(["swarm", "--data", str(tmp_path)]).model == "logreg"  # the heart settings apply
    node = load_node_data(_config(d.hospitals[0], d))
    shipped = read_data_dir(heart_split.OUT)
    assert node.n_features == load_node_data(_config(shipped.hospitals[0], shipped)).n_features
    # a node's own TOML with no feature list: the same rule
    from node.datasets import csv_schema

    assert [c.name for c in csv_schema(["", "age", "target"], "target").columns] == ["age"]
