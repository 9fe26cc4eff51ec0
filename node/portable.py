"""A MedSwarm model outside the swarm: load an exported model and predict, with numpy alone.

This file imports only the standard library and numpy, so a hospital can copy it next to an
exported model (`medswarm export`) and run predictions where no torch, network or chain exists.
The format is described in docs/model-format.md: `model.json` (what the inputs are, how they are
encoded and scaled, which layers in which order) and `model.npz` (the arrays, read with
`allow_pickle=False`, so loading a model never runs code).

    from portable import PortableModel
    model = PortableModel.load("exported/")
    probabilities = model.predict_proba_rows([{"age": "63", "cp": "typical angina", ...}])
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

FORMAT, VERSION = "medswarm-model", 1
SPEC_FILE, ARRAYS_FILE = "model.json", "model.npz"


class ModelFormatError(ValueError):
    """An exported model folder that does not follow the documented format."""


def _encode_cell(column: Mapping[str, Any], raw: str, missing: frozenset[str], where: str) -> list[float]:
    """The encoded values of one cell, then its missing indicator where the column has one."""
    token = raw.strip()
    width = len(column.get("categories", ())) if column["kind"] == "categorical" else 1
    indicator = [] if not column.get("missing_indicator", False) else [0.0]
    if token.lower() in missing or token.lower() in column.get("missing", ()):
        return [math.nan] * width + [1.0] * len(indicator)
    return _present_cell(column, token, raw, where) + indicator


def _present_cell(column: Mapping[str, Any], token: str, raw: str, where: str) -> list[float]:
    kind = column["kind"]
    if kind == "numeric":
        try:
            value = float(token)
        except ValueError:
            raise ValueError(f"{where}: column {column['name']!r}: {raw!r:.40} is not a number") from None
        if value == 0.0 and column.get("zero_is_missing", False):
            return [math.nan]
        return [value]
    if kind == "boolean":
        if token.lower() in {t.lower() for t in column["true"]}:
            return [1.0]
        if token.lower() in {t.lower() for t in column["false"]}:
            return [0.0]
        raise ValueError(f"{where}: column {column['name']!r}: {raw!r:.40} is neither true nor false")
    if token not in column["categories"]:
        raise ValueError(f"{where}: column {column['name']!r}: unknown category {raw!r:.40}")
    return [1.0 if token == c else 0.0 for c in column["categories"]]


class PortableModel:
    """An exported model: raw rows -> encoded features -> scaled -> layers -> class probabilities."""

    def __init__(self, spec: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        if spec.get("format") != FORMAT or spec.get("version") != VERSION:
            raise ModelFormatError(f"not a {FORMAT} v{VERSION} spec: format {spec.get('format')!r}, "
                                   f"version {spec.get('version')!r}")
        self.spec = dict(spec)
        self.inputs: list[dict[str, Any]] = list(spec["inputs"])
        self.missing = frozenset(t.lower() for t in spec["missing"])
        self.feature_names: list[str] = list(spec["feature_names"])
        self.classes: list[int] = list(spec["output"]["classes"])
        self.mean = np.asarray(arrays[spec["scaling"]["mean"]], dtype=np.float64)
        self.std = np.asarray(arrays[spec["scaling"]["std"]], dtype=np.float64)
        self.layers: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
        for layer in spec["layers"]:
            if layer["op"] == "linear":
                w = np.asarray(arrays[layer["weight"]], dtype=np.float32)
                b = np.asarray(arrays[layer["bias"]], dtype=np.float32)
                self.layers.append(("linear", w, b))
            elif layer["op"] == "relu":
                self.layers.append(("relu", None, None))
            else:
                raise ModelFormatError(f"unknown layer op {layer['op']!r}")
        n = len(self.feature_names)
        if self.mean.shape != (n,) or self.std.shape != (n,):
            raise ModelFormatError(f"scaling arrays must have {n} values")

    @classmethod
    def load(cls, folder: str | Path) -> "PortableModel":
        folder = Path(folder)
        try:
            spec = json.loads((folder / SPEC_FILE).read_text(encoding="utf-8"))
            with np.load(folder / ARRAYS_FILE, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"cannot load a model from {folder}: {exc}") from None
        try:
            return cls(spec, arrays)
        except KeyError as exc:
            raise ModelFormatError(f"{folder}: the spec or arrays lack {exc}") from None

    def encode_rows(self, rows: Sequence[Mapping[str, str]]) -> np.ndarray:
        """Raw rows (column name -> cell text) as the (n, n_features) matrix the model reads; NaN = missing."""
        out = np.empty((len(rows), len(self.feature_names)), dtype=np.float64)
        for i, row in enumerate(rows):
            values: list[float] = []
            for column in self.inputs:
                if column["name"] not in row:
                    raise ValueError(f"row {i + 1}: missing column {column['name']!r}")
                values.extend(_encode_cell(column, str(row[column["name"]]), self.missing, f"row {i + 1}"))
            out[i] = values
        return out.astype(np.float32)

    def scale(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0).astype(np.float32)  # missing -> the swarm mean

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Class logits of encoded (unscaled) features."""
        h = self.scale(x)
        for op, w, b in self.layers:
            h = h @ w.T + b if op == "linear" else np.maximum(h, np.float32(0.0))
        return h

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        z = self.logits(x).astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.classes)[self.logits(x).argmax(axis=1)]

    def predict_proba_rows(self, rows: Sequence[Mapping[str, str]]) -> np.ndarray:
        return self.predict_proba(self.encode_rows(rows))
