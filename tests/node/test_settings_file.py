"""Swarm-wide settings files: `medswarm swarm --settings FILE`, or `swarm.toml` in a `--data` folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.cli import _parse
from node.config import SETTINGS_FILE, ConfigError, config_from_mapping, load_settings

SETTINGS = """\
[model]
kind = "logreg"

[training]
lr = 0.3
batch_size = 16

[data]
missing_values = ["chol=0"]

[swarm]
merge = "mean"
"""


def _folder(tmp_path: Path, settings: str | None = SETTINGS) -> Path:
    folder = tmp_path / "hospitals"
    folder.mkdir(parents=True)
    for name in ("north", "south"):
        (folder / f"{name}.csv").write_text("age,chol,target\n" + "".join(f"{40 + i},{i},{i % 2}\n" for i in range(8)))
    if settings is not None:
        (folder / SETTINGS_FILE).write_text(settings)
    return folder


def test_a_file_becomes_overrides_in_file_order(tmp_path: Path) -> None:
    path = _folder(tmp_path) / SETTINGS_FILE
    settings = load_settings(path)
    assert settings == ('model.kind="logreg"', "training.lr=0.3", "training.batch_size=16",
                        'data.missing_values=["chol=0"]', 'swarm.merge="mean"')
    config = config_from_mapping({"name": "n"}, settings)
    assert (config.model.kind, config.training.lr, config.training.batch_size) == ("logreg", 0.3, 16)
    assert config.data.missing_values == ("chol=0",) and config.swarm.merge == "mean"


@pytest.mark.parametrize("body, message", [
    ("[p2p]\nlisten = 'x'\n", "p2p is not one of the tables"),
    ("name = 'x'\n", "name is not one of the tables"),
    ("[training]\nlrr = 0.1\n", "training.lrr"),
    ("[training]\nlr = -1\n", "training.lr"),
    ("[swarm]\nmerge = 'avg'\n", "swarm.merge"),
    ("[swarm.sub]\nx = 1\n", "swarm.sub is not a number, string, boolean or list"),
    ("[training]\nlr = 1979-05-27\n", "training.lr is not a number"),
    ("[training\n", "not valid TOML"),
])
def test_a_bad_file_is_one_error_naming_it(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "s.toml"
    path.write_text(body)
    with pytest.raises(ConfigError, match=message) as err:
        load_settings(path)
    assert str(path) in str(err.value)


def test_the_data_folders_file_applies_and_options_given_win(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    args = _parse(["swarm", "--data", str(folder)])
    assert args.settings_file == folder / SETTINGS_FILE
    # keys a `medswarm swarm` option also sets become that option's value...
    assert (args.model, args.lr, args.merge) == ("logreg", 0.3, "mean")
    assert args.set == ["training.batch_size=16", 'data.missing_values=["chol=0"]']
    # ...so an option given wins, and --set wins over the rest
    args = _parse(["swarm", "--data", str(folder), "--model", "mlp", "--lr", "0.05",
                   "--set", "training.batch_size=8"])
    assert (args.model, args.lr, args.merge) == ("mlp", 0.05, "mean")
    config = config_from_mapping({"name": "n"}, args.set)
    assert config.training.batch_size == 8 and config.data.missing_values == ("chol=0",)


def test_none_ignores_the_folders_file_and_a_file_elsewhere_applies(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    plain = _parse(["swarm", "--data", str(folder), "--settings", "none"])
    assert plain.settings_file is None and plain.set == [] and (plain.model, plain.merge) == ("mlp", "trimmed")
    copy = _folder(tmp_path / "copy", settings=None)  # the same files without their settings
    assert _parse(["swarm", "--data", str(copy)]).settings_file is None
    args = _parse(["swarm", "--data", str(copy), "--settings", str(folder / SETTINGS_FILE)])
    assert args.model == "logreg" and args.set == ["training.batch_size=16", 'data.missing_values=["chol=0"]']


def test_cli_bad_settings_exit_2_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from node.cli import main

    folder = _folder(tmp_path, settings="[chain]\nurl = 'x'\n")
    assert main(["swarm", "--data", str(folder), "--in-process", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert SETTINGS_FILE in err and "chain is not one of the tables" in err


def test_the_heart_split_ships_the_settings_the_benchmarks_use() -> None:
    from scripts.bench.quality import HEART_SETTINGS, HEART_SPLIT, REFIT

    shipped = load_settings(HEART_SPLIT / SETTINGS_FILE)
    # the benchmarks compare settings on validation rows; a run with the file trains on all of them
    assert [s for s in shipped if s.startswith(REFIT)] == ["data.validation_fraction=0.0"]
    assert tuple(s for s in shipped if not s.startswith(REFIT)) == HEART_SETTINGS
    args = _parse(["swarm", "--data", str(HEART_SPLIT)])
    assert args.model == "logreg" and args.settings_file == HEART_SPLIT / SETTINGS_FILE
    assert 'data.missing_indicators=["chol"]' in args.set


def _heart_copy(tmp_path: Path, header_edit=lambda h: h) -> Path:
    """The heart split's files (rows cut to 12) in another folder, without its settings file."""
    from scripts.bench.quality import HEART_SPLIT

    copy = tmp_path / "heart_copy"
    copy.mkdir()
    for path in sorted(HEART_SPLIT.glob("*.csv")):
        lines = path.read_text().splitlines()[:13]
        (copy / path.name).write_text("\n".join([header_edit(lines[0]), *lines[1:]]) + "\n")
    return copy


def test_a_copy_of_the_heart_split_gets_its_settings_and_says_why(tmp_path: Path) -> None:
    from node.cli import _settings_line
    from scripts.bench.quality import HEART_SPLIT

    copy = _heart_copy(tmp_path)
    assert not (copy / SETTINGS_FILE).exists()
    args = _parse(["swarm", "--data", str(copy)])
    assert args.settings_file == HEART_SPLIT / SETTINGS_FILE and args.model == "logreg"
    assert args.settings_applied == load_settings(HEART_SPLIT / SETTINGS_FILE)
    line = _settings_line(args)
    assert line.startswith(f"settings from {HEART_SPLIT / SETTINGS_FILE} (options given win; {copy} has no "
                           f"{SETTINGS_FILE} of its own and the columns of heart_split")
    # --settings none still means the defaults, and says nothing about a file
    plain = _parse(["swarm", "--data", str(copy), "--settings", "none"])
    assert plain.settings_file is None and plain.model == "mlp" and _settings_line(plain) is None
    # the heart split's own folder: its own file, no explanation needed
    own = _parse(["swarm", "--data", str(HEART_SPLIT)])
    assert "has no" not in _settings_line(own)


@pytest.mark.parametrize("edit", [lambda h: h.replace("chol", "cholesterol"), lambda h: h + ",slope"])
def test_other_columns_get_the_defaults_and_are_told_so(tmp_path: Path, edit) -> None:
    from node.cli import _settings_line

    copy = _heart_copy(tmp_path, edit)
    args = _parse(["swarm", "--data", str(copy)])
    assert args.settings_file is None and args.model == "mlp" and args.set == []
    assert _settings_line(args) == f"settings: the defaults ({copy} has no {SETTINGS_FILE}; --settings FILE gives some)"


CP = {"typical angina": "1", "atypical angina": "2", "non-anginal": "3", "asymptomatic": "4"}
ECG = {"normal": "0", "st-t abnormality": "1", "lv hypertrophy": "2"}


def _flamby_row(row: dict[str, str]) -> dict[str, str]:
    """FLamby's encoding: cp and restecg one-hot with the first level dropped, UCI's `thalach`."""
    out = {k: v for k, v in row.items() if k not in ("cp", "restecg", "thalch", "target")}
    out["thalach"] = row["thalch"]
    out.update({f"cp_{c}.0": str(int(CP[row["cp"]] == c)) for c in "234"})
    out.update({f"restecg_{c}.0": str(int(ECG[row["restecg"]] == c)) for c in "12"})
    return {**out, "target": row["target"]}


def _coded_row(row: dict[str, str]) -> dict[str, str]:
    """UCI's own encoding: categories as the numbers 1-4 and 0-2, UCI's `thalach`."""
    return {("thalach" if k == "thalch" else k): CP.get(v, ECG.get(v, v)) if k in ("cp", "restecg") else v
            for k, v in row.items()}


def _dummies_row(row: dict[str, str]) -> dict[str, str]:
    """pandas' `get_dummies(drop_first=True)` of UCI's text file: the 0/1 columns as one True/False
    column each (`sex_Male`), the categories as True/False columns but the first."""
    out = {k: row[k] for k in ("age", "trestbps", "chol", "thalch", "oldpeak")}
    out.update({"sex_Male": str(row["sex"] == "1"), "fbs_True": str(row["fbs"] == "1"),
                "exang_True": str(row["exang"] == "1")})
    out.update({f"cp_{c}": str(row["cp"] == c) for c in ("atypical angina", "non-anginal", "typical angina")})
    out.update({f"restecg_{c}": str(row["restecg"] == c) for c in ("normal", "st-t abnormality")})
    return {**out, "target": row["target"]}


def _recoded_copy(tmp_path: Path, recode) -> Path:
    import csv

    from scripts.bench.quality import HEART_SPLIT

    copy = tmp_path / "recoded"
    copy.mkdir()
    for path in sorted(HEART_SPLIT.glob("*.csv")):
        rows = [recode(r) for r in csv.DictReader(path.open())]
        with (copy / path.name).open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return copy


@pytest.mark.parametrize("recode, inputs, categorical", [
    (_flamby_row, 14, ()),  # 13 FLamby inputs + the chol:missing indicator the settings add
    (_coded_row, 16, ("cp=1|2|3|4", "restecg=0|1|2")),  # the heart split's 16 inputs, from the codes
    # 8 indicator columns, each read as the two categories False and True, + 5 numbers + chol:missing
    (_dummies_row, 22, tuple(f"{c}=False|True" for c in (
        "sex_Male", "fbs_True", "exang_True", "cp_atypical angina", "cp_non-anginal", "cp_typical angina",
        "restecg_normal", "restecg_st-t abnormality"))),
])
def test_the_heart_data_in_another_encoding_is_recognised(tmp_path: Path, recode, inputs: int, categorical) -> None:
    from node.datadir import read_data_dir
    from node.datasets import load_node_data
    from node.launcher import SwarmPlan
    from scripts.bench.quality import HEART_SPLIT

    copy = _recoded_copy(tmp_path, recode)
    args = _parse(["swarm", "--data", str(copy)])
    assert args.settings_file == HEART_SPLIT / SETTINGS_FILE and args.model == "logreg"
    data = read_data_dir(copy)
    assert data.categorical_columns == categorical
    plan = SwarmPlan(nodes=4, data=data, out=tmp_path / "run", node_overrides=tuple(args.set))
    config = plan.node_config(2, tmp_path / "run" / "switzerland", "0x" + "1" * 40, "eth-tester", 1,
                              "/ip4/127.0.0.1/tcp/0", ())
    node = load_node_data(config.data)
    assert config.name == "switzerland" and node.n_features == inputs
    assert (len(node.train), len(node.test)) == (30, 16)


def test_settings_that_do_not_fit_the_files_stop_the_launcher_before_any_chain(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The heart settings name `chol`; files whose columns are named otherwise cannot take them. One
    # line before the ledger is deployed, not four node processes exiting after it.
    from node.cli import main
    from scripts.bench.quality import HEART_SPLIT

    copy = _heart_copy(tmp_path, lambda h: h.replace("chol", "cholesterol"))
    code = main(["swarm", "--data", str(copy), "--settings", str(HEART_SPLIT / SETTINGS_FILE), "--in-process",
                 "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert code == 2 and "ledger deployed" not in out.out
    assert out.err.strip().splitlines() == [
        f"medswarm: cleveland's data: {copy / 'cleveland_train.csv'}: missing-indicator columns ['chol'] are not "
        "among the feature columns"]


def test_an_in_process_node_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    from node.launcher import LocalSwarm, SwarmFailed, SwarmPlan

    plan = SwarmPlan(nodes=2, rounds=1, out=tmp_path)
    config = plan.node_config(0, tmp_path / "n0", "", "eth-tester", 1, "/ip4/127.0.0.1/tcp/0", ())
    with pytest.raises(SwarmFailed, match=r"^node cleveland cannot start: chain.contract: no contract address"):
        LocalSwarm(plan, say=lambda _line: None)._run_in_process([config], w3=None)


def _unnamed_row(row: dict[str, str]) -> dict[str, str]:
    """FLamby's 13 inputs in FLamby's order under names of their own, as its tensors written out."""
    flamby = _flamby_row(row)
    inputs = [flamby[c] for c in ("age", "sex", "trestbps", "chol", "fbs", "thalach", "exang", "oldpeak",
                                  "cp_2.0", "cp_3.0", "cp_4.0", "restecg_1.0", "restecg_2.0")]
    return {**{f"x{i + 1}": v for i, v in enumerate(inputs)}, "target": row["target"]}


def test_the_heart_inputs_under_names_of_their_own_are_recognised_by_value(tmp_path: Path) -> None:
    from node.cli import _settings_line
    from node.datasets import load_node_data
    from node.launcher import SwarmPlan
    from node.datadir import read_data_dir
    from scripts.bench.quality import HEART_SPLIT

    copy = _recoded_copy(tmp_path, _unnamed_row)
    args = _parse(["swarm", "--data", str(copy)])
    assert args.settings_file == HEART_SPLIT / SETTINGS_FILE and args.model == "logreg"
    assert args.column_names["x4"] == "chol" and args.column_names["x9"] == "cp_2"
    assert 'data.missing_values=["x4=0"]' in args.set and 'data.missing_indicators=["x4"]' in args.set
    assert "its columns hold FLamby's 13 heart inputs in FLamby's order, by every value (x1 is age" in _settings_line(args)
    plan = SwarmPlan(nodes=4, data=read_data_dir(copy), out=tmp_path / "run", node_overrides=tuple(args.set))
    config = plan.node_config(2, tmp_path / "run" / "switzerland", "0x" + "1" * 40, "eth-tester", 1,
                              "/ip4/127.0.0.1/tcp/0", ())
    node = load_node_data(config.data)
    assert node.n_features == 14 and (len(node.train), len(node.test)) == (30, 16)  # + x4:missing


def test_the_unnamed_heart_inputs_with_pandas_2_one_hot_cells_are_recognised(tmp_path: Path) -> None:
    # pandas 2's get_dummies gives bool columns, which to_csv writes as True / False
    from node.datadir import heart_by_position

    def booleans(row: dict[str, str]) -> dict[str, str]:
        unnamed = _unnamed_row(row)
        return {k: {"1": "True", "0": "False"}[v] if k in ("x9", "x10", "x11", "x12", "x13") else v
                for k, v in unnamed.items()}

    copy = _recoded_copy(tmp_path, booleans)
    assert "False" in (copy / "cleveland_train.csv").read_text()
    assert heart_by_position(copy)["x9"] == "cp_2" and _parse(["swarm", "--data", str(copy)]).model == "logreg"


@pytest.mark.parametrize("spoil, rows", [
    (lambda r: {**r, "x1": "150"}, "54"),                   # an age out of range
    (lambda r: {**r, "x3": r["x4"], "x4": r["x3"]}, "all"),  # trestbps and chol swapped: cholesterol 603
    (lambda r: {**r, "x9": "1", "x10": "1"}, "54"),          # two chest-pain types at once
    (lambda r: {**r, "x2": "0.5"}, "54"),                    # sex is 0 or 1
    (lambda r: {**r, "x6": ""}, "54"),                       # the benchmark has no missing cells
    (lambda r: {k: v for k, v in r.items() if k != "x13"}, "all"),  # 12 inputs
])
def test_other_unnamed_columns_are_not_taken_for_the_heart_inputs(tmp_path: Path, spoil, rows: str) -> None:
    # "54": only the rows of 54-year-olds (some in every hospital's files) are spoilt
    from node.datadir import heart_by_position

    copy = _recoded_copy(tmp_path, lambda r: spoil(_unnamed_row(r)) if rows in ("all", r["age"]) else _unnamed_row(r))
    assert heart_by_position(copy) == {}
    assert _parse(["swarm", "--data", str(copy)]).settings_file is None


def test_settings_are_translated_where_they_name_columns() -> None:
    from node.cli import translated

    settings = ('data.missing_values=["chol=0", "?"]', 'data.missing_indicators=["chol", "age"]', "training.lr=0.1")
    assert translated(settings, {"x4": "chol", "x1": "age"}) == (
        'data.missing_values=["x4=0", "?"]', 'data.missing_indicators=["x4", "x1"]', "training.lr=0.1")
    assert translated(settings, {}) == ('data.missing_values=["chol=0", "?"]',
                                        'data.missing_indicators=["chol", "age"]', "training.lr=0.1")
