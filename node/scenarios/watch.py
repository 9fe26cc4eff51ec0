"""Wearable exercise recognition, one person per node: seglearn's smartwatch recordings.

Real data: seglearn 1.2.5 (BSD-3-Clause) ships `watch_dataset.npy`, 6-axis smartwatch motion
(accelerometer and gyroscope, 50 Hz) of 10 subjects doing 7 shoulder physiotherapy exercises
(PEN, ABD, FEL, IR, ER, TRAP, ROW) with each arm: 140 recordings (Burns et al., arXiv:1802.01489).
The file is a pickled object array; it is read once with `allow_pickle=True` from the installed
package only (never from the network) and kept as plain arrays in the `.npz` cache
(`node.scenarios.cache`). Recordings are cut into non-overlapping 2-second windows (100 samples x
6 axes, stored channel-major: a flat row reshapes to (6, 100) for the 1D CNN), about 2,400 in all.

The FedHealth set-up (Chen et al., "FedHealth: A Federated Transfer Learning Framework for
Wearable Healthcare", IEEE Intelligent Systems 2020): a starting model trained on people outside
the swarm (the PUBLIC_SUBJECTS, never a node), the swarm refines it over the member subjects, and
each person then personalises it on their own windows (`node.learner.Learner.personalised`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .cache import cached_arrays

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

SAMPLE_RATE = 50
WINDOW = 2 * SAMPLE_RATE  # samples per window
CHANNELS = 6
CLASSES: tuple[str, ...] = ("PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW")
SUBJECTS: tuple[int, ...] = tuple(range(1, 11))
PUBLIC_SUBJECTS: tuple[int, ...] = (1, 2, 3)  # the starting model's data; never a node
MEMBER_SUBJECTS: tuple[int, ...] = tuple(s for s in SUBJECTS if s not in PUBLIC_SUBJECTS)
CACHE_KEY = "watch-v1"


def _package_file() -> Path:
    spec = importlib.util.find_spec("seglearn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("seglearn is not installed (pip install seglearn==1.2.5)")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "watch_dataset.npy"


def _convert() -> dict[str, np.ndarray]:
    """Windows of every recording from the installed package's file, as plain arrays."""
    path = _package_file()
    # The package's own file, installed from the registry: the only place a pickle is read.
    raw = np.load(path, allow_pickle=True).item()
    xs, ys, subjects = [], [], []
    for signal, label, subject in zip(raw["X"], raw["y"], raw["subject"]):
        signal = np.asarray(signal, dtype=np.float64)
        if signal.ndim != 2 or signal.shape[1] != CHANNELS or not np.all(np.isfinite(signal)):
            raise ValueError(f"{path}: unexpected recording of shape {signal.shape}")
        n = len(signal) // WINDOW
        windows = signal[: n * WINDOW].reshape(n, WINDOW, CHANNELS).transpose(0, 2, 1)
        xs.append(windows.reshape(n, CHANNELS * WINDOW).astype(np.float32))
        ys.append(np.full(n, int(label), dtype=np.int64))
        subjects.append(np.full(n, int(subject), dtype=np.int64))
    return {"x": np.concatenate(xs), "y": np.concatenate(ys), "subject": np.concatenate(subjects)}


def windows() -> dict[str, np.ndarray]:
    """All windows: x float32 (n, 600), y int64 exercise 0..6, subject int64 1..10."""
    return cached_arrays(CACHE_KEY, _convert)


def subject_windows(subject: int) -> tuple[np.ndarray, np.ndarray]:
    if subject not in SUBJECTS:
        raise ValueError(f"unknown subject {subject}; the watch data has subjects {SUBJECTS}")
    data = windows()
    mask = data["subject"] == subject
    return data["x"][mask], data["y"][mask]


def public_windows() -> tuple[np.ndarray, np.ndarray]:
    """The starting model's training data: the PUBLIC_SUBJECTS' windows."""
    data = windows()
    mask = np.isin(data["subject"], PUBLIC_SUBJECTS)
    return data["x"][mask], data["y"][mask]


PRETRAIN_EPOCHS = 12
PRETRAIN_LR = 0.003


def pretrained_start(model: "nn.Module", seed: int) -> dict[str, np.ndarray]:
    """`model` (freshly built, same on every node) trained on the public subjects: the swarm's start.

    Training is seeded and runs in one thread, so every node computes the same weights; they are
    cached under a key of the architecture and seed, so a swarm's node processes build them once.
    The public subjects' inputs are scaled by their own statistics here; the swarm later scales by
    its members' (the same sensors, so the two stay close).
    """
    import torch

    from ..models import load_numpy_state, state_to_numpy
    from ..preprocess import FeatureStats, Scaler
    from ..training import train_local

    layout = ";".join(f"{k}:{tuple(t.shape)}" for k, t in model.state_dict().items())
    key = (f"{CACHE_KEY}-start-{type(model).__name__}-{hashlib.sha256(layout.encode()).hexdigest()[:12]}"
           f"-s{seed}-e{PRETRAIN_EPOCHS}")

    def build() -> dict[str, np.ndarray]:
        x, y = public_windows()
        scaled = Scaler.from_stats(FeatureStats.of(x)).transform(x)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one reduction order: the same weights on every node
        try:
            train_local(model, scaled, y, epochs=PRETRAIN_EPOCHS, batch_size=32, lr=PRETRAIN_LR, seed=seed)
        finally:
            torch.set_num_threads(threads)
        return state_to_numpy(model)

    weights = cached_arrays(key, build)
    load_numpy_state(model, weights)
    return weights
