"""A folder of hospital CSV files, read as one swarm: who the hospitals are and how to encode them.

`medswarm swarm --data DIR` gives each node its own file. DIR holds either one CSV per hospital
(`cleveland.csv`: the node holds out a test share of it) or a pair per hospital
(`cleveland_train.csv` + `cleveland_test.csv`: every train row trains, every test row tests).
Node names come from the file names. All files must have the same columns; a column whose cells
are not all numbers (or missing) in every file is categorical, with the sorted union of its
values as the category list every node is given, so column j means the same thing everywhere.
A folder without its own settings file whose columns are those of a split shipped in node/data
(e.g. another draw of the same benchmark split) is given that split's settings (`shipped_settings`).
"""

from __future__ import annotations

import csv
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
    paths = [p for h in hospitals for p in (h.train, h.test) if p is not None]
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
    features = tuple(c for c in header if c != label_column)
    categorical = []
    for j, column in enumerate(header):
        if column == label_column:
            continue
        values = {row[j].strip() for rows in (t[1] for t in tables.values()) for row in rows if j < len(row)}
        values = {v for v in values if v.lower() not in MISSING_TOKENS}
        if values and not all(_is_number(v) for v in values):
            categorical.append(f"{column}=" + "|".join(sorted(values)))
    return DataDir(hospitals, label_column, features, tuple(categorical))


def _columns(folder: Path) -> frozenset[str] | None:
    try:
        return frozenset(_read(find_hospitals(folder)[0].train)[0])
    except DataError:  # read_data_dir says what is wrong with the folder when the swarm starts
        return None


def shipped_settings(folder: Path) -> Path | None:
    """The settings file of the shipped split whose files have exactly the columns of `folder`'s
    first file (any order), for a folder without a settings file of its own; else None."""
    columns = _columns(Path(folder))
    for split in SHIPPED_SPLITS:
        if columns is not None and (split / SETTINGS_FILE).is_file() and columns == _columns(split):
            return split / SETTINGS_FILE
    return None


__all__ = ["DataDir", "HospitalFiles", "SHIPPED_SPLITS", "find_hospitals", "read_data_dir", "shipped_settings"]
