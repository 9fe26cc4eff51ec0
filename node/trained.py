"""A finished run's model, read back from a node's run folder: to evaluate it or export it.

`TrainedModel.from_run(folder)` reads the node's config (`node.toml`) and its checkpoint (the
swarm's latest attested bundle with the input scaling agreed before round 1), takes the run's final
model from it (the last round's, or with `swarm.final_model = "best_val"` the one of lowest pooled
validation loss, node.selection), and rebuilds the exact torch model the node evaluates. `export(folder)` writes it in the documented, pickle-free format
that `node.portable` reads with numpy alone (docs/model-format.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from .bundle import BUNDLE_MAX_ABS, selection_state, split_bundle
from .checkpoint import CheckpointError, read_checkpoint
from .config import NodeConfig, load_config
from .datasets import HEART_ZERO_IS_MISSING, Schema, node_schema
from .grouping import GroupModels
from .models import build_model, load_numpy_state
from .portable import ARRAYS_FILE, FORMAT, SPEC_FILE, VERSION, PortableModel
from .preprocess import Scaler
from .rundir import RunFolder
from .selection import final_of

logger = logging.getLogger(__name__)

Tensors = dict[str, np.ndarray]
# The layers of each exportable model kind, in forward order (names as in its state_dict).
LAYERS: dict[str, tuple[dict[str, str], ...]] = {
    "logreg": ({"op": "linear", "weight": "linear.weight", "bias": "linear.bias"},),
    "mlp": ({"op": "linear", "weight": "net.0.weight", "bias": "net.0.bias"}, {"op": "relu"},
            {"op": "linear", "weight": "net.2.weight", "bias": "net.2.bias"}, {"op": "relu"},
            {"op": "linear", "weight": "net.4.weight", "bias": "net.4.bias"}),
}


class RunError(ValueError):
    """A run folder holds no usable model; the message says what is missing."""


def node_folder(folder: Path) -> Path:
    """`folder` if it is a node's run folder, else the first node folder inside a swarm's run folder."""
    folder = Path(folder)
    if RunFolder(folder).config.exists():
        return folder
    nodes = sorted(p for p in folder.glob("*/") if RunFolder(p).config.exists()) if folder.is_dir() else []
    if not nodes:
        raise RunError(f"{folder}: neither a node's run folder (node.toml + checkpoint) nor a swarm run "
                       "folder holding some")
    return nodes[0]


@dataclass(frozen=True, eq=False)
class TrainedModel:
    config: NodeConfig
    schema: Schema
    weights: Tensors
    scaler: Scaler
    round: int
    source: Path

    @classmethod
    def from_run(cls, folder: Path) -> "TrainedModel":
        folder = node_folder(folder)
        run = RunFolder(folder)
        config = load_config(run.config)
        try:
            task = json.loads(run.checkpoint_meta.read_text())["task"]
            ckpt = read_checkpoint(run.checkpoint_blob, run.checkpoint_meta, None, task, BUNDLE_MAX_ABS)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"{folder}: no readable checkpoint ({exc})") from None
        if ckpt is None:
            raise RunError(f"{folder}: no checkpoint yet (the node has not finished a round)")
        try:
            weights, stats = split_bundle(ckpt.tensors)
            weights, chosen = final_of(weights, selection_state(ckpt.tensors), config.swarm.final_model)
            round_no = chosen or ckpt.round
            if (groups := GroupModels.of(weights)) is not None:  # a grouped swarm: this node's group's model
                saved = run.read_grouping(task)
                weights = groups.copy(weights, saved[1] if saved else 0)
        except (ValueError, CheckpointError) as exc:
            raise RunError(f"{folder}: the checkpoint is not a model bundle ({exc})") from None
        return cls(config, node_schema(config.data), weights, Scaler.from_stats(stats), round_no, folder)

    @property
    def n_classes(self) -> int:
        return int(list(self.weights.values())[-1].shape[0])  # every model ends on its output bias

    def torch_model(self) -> torch.nn.Module:
        """The model exactly as the node evaluates it."""
        model = build_model(self.config.model.kind, self.schema.n_features, self.n_classes,
                            hidden=self.config.model.hidden, seed=self.config.swarm.seed)
        load_numpy_state(model, self.weights)
        model.eval()
        return model

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for encoded rows (NaN = missing), as the node computes them."""
        logits = self.torch_model()(torch.from_numpy(self.scaler.transform(x)))
        return torch.softmax(logits.double(), dim=1).numpy()

    # ------------------------------------------------------------------ export

    def spec(self) -> dict[str, Any]:
        kind = self.config.model.kind
        if kind not in LAYERS:
            raise RunError(f"model.kind {kind!r} cannot be exported yet; exportable: {', '.join(LAYERS)}")
        zero_missing = HEART_ZERO_IS_MISSING if self.config.data.dataset == "heart" else ()
        inputs = []
        for c in self.schema.columns:
            entry: dict[str, Any] = {"name": c.name, "kind": c.kind}
            if c.kind == "categorical":
                entry["categories"] = list(c.categories)
            elif c.kind == "boolean":
                entry["true"], entry["false"] = list(c.true_tokens), list(c.false_tokens)
            elif c.name in zero_missing:
                entry["zero_is_missing"] = True
            if c.missing:
                entry["missing"] = list(c.missing)
            if c.indicator:
                entry["missing_indicator"] = True
            inputs.append(entry)
        label = self.config.data.label_column if self.config.data.dataset == "csv" else "label"
        return {
            "format": FORMAT, "version": VERSION, "model_kind": kind, "round": self.round,
            "node": self.config.name, "dataset": self.config.data.dataset,
            "inputs": inputs, "missing": sorted(self.schema.missing),
            "feature_names": list(self.schema.feature_names),
            "scaling": {"mean": "scaling/mean", "std": "scaling/std"},
            "layers": [dict(layer) for layer in LAYERS[kind]],
            "output": {"label": label, "classes": list(range(self.n_classes)), "activation": "softmax"},
        }

    def export(self, out: Path) -> PortableModel:
        """Write model.json + model.npz into `out`; returns the model as `node.portable` loads it."""
        spec = self.spec()
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        arrays = {"scaling/mean": self.scaler.mean.astype(np.float64), "scaling/std": self.scaler.std.astype(np.float64)}
        arrays.update({k: v.astype(np.float32) for k, v in self.weights.items()})
        with open(out / ARRAYS_FILE, "wb") as fh:
            np.savez(fh, **arrays)
        (out / SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n")
        return PortableModel.load(out)


def encoded_rows(model: TrainedModel, csv_paths: Sequence[Path], label: str = "") -> tuple[np.ndarray, np.ndarray, str]:
    """Encoded rows and labels to evaluate `model` on: CSV files in the node's input columns (rows
    pooled), or (without any) the node's own test rows. Returns (x, y, a description of the rows)."""
    from .datasets import csv_rows, load_node_data

    if not csv_paths:
        data = load_node_data(model.config.data)
        return data.test.x, data.test.y, f"{model.config.name}'s own test rows"
    label = label or (model.config.data.label_column if model.config.data.dataset == "csv" else "label")
    shards = [csv_rows(p, label, model.schema) for p in csv_paths]
    x = np.concatenate([s.x for s in shards])
    if model.config.data.dataset == "heart":
        for col in HEART_ZERO_IS_MISSING:
            x[x[:, model.schema.index(col)] == 0.0, model.schema.index(col)] = np.nan
    return x, np.concatenate([s.y for s in shards]), ", ".join(str(p) for p in csv_paths)
