"""Data sets and partitions: turn raw tables into identically encoded feature matrices per node.

Every node encodes its rows with the same `Schema` (fixed column order, fixed category lists), so
column j means the same thing on every hospital's machine. Missing values stay NaN here; they are
imputed later with swarm-wide means (`node.preprocess`). Nothing in this module scales features:
scaling needs statistics that the swarm computes together from training rows only.

Sources, all offline:
- `heart_hospital`: UCI Heart Disease, the four real hospitals (shipped in `node/data/`, CC BY 4.0).
- `breast_cancer_shards`: scikit-learn's bundled Wisconsin diagnostic set, split IID or
  Dirichlet(alpha) non-IID over N nodes.
- `csv_shard`: a hospital's own CSV file (features + label column), optionally with its own test
  file; nothing is held back from the training file then (the learner keeps its validation share).
`load_node_data(DataConfig)` picks one of them from a node's `[data]` config.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from .config import DataConfig, categorical_spec

logger = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent / "data"
HEART_CSV = DATA_DIR / "heart_disease_uci.csv"
HEART_HOSPITALS: tuple[str, ...] = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
# The scenario data sets (ECG, watch) live in node.scenarios.
DATASETS: tuple[str, ...] = ("heart", "breast_cancer", "csv", "ecg_rhythm", "ecg_anomaly", "ecg_sites", "watch")
# Data sets the launcher can split over its nodes itself ("csv" needs a file per hospital).
SPLITTABLE = tuple(d for d in DATASETS if d != "csv")
PARTITIONS: tuple[str, ...] = ("iid", "dirichlet")
MISSING_TOKENS: frozenset[str] = frozenset({"", "?", "na", "nan", "null", "none"})
DEFAULT_TEST_FRACTION = 0.25
# Largest magnitude of a numeric feature. Far beyond any clinical measurement, and small enough
# that a node's sums of squares over a million rows stay within the bound its statistics must
# respect on the wire (`preprocess.STATS_MAX_ABS`, 1e30); float32 alone would allow 3.4e38.
MAX_FEATURE_ABS = 1e12
# Labels are classes 0..MAX_CLASSES-1: the model gets one output per class up to the largest
# label, so a label of 1e18 would ask for a layer of 1e18 units.
MAX_CLASSES = 64


class DataError(ValueError):
    """A data file or data value that cannot be used; the message says which and why."""


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Column:
    """One raw column and how it becomes encoded feature columns.

    kind "numeric": one float column. kind "categorical": one-hot over the fixed `categories`
    (missing -> NaN in every one-hot column). kind "boolean": one 0/1 column; tokens in `true_tokens`
    give 1, in `false_tokens` give 0 (compared case-insensitively). `missing`: cell values that mean
    "missing" in this column only (lower case; e.g. "0" for a cholesterol the site did not measure),
    besides the schema's. `indicator`: one more 0/1 column, "NAME:missing", 1 where the cell is
    missing, so the model can learn from the absence itself (imputation alone hides it).
    """

    name: str
    kind: str
    categories: tuple[str, ...] = ()
    true_tokens: tuple[str, ...] = ("true", "1", "yes", "y", "t")
    false_tokens: tuple[str, ...] = ("false", "0", "no", "n", "f")
    missing: tuple[str, ...] = ()
    indicator: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical", "boolean"):
            raise ValueError(f"column {self.name!r}: kind must be numeric, categorical or boolean, not {self.kind!r}")
        if self.kind == "categorical" and (not self.categories or len(set(self.categories)) != len(self.categories)):
            raise ValueError(f"column {self.name!r}: a categorical column needs distinct categories")

    @property
    def encoded_names(self) -> tuple[str, ...]:
        names = tuple(f"{self.name}={c}" for c in self.categories) if self.kind == "categorical" else (self.name,)
        return names + ((f"{self.name}:missing",) if self.indicator else ())

    def encode(self, raw: str, where: str, missing: frozenset[str] = MISSING_TOKENS) -> list[float]:
        """Encode one raw cell; `where` names the file and row for error messages; a token in
        `missing` or in the column's own `missing` (compared lower-case) is a missing value."""
        token = raw.strip()
        if token.lower() in missing or token.lower() in self.missing:
            width = len(self.encoded_names) - self.indicator
            return [math.nan] * width + [1.0] * self.indicator
        return self._present(token, raw, where) + [0.0] * self.indicator

    def _present(self, token: str, raw: str, where: str) -> list[float]:
        if self.kind == "numeric":
            try:
                value = float(token)
            except ValueError:
                raise DataError(f"{where}: column {self.name!r}: {raw!r:.40} is not a number") from None
            if not abs(value) <= MAX_FEATURE_ABS:  # also False for NaN spellings that are not missing markers
                raise DataError(f"{where}: column {self.name!r}: {raw!r:.40} is not a finite number "
                                f"within +-{MAX_FEATURE_ABS:g}")
            return [value]
        if self.kind == "boolean":
            low = token.lower()
            if low in (t.lower() for t in self.true_tokens):
                return [1.0]
            if low in (t.lower() for t in self.false_tokens):
                return [0.0]
            raise DataError(f"{where}: column {self.name!r}: {raw!r:.40} is not one of "
                            f"{self.true_tokens + self.false_tokens}")
        if token not in self.categories:
            raise DataError(f"{where}: column {self.name!r}: unknown category {raw!r:.40} "
                            f"(expected one of {self.categories})")
        return [1.0 if token == c else 0.0 for c in self.categories]


@dataclass(frozen=True)
class Schema:
    """The ordered raw columns a data set is encoded from; identical on every node."""

    columns: tuple[Column, ...]
    missing: frozenset[str] = MISSING_TOKENS  # lower-case cell values that mean "missing"

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if not names:
            raise ValueError("a schema needs at least one column")
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate column names in schema: {names}")

    @classmethod
    def numeric(cls, names: Iterable[str]) -> "Schema":
        return cls(tuple(Column(n, "numeric") for n in names))

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(n for c in self.columns for n in c.encoded_names)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def index(self, encoded_name: str) -> int:
        return self.feature_names.index(encoded_name)

    def encode(self, rows: Sequence[Mapping[str, str]], source: str = "data") -> np.ndarray:
        """Encode rows (dicts of raw strings) into a float32 (n_rows, n_features) matrix, NaN = missing."""
        out = np.empty((len(rows), self.n_features), dtype=np.float64)
        for i, row in enumerate(rows):
            where = f"{source}: row {i + 2}"  # +1 for the header, +1 for 1-based lines
            values: list[float] = []
            for col in self.columns:
                raw = row.get(col.name)
                if raw is None:
                    raise DataError(f"{where}: missing column {col.name!r} (a short row?)")
                values.extend(col.encode(raw, where, self.missing))
            out[i] = values
        return out.astype(np.float32)


HEART_SCHEMA = Schema((
    Column("age", "numeric"),
    Column("sex", "boolean", true_tokens=("Male",), false_tokens=("Female",)),
    Column("cp", "categorical", ("typical angina", "atypical angina", "non-anginal", "asymptomatic")),
    Column("trestbps", "numeric"),
    Column("chol", "numeric"),
    Column("fbs", "boolean"),
    Column("restecg", "categorical", ("normal", "st-t abnormality", "lv hypertrophy")),
    Column("thalch", "numeric"),
    Column("exang", "boolean"),
    Column("oldpeak", "numeric"),
    Column("slope", "categorical", ("upsloping", "flat", "downsloping")),
    Column("ca", "numeric"),
    Column("thal", "categorical", ("normal", "fixed defect", "reversable defect")),
))
"""Encoding of UCI Heart Disease: 13 raw attributes -> 22 features (the hospital column is not a feature)."""
# Raw columns of the heart data where the UCI files write 0 for "not measured".
HEART_ZERO_IS_MISSING: tuple[str, ...] = ("chol", "trestbps")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, eq=False)
class RawShard:
    """Encoded rows of one node: x float32 (n, n_features) with NaN for missing, y int64 (n,)."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.x.dtype != np.float32 or self.x.ndim != 2:
            raise ValueError(f"x must be a 2-D float32 array, got {self.x.dtype} {self.x.shape}")
        if self.y.dtype != np.int64 or self.y.shape != (self.x.shape[0],):
            raise ValueError(f"y must be int64 of shape ({self.x.shape[0]},), got {self.y.dtype} {self.y.shape}")
        if len(self.feature_names) != self.x.shape[1]:
            raise ValueError(f"{len(self.feature_names)} feature names for {self.x.shape[1]} columns")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def prevalence(self) -> float:
        """Share of rows with label 1 (NaN for an empty shard)."""
        return float(np.mean(self.y == 1)) if len(self) else math.nan

    def take(self, index: np.ndarray) -> "RawShard":
        return RawShard(self.x[index], self.y[index], self.feature_names)


@dataclass(frozen=True)
class NodeData:
    """What one node trains and tests on. `test` rows never feed training or swarm statistics."""

    train: RawShard
    test: RawShard
    name: str
    # The task's number of classes where it is fixed (a node may hold no row of some class, and
    # every node must still build the same model); 0: one more than the largest label held.
    classes: int = 0

    @property
    def n_features(self) -> int:
        return self.train.n_features

    @property
    def n_classes(self) -> int:
        return max(self.classes, int(max(self.train.y.max(initial=0), self.test.y.max(initial=0))) + 1)


# --------------------------------------------------------------------------- splitting


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split of row indices into (train, test), each sorted.

    Per class, round(n_c * test_fraction) rows go to test, but every class with >= 2 rows keeps at
    least one row on each side.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        else:
            n_test = 0
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def iid_partition(y: np.ndarray, n_nodes: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Stratified round-robin split of all rows over n_nodes (each class spread evenly)."""
    parts: list[list[int]] = [[] for _ in range(n_nodes)]
    offset = 0
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(len(idx))]
        for j, i in enumerate(idx):
            parts[(j + offset) % n_nodes].append(int(i))
        offset += len(idx)
    return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]


def dirichlet_partition(y: np.ndarray, n_nodes: int, alpha: float, rng: np.random.Generator,
                        min_rows: int = 10, max_tries: int = 1000) -> list[np.ndarray]:
    """Label-skewed non-IID split (Hsu et al. 2019): per class, node shares ~ Dirichlet(alpha).

    Every row goes to exactly one node. Draws are repeated (from the same seeded generator) until
    every node has at least `min_rows` rows, so a node can always split train/test.
    """
    if alpha <= 0 or not math.isfinite(alpha):
        raise ValueError(f"alpha must be a positive number, got {alpha}")
    if n_nodes * min_rows > len(y):
        raise ValueError(f"cannot give {n_nodes} nodes {min_rows} rows each from {len(y)} rows")
    for _ in range(max_tries):
        parts: list[list[int]] = [[] for _ in range(n_nodes)]
        for label in np.unique(y):
            idx = np.flatnonzero(y == label)
            idx = idx[rng.permutation(len(idx))]
            shares = rng.dirichlet(np.full(n_nodes, alpha))
            cuts = (np.cumsum(shares)[:-1] * len(idx)).astype(int)
            for node, chunk in enumerate(np.split(idx, cuts)):
                parts[node].extend(int(i) for i in chunk)
        if min(len(p) for p in parts) >= min_rows:
            return [np.sort(np.asarray(p, dtype=np.int64)) for p in parts]
    raise ValueError(f"no Dirichlet(alpha={alpha}) split gave every one of {n_nodes} nodes "
                     f"{min_rows} rows in {max_tries} draws; raise alpha or lower n_nodes")


def _node_data(x: np.ndarray, y: np.ndarray, names: tuple[str, ...], name: str,
               rng: np.random.Generator, test_fraction: float) -> NodeData:
    train_idx, test_idx = stratified_split(y, test_fraction, rng)
    shard = RawShard(np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64), names)
    return NodeData(shard.take(train_idx), shard.take(test_idx), name)


# --------------------------------------------------------------------------- loaders


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read data file {path}: {exc}") from None
    if not header:
        raise DataError(f"{path}: empty file or no header row")
    if not rows:
        raise DataError(f"{path}: no data rows")
    return header, rows


def _canonical_hospital(name: str) -> str:
    for h in HEART_HOSPITALS:
        if name.strip().lower() in (h.lower(), h.lower().replace(" ", "_"), h.lower().replace(" ", "-")):
            return h
    raise ValueError(f"unknown hospital {name!r}; expected one of {HEART_HOSPITALS}")


def heart_hospital(name: str, seed: int = 0, test_fraction: float = DEFAULT_TEST_FRACTION,
                   path: Path = HEART_CSV) -> NodeData:
    """One real hospital of UCI Heart Disease, with a fixed seeded stratified train/test split.

    Label: disease = num > 0. `chol == 0` and `trestbps == 0` (UCI placeholders) read as missing.
    The split depends only on (hospital, seed, test_fraction).
    """
    hospital = _canonical_hospital(name)
    _, rows = _read_csv(path)
    rows = [r for r in rows if r.get("dataset") == hospital]
    x = HEART_SCHEMA.encode(rows, source=str(path))
    for col in HEART_ZERO_IS_MISSING:
        j = HEART_SCHEMA.index(col)
        x[x[:, j] == 0.0, j] = np.nan
    y = np.array([int(r["num"]) > 0 for r in rows], dtype=np.int64)
    rng = np.random.default_rng([seed, HEART_HOSPITALS.index(hospital)])
    return _node_data(x, y, HEART_SCHEMA.feature_names, hospital, rng, test_fraction)


def heart_hospitals(seed: int = 0, test_fraction: float = DEFAULT_TEST_FRACTION) -> list[NodeData]:
    """All four hospitals, in `HEART_HOSPITALS` order."""
    return [heart_hospital(h, seed, test_fraction) for h in HEART_HOSPITALS]


def breast_cancer_shards(n_nodes: int, seed: int = 0, partition: str = "iid", alpha: float = 0.5,
                         test_fraction: float = DEFAULT_TEST_FRACTION) -> list[NodeData]:
    """scikit-learn's Wisconsin diagnostic breast cancer set (569 x 30) split over n_nodes.

    Label 1 = malignant (the disease is the positive class; sklearn's own target is the reverse).
    Each node's rows are then split train/test (stratified, seeded). Rows of all nodes together
    cover the data set exactly once.
    """
    from sklearn.datasets import load_breast_cancer  # bundled with scikit-learn, no download

    if n_nodes < 1:
        raise ValueError(f"n_nodes must be >= 1, got {n_nodes}")
    if partition not in PARTITIONS:
        raise ValueError(f"unknown partition {partition!r}; expected one of {PARTITIONS}")
    bunch = load_breast_cancer()
    x = np.asarray(bunch.data, dtype=np.float32)
    y = (np.asarray(bunch.target) == 0).astype(np.int64)
    names = tuple(str(n) for n in bunch.feature_names)
    rng = np.random.default_rng([seed, 7919])
    if partition == "iid":
        parts = iid_partition(y, n_nodes, rng)
    else:
        parts = dirichlet_partition(y, n_nodes, alpha, rng)
    return [_node_data(x[p], y[p], names, f"node{i}", np.random.default_rng([seed, 104729, i]), test_fraction)
            for i, p in enumerate(parts)]


def missing_spec(entries: Iterable[str], columns: Sequence[str], source: str = "data") -> tuple[
        frozenset[str], dict[str, frozenset[str]]]:
    """Parse `data.missing_values`: "TOKEN" means missing in every column, "COLUMN=TOKEN" in that
    column only (e.g. "chol=0"). Returns (every column's tokens, {column: its own tokens})."""
    everywhere: set[str] = set()
    per_column: dict[str, set[str]] = {}
    for entry in entries:
        name, sep, token = entry.partition("=")
        if not sep:
            everywhere.add(entry.strip().lower())
            continue
        if name.strip() not in columns:
            raise DataError(f"{source}: data.missing_values {entry!r:.60}: {name.strip()!r} is not a feature column")
        per_column.setdefault(name.strip(), set()).add(token.strip().lower())
    return frozenset(everywhere), {k: frozenset(v) for k, v in per_column.items()}


def csv_schema(header: Sequence[str], label_column: str, feature_columns: Sequence[str] = (),
               categories: Mapping[str, Sequence[str]] | None = None,
               missing: Iterable[str] = (), source: str = "data", indicators: Iterable[str] = ()) -> Schema:
    """The encoding of a hospital's CSV: `feature_columns` in that order (default: every named column
    but the label, in file order: a column without a name is the row numbers pandas writes first);
    those named in `categories` one-hot over the given category list, the rest numeric. `missing`
    adds cell values that mean "missing" to `MISSING_TOKENS`, in every column or, as
    "COLUMN=TOKEN", in one (`missing_spec`); columns in `indicators` get a missing-indicator column
    each."""
    categories = dict(categories or {})
    names = list(feature_columns) or [c for c in header if c != label_column and c.strip()]
    indicators = set(indicators)
    for what, listed in (("categorical", categories), ("missing-indicator", indicators)):
        unknown = sorted(set(listed) - set(names))
        if unknown:
            raise DataError(f"{source}: {what} columns {unknown[:5]} are not among the feature columns")
    everywhere, per_column = missing_spec(missing, names, source)
    try:
        columns = tuple(Column(n, "categorical" if n in categories else "numeric", tuple(categories.get(n, ())),
                               missing=tuple(sorted(per_column.get(n, ()))), indicator=n in indicators)
                        for n in names)
        return Schema(columns, MISSING_TOKENS | everywhere)
    except ValueError as exc:  # no feature column, a feature named twice, repeated categories
        raise DataError(f"{source}: {exc}") from None


def csv_rows(path: Path | str, label_column: str, schema: Schema | Sequence[str] | None = None) -> RawShard:
    """Every row of a hospital's CSV, encoded: features by `schema` (see `csv_shard`) and an
    integer label column (0..K-1). A file whose labels are all one class is accepted: such a site
    still trains and scores; metrics that need two classes are reported as not available."""
    path = Path(path)
    header, rows = _read_csv(path)
    repeated = [c for c, n in Counter(header).items() if n > 1]
    if repeated:  # csv.DictReader would silently keep the last of them
        raise DataError(f"{path}: column names repeated in the header: {repeated[:5]}")
    if label_column not in header:
        raise DataError(f"{path}: label column {label_column!r} not found; columns are {header[:20]}")
    if not isinstance(schema, Schema):
        schema = csv_schema(header, label_column, schema or (), source=str(path))
    missing = [c.name for c in schema.columns if c.name not in header]
    if missing:
        raise DataError(f"{path}: feature columns {missing[:20]} not found; columns are {header[:20]}")
    if label_column in (c.name for c in schema.columns):
        raise DataError(f"{path}: label column {label_column!r} is also listed as a feature")
    labels: list[int] = []
    for i, r in enumerate(rows):
        raw = (r.get(label_column) or "").strip()
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (value.is_integer() and 0 <= value < MAX_CLASSES):  # NaN and inf are not integers
            raise DataError(f"{path}: row {i + 2}: label {label_column!r} is {raw!r:.40}, "
                            f"not an integer class in 0..{MAX_CLASSES - 1}")
        labels.append(int(value))
    y = np.asarray(labels, dtype=np.int64)
    if len(np.unique(y)) < 2:
        logger.warning("%s: every row has label %s=%d: one class only (it is used all the same; "
                       "metrics that need two classes read n/a on it)", path, label_column, int(y[0]))
    return RawShard(schema.encode(rows, source=str(path)), y, schema.feature_names)


def csv_shard(path: Path | str, label_column: str, schema: Schema | Sequence[str] | None = None,
              seed: int = 0, test_fraction: float = DEFAULT_TEST_FRACTION, name: str = "",
              test_path: Path | str | None = None) -> NodeData:
    """A hospital's own CSV: features + an integer label column (0..K-1).

    `schema` fixes the feature encoding (use the swarm's agreed one); a list of names means those
    columns, numeric; None means every column except the label, numeric, in file order. With
    `test_path` every row of `path` is a training row and `test_path`'s rows are the test set;
    without it a seeded, stratified `test_fraction` of `path` is held out for testing.
    """
    path = Path(path)
    train = csv_rows(path, label_column, schema)
    if test_path is not None:
        test_schema = schema if isinstance(schema, Schema) else Schema.numeric(train.feature_names)
        test = csv_rows(test_path, label_column, test_schema)
        return NodeData(train, test, name or path.stem)
    rng = np.random.default_rng([seed, 15485863])
    train_idx, test_idx = stratified_split(train.y, test_fraction, rng)
    logger.info("%s: no test file given; holding out %d of %d rows (test_fraction %.2f) as the test set",
                path, len(test_idx), len(train), test_fraction)
    return NodeData(train.take(train_idx), train.take(test_idx), name or path.stem)


# --------------------------------------------------------------------------- from a node's config


def node_schema(config: DataConfig) -> Schema:
    """The feature encoding a node with this `[data]` config uses (what an exported model reads)."""
    if config.dataset == "heart":
        return HEART_SCHEMA
    if config.dataset == "breast_cancer":
        from sklearn.datasets import load_breast_cancer

        return Schema.numeric(str(n) for n in load_breast_cancer().feature_names)
    if config.dataset == "csv":
        header, _ = _read_csv(Path(config.csv_path))
        return csv_schema(header, config.label_column, config.feature_columns,
                          categorical_spec(config.categorical_columns), config.missing_values, config.csv_path,
                          config.missing_indicators)
    raise ValueError(f"data.dataset: unknown data set {config.dataset!r}; expected one of {DATASETS}")


def load_node_data(config: DataConfig) -> NodeData:
    """Load the train/test data of one node as its `[data]` config describes."""
    if config.dataset == "heart":
        data = heart_hospital(config.hospital, config.seed, config.test_fraction)
    elif config.dataset == "breast_cancer":
        if not 0 <= config.node_index < config.n_nodes:
            raise ValueError(f"data.node_index must be 0..{config.n_nodes - 1}, got {config.node_index}")
        data = breast_cancer_shards(config.n_nodes, config.seed, config.partition, config.alpha,
                                    config.test_fraction)[config.node_index]
    elif config.dataset == "csv":
        if not config.csv_path:
            raise ValueError("data.csv_path is required for dataset 'csv'")
        data = csv_shard(config.csv_path, config.label_column, node_schema(config), config.seed, config.test_fraction,
                         test_path=config.test_csv or None)
    elif config.dataset in DATASETS:
        from .scenarios import load_scenario_data  # the scenarios build on this module

        data = load_scenario_data(config)
    else:
        raise ValueError(f"data.dataset: unknown data set {config.dataset!r}; expected one of {DATASETS}")
    logger.info("loaded %s: %d train / %d test rows, %d features, prevalence %.2f",
                data.name, len(data.train), len(data.test), data.n_features, data.train.prevalence())
    return data
