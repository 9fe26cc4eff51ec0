"""A folder of hospital CSV files, read as one swarm: who the hospitals are and how to encode them.

`medswarm swarm --data DIR` gives each node its own file. DIR holds either one CSV per hospital
(`cleveland.csv`: the node holds out a test share of it) or a pair per hospital
(`cleveland_train.csv` + `cleveland_test.csv`: every train row trains, every test row tests).
Node names come from the file names. All files must have the same columns; a column without a name
(the row numbers pandas writes first) is not a feature. A column whose cells
are not all numbers (or missing) in every file is categorical, with the sorted union of its
values as the category list every node is given, so column j means the same thing everywhere.
A folder whose columns are those of a split shipped in node/data (e.g. another draw of the same
benchmark split) is recognised by its column names, in another spelling (UCI's `thalach`) or with
the split's categories one-hot in columns of their own (FLamby's `cp_2`, `restecg_1`; pandas'
`cp_atypical angina`, and `sex_Male` for a 0/1 column): without a
settings file of its own it is given that split's settings (`shipped_settings`), and a column that
is categorical in the split is read as categories even when coded as numbers (`cp` 1-4). FLamby's
13 heart inputs under names of their own (its tensors written out) are recognised by their values
instead (`heart_by_position`), and the settings then name the folder's columns (node.cli).
"""

from __future__ import annotations

import csv
import functools
import math
import re
from dataclasses import dataclass
from pathlib import Path

from .config import SETTINGS_FILE
from .datasets import MISSING_TOKENS, DataError

TRAIN_SUFFIX, TEST_SUFFIX = "_train", "_test"
LABEL_GUESSES: tuple[str, ...] = ("label", "target")  # tried in this order when no label is named
# Splits shipped with their settings (chosen on their validation rows): the same columns elsewhere are
# the same kind of data, so those settings are the documented good start for them too.
SHIPPED_SPLITS: tuple[Path, ...] = (Path(__file__).resolve().parent / "data" / "heart_split",)
#: Other spellings of the shipped splits' column names (UCI's documentation spells the heart data's
#: maximum heart rate `thalach`; the file the heart split is written from spells it `thalch`).
ALIASES: dict[str, str] = {"thalach": "thalch"}
#: One column per category of a categorical column C is named C, one of these, the category.
ONE_HOT_SEPARATORS = "_=.:"


#: FLamby's Fed-Heart-Disease inputs in the order its code writes them (UCI's columns 10-12 dropped,
#: then cp and restecg one-hot at the end without their first level), spelled as the heart split
#: and `_layout` spell them. Its tensors written out have no names of their own (`heart_by_position`).
FLAMBY_HEART_INPUTS = ("age", "sex", "trestbps", "chol", "fbs", "thalch", "exang", "oldpeak",
                       "cp_2", "cp_3", "cp_4", "restecg_1", "restecg_2")
#: What those inputs hold: the measurements within these closed ranges (UCI's own bounds, widened),
#: every other input 0 or 1, and at most one 1 per one-hot group.
FLAMBY_HEART_RANGES = {"age": (1.0, 120.0), "trestbps": (0.0, 300.0), "chol": (0.0, 1000.0),
                       "thalch": (30.0, 250.0), "oldpeak": (-10.0, 10.0)}
FLAMBY_HEART_GROUPS = (("cp_2", "cp_3", "cp_4"), ("restecg_1", "restecg_2"))
_BOOLEAN = {"true": "1", "false": "0"}


@dataclass(frozen=True)
class HospitalFiles:
    name: str
    train: Path
    test: Path | None  # None: the node holds a test share of `train` back itself


@dataclass(frozen=True)
class DataDir:
    """The hospitals found in a folder and the encoding they share."""

    hospitals: tuple[HospitalFiles, ...]
    label_column: str
    feature_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]  # in `data.categorical_columns` syntax, "name=a|b|c"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(h.name for h in self.hospitals)


def _node_name(stem: str) -> str:
    name = re.sub(r"[^a-z0-9]+", "-", stem.lower()).strip("-")
    if not name:
        raise DataError(f"cannot make a node name from the file name {stem!r}")
    return name


def find_hospitals(folder: Path) -> tuple[HospitalFiles, ...]:
    """The hospitals in `folder`, sorted by name; DataError for an empty folder or unpaired files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"--data {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".csv")
    if not files:
        raise DataError(f"--data {folder}: no .csv files in it (one per hospital, or NAME_train.csv + "
                        "NAME_test.csv pairs)")
    stems = {p.stem: p for p in files}
    found: dict[str, HospitalFiles] = {}
    for stem, path in stems.items():
        if stem.endswith(TEST_SUFFIX):
            if stem[:-len(TEST_SUFFIX)] + TRAIN_SUFFIX not in stems:
                raise DataError(f"--data {folder}: {path.name} has no {stem[:-len(TEST_SUFFIX)]}{TRAIN_SUFFIX}.csv "
                                "to pair with")
            continue
        if stem.endswith(TRAIN_SUFFIX):
            base = stem[:-len(TRAIN_SUFFIX)]
            test = stems.get(base + TEST_SUFFIX)
            if test is None:
                raise DataError(f"--data {folder}: {path.name} has no {base}{TEST_SUFFIX}.csv to pair with")
            entry = HospitalFiles(_node_name(base), path, test)
        else:
            entry = HospitalFiles(_node_name(stem), path, None)
        if entry.name in found:
            raise DataError(f"--data {folder}: two hospitals would both be named {entry.name!r}")
        found[entry.name] = entry
    if len(found) < 2:
        raise DataError(f"--data {folder}: a swarm needs at least 2 hospitals, found {len(found)}")
    return tuple(found[n] for n in sorted(found))


def _files(hospitals: tuple[HospitalFiles, ...]) -> list[Path]:
    """Every hospital's files, train before test."""
    return [p for h in hospitals for p in (h.train, h.test) if p is not None]


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, [])
            return header, [row for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read data file {path}: {exc}") from None


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def read_data_dir(folder: Path, label_column: str = "") -> DataDir:
    """Hospitals, label and shared encoding of a `--data` folder; DataError on any mismatch."""
    hospitals = find_hospitals(folder)
    paths = _files(hospitals)
    tables = {p: _read(p) for p in paths}
    first, header = paths[0], tables[paths[0]][0]
    for p in paths[1:]:
        if tables[p][0] != header:
            extra, lacking = sorted(set(tables[p][0]) - set(header)), sorted(set(header) - set(tables[p][0]))
            detail = f"extra {extra[:5]}, lacking {lacking[:5]}" if extra or lacking else "same names, other order"
            raise DataError(f"--data {folder}: {p.name} has other columns than {first.name} ({detail})")
    if not label_column:
        label_column = next((c for c in LABEL_GUESSES if c in header), "")
        if not label_column:
            raise DataError(f"--data {folder}: no 'label' or 'target' column; name the label with --label "
                            f"(columns: {header[:20]})")
    elif label_column not in header:
        raise DataError(f"--data {folder}: label column {label_column!r} not found; columns are {header[:20]}")
    features = tuple(c for c in header if c != label_column and c.strip())
    split = _shipped_split(header)
    coded = _split_categorical(split) if split is not None else frozenset()
    return DataDir(hospitals, label_column, features, _categorical(header, list(tables.values()), label_column, coded))


def _categorical(header: list[str], tables: list[tuple[list[str], list[list[str]]]], label_column: str,
                 coded: frozenset[str]) -> tuple[str, ...]:
    """`data.categorical_columns` entries: every column with a non-number cell, and the columns in
    `coded` (categories written as numbers, listed in numeric order)."""
    out = []
    for j, column in enumerate(header):
        if column == label_column or not column.strip():
            continue
        values = {row[j].strip() for rows in (t[1] for t in tables) for row in rows if j < len(row)}
        values = {v for v in values if v.lower() not in MISSING_TOKENS}
        if not values:
            continue
        if not all(_is_number(v) for v in values):
            out.append(f"{column}=" + "|".join(sorted(values)))
        elif _spelled(column) in coded:
            out.append(f"{column}=" + "|".join(sorted(values, key=float)))
    return tuple(out)


def _spelled(column: str) -> str:
    name = column.strip().lower()
    return ALIASES.get(name, name)


def _layout(header: list[str], indicated: frozenset[str]) -> frozenset[str]:
    """The column names as a shipped split would spell them: aliases resolved, and an indicator
    column counted as the column of `indicated` it encodes (one-hot `cp_2` or `cp_atypical angina`
    as `cp`, a 0/1 column's `sex_Male` as `sex`)."""
    out = set()
    for column in filter(str.strip, header):  # a column without a name holds row numbers
        name = _spelled(column)
        out.add(next((c for c in indicated if len(name) > len(c) + 1 and name.startswith(c)
                      and name[len(c)] in ONE_HOT_SEPARATORS), name))
    return frozenset(out)


def _split_tables(split: Path) -> tuple[list[tuple[list[str], list[list[str]]]], str]:
    tables = [_read(p) for p in _files(find_hospitals(split))]
    return tables, next(c for c in LABEL_GUESSES if c in tables[0][0])


@functools.lru_cache(maxsize=None)
def _split_categorical(split: Path) -> frozenset[str]:
    """The categorical columns of a shipped split (those with text cells), spelled as `_spelled` does."""
    tables, label = _split_tables(split)
    return frozenset(_spelled(c.partition("=")[0]) for c in _categorical(tables[0][0], tables, label, frozenset()))


@functools.lru_cache(maxsize=None)
def _split_indicated(split: Path) -> frozenset[str]:
    """The shipped split's columns that other encodings write as indicator columns: its categorical
    columns (one column per category) and its 0/1 columns (one column for one of the two values,
    as pandas' `get_dummies(drop_first=True)` writes `sex` as `sex_Male`)."""
    tables, label = _split_tables(split)
    header = tables[0][0]
    binary = {_spelled(column) for j, column in enumerate(header) if column != label
              and {row[j].strip() for _, rows in tables for row in rows if j < len(row)} <= {"0", "1"}}
    return _split_categorical(split) | frozenset(binary)


def _shipped_split(header: list[str]) -> Path | None:
    """The shipped split whose columns `header` has, in any spelling `_layout` resolves; else None."""
    for split in SHIPPED_SPLITS:
        try:
            own = _read(find_hospitals(split)[0].train)[0]
        except DataError:
            continue
        indicated = _split_indicated(split)
        if _layout(header, indicated) == _layout(own, indicated):
            return split
    return None


def heart_by_position(folder: Path, label_column: str = "") -> dict[str, str]:
    """Each column name -> the heart split's spelling, for a folder whose files hold FLamby's 13 heart
    inputs in FLamby's order under names of their own (`x1` ... `x13`), checked on every cell: numbers
    only (the benchmark has no missing cells), each measurement in its range, every other input 0 or
    1 (or True and False), at most one 1 per one-hot group, and a 0/1 label. {} for anything else."""
    try:
        paths = _files(find_hospitals(Path(folder)))
        tables = [_read(paths[0])]
        header = tables[0][0]
        label = label_column or next((c for c in LABEL_GUESSES if c in header), "")
        inputs = [c for c in header if c != label and c.strip()]
        if label not in header or len(inputs) != len(FLAMBY_HEART_INPUTS) or len(set(header)) != len(header):
            return {}  # decided by the first file's header: the others are not read
        tables += [_read(p) for p in paths[1:]]
    except DataError:
        return {}
    if any(t[0] != header for t in tables):
        return {}
    try:  # pandas 2 writes one-hot columns as True/False
        rows = [[float(_BOOLEAN.get(cell.strip().lower(), cell)) for cell in row]
                for _, table_rows in tables for row in table_rows]
    except ValueError:
        return {}
    if not rows or any(len(row) != len(header) or not all(map(math.isfinite, row)) for row in rows):
        return {}
    names = dict(zip(inputs, FLAMBY_HEART_INPUTS))
    column = {ours: [row[header.index(theirs)] for row in rows] for theirs, ours in names.items()}
    column["label"] = [row[header.index(label)] for row in rows]
    for ours, values in column.items():
        low, high = FLAMBY_HEART_RANGES.get(ours, (0.0, 1.0))
        if not all(low <= v <= high for v in values) or (ours not in FLAMBY_HEART_RANGES and
                                                         not all(v in (0.0, 1.0) for v in values)):
            return {}
    if any(sum(column[c][i] for c in group) > 1 for group in FLAMBY_HEART_GROUPS for i in range(len(rows))):
        return {}
    return names


def shipped_settings(folder: Path) -> Path | None:
    """The settings file of the shipped split whose columns `folder`'s first file has (any order,
    any spelling `_layout` resolves), for a folder without a settings file of its own; else None."""
    try:
        header = _read(find_hospitals(Path(folder))[0].train)[0]
    except DataError:  # read_data_dir says what is wrong with the folder when the swarm starts
        return None
    split = _shipped_split(header)
    return split / SETTINGS_FILE if split is not None and (split / SETTINGS_FILE).is_file() else None


__all__ = ["DataDir", "FLAMBY_HEART_INPUTS", "HospitalFiles", "SHIPPED_SPLITS", "find_hospitals",
           "heart_by_position", "read_data_dir", "shipped_settings"]
