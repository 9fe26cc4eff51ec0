"""One hospital's learner: its model, its data (scaled with swarm statistics) and local training.

The learner knows nothing of peers or chains. The round engine hands it the round's model, asks
for a local update (new weights minus the round's weights), and asks it to evaluate weights on
its validation rows (for scoring peers) and its test rows (for reporting).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from .config import NodeConfig
from .datasets import NodeData, RawShard
from .logs import node_logger
from .models import build_model, load_numpy_state, state_shapes, state_to_numpy
from .preprocess import FeatureStats, Scaler
from .training import Metrics, evaluate, scheduled_lr, train_local

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


def split_validation(shard: RawShard, fraction: float, seed: int) -> tuple[RawShard, RawShard]:
    """Hold back a seeded `fraction` of training rows for scoring peers (fit rows, validation rows)."""
    order = np.random.default_rng(seed).permutation(len(shard))
    n_val = max(1, int(round(len(shard) * fraction)))
    return shard.take(np.sort(order[n_val:])), shard.take(np.sort(order[:n_val]))


class Learner:
    def __init__(self, config: NodeConfig, data: NodeData) -> None:
        self.config = config
        self.data = data
        self.fit_rows, self.val_rows = split_validation(
            data.train, config.data.validation_fraction, config.data.seed)
        node_logger(__name__, config.name).info(
            "data: %d training rows -> %d train / %d validation (validation_fraction %.2f); %d test rows; "
            "classes in train: %s", len(data.train), len(self.fit_rows), len(self.val_rows),
            config.data.validation_fraction, len(data.test), sorted(set(data.train.y.tolist())))
        # Every node starts from the same weights: the swarm seed, not the node's own.
        self.model = build_model(config.model.kind, data.n_features, max(2, data.n_classes),
                                 hidden=config.model.hidden, seed=config.swarm.seed)
        self.shapes = state_shapes(self.model)
        self._lock = threading.Lock()  # training and evaluation share one torch module
        self.scaler: Scaler | None = None
        self.fit = self.val = self.test = Split(np.empty((0, 0), np.float32), np.empty(0, np.int64))

    def local_stats(self) -> FeatureStats:
        """Sums and counts of this node's fitting rows: what it contributes to swarm scaling."""
        return FeatureStats.of(self.fit_rows.x)

    def set_scaling(self, stats: FeatureStats) -> None:
        self.scaler = Scaler.from_stats(stats)
        self.fit = Split(self.scaler.transform(self.fit_rows.x), self.fit_rows.y)
        self.val = Split(self.scaler.transform(self.val_rows.x), self.val_rows.y)
        self.test = Split(self.scaler.transform(self.data.test.x), self.data.test.y)

    def weights(self) -> Tensors:
        with self._lock:
            return state_to_numpy(self.model)

    def set_weights(self, weights: Tensors) -> None:
        with self._lock:
            load_numpy_state(self.model, weights)

    def train_update(self, round_no: int) -> Tensors:
        """Train from the current weights; return the update (trained minus starting weights)."""
        t = self.config.training
        with self._lock:
            start = state_to_numpy(self.model)
            train_local(self.model, self.fit.x, self.fit.y, epochs=t.epochs, batch_size=t.batch_size,
                        lr=scheduled_lr(t.lr, t.lr_schedule, round_no, self.config.swarm.rounds),
                        seed=t.seed * 100_003 + round_no, optimizer=t.optimizer,
                        weight_decay=t.weight_decay, prox_mu=t.prox_mu)
            trained = state_to_numpy(self.model)
            load_numpy_state(self.model, start)
        return {k: trained[k] - start[k] for k in start}

    def evaluate(self, weights: Tensors, split: Split) -> Metrics:
        with self._lock:
            saved = state_to_numpy(self.model)
            load_numpy_state(self.model, weights)
            try:
                return evaluate(self.model, split.x, split.y)
            finally:
                load_numpy_state(self.model, saved)

    def local_only(self, epochs: int) -> Metrics:
        """Test metrics of the same model trained on this node's rows alone, scaled by its own stats."""
        t = self.config.training
        scaler = Scaler.from_stats(FeatureStats.of(self.fit_rows.x))
        model = build_model(self.config.model.kind, self.data.n_features, max(2, self.data.n_classes),
                            hidden=self.config.model.hidden, seed=self.config.swarm.seed)
        train_local(model, scaler.transform(self.fit_rows.x), self.fit_rows.y, epochs=epochs,
                    batch_size=t.batch_size, lr=t.lr, seed=t.seed, optimizer=t.optimizer,
                    weight_decay=t.weight_decay)
        return evaluate(model, scaler.transform(self.data.test.x), self.data.test.y)


def add(weights: Tensors, delta: Tensors) -> Tensors:
    return {k: (weights[k] + delta[k]).astype(np.float32) for k in weights}


