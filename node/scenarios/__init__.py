"""The seed's clinical scenarios: their data sets, their published validation sets, and the swarm
each one runs (`medswarm swarm --scenario NAME`).

Data sets here (all offline; see each module for where the data comes from and its licence):
- "ecg_rhythm" / "ecg_anomaly": physiokit ECG segments, hospitals with different class mixes and
  noise levels; five rhythm/morphology classes, or normal against abnormal (`node.scenarios.ecg`).
- "ecg_sites": the five classes at two kinds of hospital (rhythm clinics, chest-pain units), each
  seeing the other kind's classes only rarely: the split for grouping similar sites.
- "watch": seglearn's real smartwatch exercise recordings, one person per node, starting from a
  model trained on people outside the swarm (`node.scenarios.watch`).

A published validation set is one set every node holds bit for bit, named on chain by its
keccak256 digest (`TaskPlan.validation_digest`); the `best` merge rule ranks models on it.
"""

from __future__ import annotations

import logging
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from p2p.codec import digest

from ..config import DataConfig, NodeConfig
from ..datasets import NodeData, RawShard, stratified_split
from . import ecg, watch

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

ECG_FRAMINGS: dict[str, str] = {"ecg_rhythm": "rhythm", "ecg_anomaly": "anomaly", "ecg_sites": "rhythm"}
ECG_MIXES: dict[str, str] = {"ecg_sites": "sites"}  # the others: Dirichlet mixes (node.scenarios.ecg.MIXES)
SCENARIO_DATASETS: tuple[str, ...] = (*ECG_FRAMINGS, "watch")


@dataclass(frozen=True, eq=False)
class PublishedSet:
    """A validation set the task's sponsor publishes: raw features, labels, and their digest."""

    x: np.ndarray
    y: np.ndarray

    @property
    def digest(self) -> str:
        """keccak256 over a header of shapes and dtypes, then x (float32 LE) and y (int64 LE)."""
        x = np.ascontiguousarray(self.x, dtype="<f4")
        y = np.ascontiguousarray(self.y, dtype="<i8")
        header = struct.pack("<4sQQQ", b"MSV1", x.shape[0], int(np.prod(x.shape[1:], dtype=np.int64)), y.shape[0])
        return digest(header + x.tobytes() + y.tobytes())


def write_published_set(path: Path, published: PublishedSet) -> str:
    """Save `published` as an .npz of plain arrays x (float32) and y (int64); returns its digest,
    what the sponsor names on chain (`createTask(..., validationDigest)`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, x=np.asarray(published.x, dtype=np.float32), y=np.asarray(published.y, dtype=np.int64))
    return published.digest


def read_published_set(path: Path) -> PublishedSet:
    """A published validation set from its .npz file (x: rows of features, y: integer labels),
    read without unpickling; ValueError naming the file when it is missing or not such a set."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"validation set {path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ValueError(f"validation set {path}: not an .npz of arrays x and y ({exc})") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise ValueError(f"validation set {path}: not an .npz of arrays x and y (a single array)")
    with loaded:
        try:
            x, y = np.asarray(loaded["x"]), np.asarray(loaded["y"])
        except (KeyError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"validation set {path}: not an .npz of arrays x and y ({exc})") from None
    if x.ndim != 2 or y.ndim != 1 or len(x) != len(y) or not len(y):
        raise ValueError(f"validation set {path}: x must be rows of features and y one label per row; got "
                         f"shapes {x.shape} and {y.shape}")
    # NaN is a missing value, as in the members' own rows (the swarm's scaling fills it in)
    if not np.issubdtype(y.dtype, np.integer) or np.any(np.isinf(x.astype(np.float64))):
        raise ValueError(f"validation set {path}: labels must be integers and features finite or NaN (missing)")
    return PublishedSet(np.ascontiguousarray(x, dtype=np.float32), y.astype(np.int64))


def _feature_names(n: int) -> tuple[str, ...]:
    return tuple(f"t{i}" for i in range(n))


def load_scenario_data(config: DataConfig) -> NodeData:
    """One node's train/test data for a scenario data set (`config.dataset` in SCENARIO_DATASETS)."""
    if config.dataset not in SCENARIO_DATASETS:
        raise ValueError(f"data.dataset: {config.dataset!r} is not a scenario data set {SCENARIO_DATASETS}")
    if not 0 <= config.node_index < config.n_nodes:
        raise ValueError(f"data.node_index must be 0..{config.n_nodes - 1}, got {config.node_index}")
    if config.dataset == "watch":
        if config.n_nodes > len(watch.MEMBER_SUBJECTS):
            raise ValueError(f"data.n_nodes: the watch data has {len(watch.MEMBER_SUBJECTS)} member subjects")
        subject = watch.MEMBER_SUBJECTS[config.node_index]
        x, y = watch.subject_windows(subject)
        name, classes = f"subject{subject}", len(watch.CLASSES)
    else:
        framing = ECG_FRAMINGS[config.dataset]
        x, y = ecg.hospital_segments(config.node_index, config.n_nodes, config.alpha, config.seed,
                                     mixes=ECG_MIXES.get(config.dataset, "dirichlet"))
        y = ecg.frame(y, framing)
        name, classes = f"hospital{config.node_index}", len(ecg.CLASSES) if framing == "rhythm" else 2
    shard = RawShard(np.ascontiguousarray(x, dtype=np.float32), y, _feature_names(x.shape[1]))
    rng = np.random.default_rng([config.seed, 611953, config.node_index])
    train, test = stratified_split(y, config.test_fraction, rng)
    return NodeData(shard.take(train), shard.take(test), name, classes)


PUBLISHED_SETS: tuple[str, ...] = tuple(ECG_FRAMINGS)  # data sets that come with a published validation set


def published_set(config: DataConfig) -> PublishedSet | None:
    """The task's published validation set for this data set, or None where it has none."""
    framing = ECG_FRAMINGS.get(config.dataset)
    if framing is None:
        return None
    x, y = ecg.published_validation()
    return PublishedSet(x, ecg.frame(y, framing))


def starting_weights(config: NodeConfig, model: "nn.Module") -> dict[str, np.ndarray] | None:
    """The task's pretrained starting point for `model` (freshly built), or None: start from the seed."""
    if config.data.dataset != "watch":
        return None
    return watch.pretrained_start(model, config.swarm.seed)


@dataclass(frozen=True)
class Scenario:
    """A runnable swarm: what `medswarm swarm --scenario NAME` sets before the operator's options."""

    title: str
    plan: dict[str, Any]  # SwarmPlan fields
    node_settings: tuple[str, ...] = ()  # section.key=value for every node
    data: str = ""  # where the data comes from, and its licence
    compare: tuple[str, ...] = field(default_factory=tuple)  # merge rules the benchmark compares
    groups: tuple[int | str, ...] = (1,)  # group counts the benchmark compares (1: one swarm model; "auto")


_WATCH_DATA = ("real: seglearn 1.2.5 smartwatch exercise recordings (BSD-3-Clause), 10 subjects; "
               "subjects 1-3 train the starting model, subjects 4 onwards are the nodes")
_ECG_DATA = "generated: physiokit 0.10.1 synthetic ECG (BSD-3-Clause), seeded, no download"
# Set explicitly, not left to the node defaults: the scenarios' tables were measured with them
_ECG_SETTINGS = ("model.hidden=32", "training.batch_size=16", "training.optimizer=adam")
SCENARIOS: dict[str, Scenario] = {
    "ecg-rhythm": Scenario(
        "ECG rhythm and morphology, 5 classes, 4 hospitals with different class mixes and noise",
        # 24 rounds, chosen on validation figures (scripts.bench.scenarios --replay, 3 seeds, the
        # nodes' validation rows pooled and the published set): 8 rounds leave the swarm far from
        # converged and behind each hospital alone; 24 put it ahead (README, "Clinical scenarios")
        {"nodes": 4, "rounds": 24, "dataset": "ecg_rhythm", "model": "cnn1d", "alpha": 1.0, "lr": 0.005,
         "epochs": 2, "merge": "mean"},
        _ECG_SETTINGS, _ECG_DATA, ("mean", "median", "best")),
    "ecg-anomaly": Scenario(
        "ECG anomaly detection: sinus rhythm against any abnormal rhythm or morphology, 4 hospitals",
        {"nodes": 4, "rounds": 8, "dataset": "ecg_anomaly", "model": "cnn1d", "alpha": 1.0, "lr": 0.005,
         "epochs": 2, "merge": "mean"},
        _ECG_SETTINGS, _ECG_DATA, ("mean",)),
    "evaluation-layer": Scenario(
        "The evaluation layer: each round adopts the member model that scores best on the published "
        "ECG validation set",
        {"nodes": 4, "rounds": 8, "dataset": "ecg_rhythm", "model": "cnn1d", "alpha": 1.0, "lr": 0.005,
         "epochs": 2, "merge": "best"},
        _ECG_SETTINGS, _ECG_DATA, ("best", "mean", "median")),
    "wearable": Scenario(
        "Wearable exercise recognition (FedHealth): a starting model from people outside the swarm, "
        "refined by the swarm, then personalised on each person's own windows",
        {"nodes": 4, "rounds": 6, "dataset": "watch", "model": "cnn1d", "lr": 0.003, "merge": "mean"},
        ("model.hidden=16", "model.channels=6", "training.batch_size=32", "training.optimizer=adam",
         "training.personalise_epochs=5"),
        _WATCH_DATA, ("mean",)),
    "ecg-groups": Scenario(
        "Grouping of similar sites: ECG at rhythm clinics and chest-pain units (each sees the other kind's "
        "classes only rarely); the swarm groups alike hospitals by their round-1 updates (as many groups as "
        "they show), one model per group",
        {"nodes": 4, "rounds": 8, "dataset": "ecg_sites", "model": "cnn1d", "alpha": 1.0, "lr": 0.005,
         "epochs": 2, "merge": "mean", "groups": "auto"},
        _ECG_SETTINGS, _ECG_DATA, ("mean",), ("auto", 1)),
}


def scenario_by_name(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; expected one of {', '.join(SCENARIOS)}") from None


__all__ = ["PublishedSet", "SCENARIOS", "SCENARIO_DATASETS", "Scenario", "load_scenario_data", "published_set",
           "scenario_by_name", "starting_weights"]
