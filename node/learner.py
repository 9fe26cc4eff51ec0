"""One hospital's learner: its model, its data (scaled with swarm statistics) and local training.

The learner knows nothing of peers or chains. The round engine hands it the round's model, asks
for a local update (new weights minus the round's weights), and asks it to evaluate weights on
its validation rows (for scoring peers) and its test rows (for reporting).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from torch import nn

from .config import NodeConfig
from .datasets import NodeData, RawShard
from .dp import DpSgd, plan_for
from .logs import node_logger
from .models import build_model, load_numpy_state, state_shapes, state_to_numpy
from .preprocess import FeatureStats, Scaler
from .scenarios import starting_weights
from .training import Metrics, evaluate, scheduled_lr, train_local

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True, eq=False)
class Split:
    x: np.ndarray
    y: np.ndarray

    def __len__(self) -> int:
        return int(self.y.shape[0])


def split_validation(shard: RawShard, fraction: float, seed: int) -> tuple[RawShard, RawShard]:
    """Hold back a seeded `fraction` of training rows as validation rows (fit rows, validation rows);
    at least one row when `fraction` > 0, none at 0 (every row trains)."""
    order = np.random.default_rng(seed).permutation(len(shard))
    n_val = max(1, int(round(len(shard) * fraction))) if fraction > 0 else 0
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
        self.model = self.fresh_model()
        self.shapes = state_shapes(self.model)
        self._lock = threading.Lock()  # training and evaluation share one torch module
        self.scaler: Scaler | None = None
        self.fit = self.val = self.test = Split(np.empty((0, 0), np.float32), np.empty(0, np.int64))
        self.dp = dp_trainer(config, len(self.fit_rows))

    def fresh_model(self) -> nn.Module:
        """The task's starting model: the same on every node (the swarm seed, not the node's own),
        or the scenario's pretrained starting point where it has one (`node.scenarios`)."""
        m = self.config.model
        if m.kind == "cnn1d" and self.data.n_features % m.channels:
            raise ValueError(f"model.channels: {self.data.n_features} features do not split into "
                             f"{m.channels} channels")
        model = build_model(m.kind, self.data.n_features, max(2, self.data.n_classes), hidden=m.hidden,
                            seed=self.config.swarm.seed, in_channels=m.channels)
        start = starting_weights(self.config, model)
        if start is not None:
            load_numpy_state(model, start)
        return model

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

    @property
    def announced_samples(self) -> int:
        """The training-row count this node announces (and merges itself with): two significant
        digits. It is a merge weight; the exact cohort size adds nothing to the model (docs/privacy.md)."""
        return coarse_count(len(self.fit))

    @property
    def epsilon_spent(self) -> float:
        """The privacy this node's training has spent so far (0 without DP)."""
        return 0.0 if self.dp is None else self.dp.spent

    def train_update(self, round_no: int) -> Tensors:
        """Train from the current weights; return the update (trained minus starting weights).

        With DP, raises node.dp.BudgetExhausted rather than spend past the node's budget.
        """
        t = self.config.training
        seed = t.seed * 100_003 + round_no
        with self._lock:
            start = state_to_numpy(self.model)
            lr = scheduled_lr(t.lr, t.lr_schedule, round_no, self.config.swarm.rounds)
            if self.dp is not None:
                self.dp.train(self.model, self.fit.x, self.fit.y, lr=lr, seed=seed, optimizer=t.optimizer,
                              weight_decay=t.weight_decay)
            else:
                train_local(self.model, self.fit.x, self.fit.y, epochs=t.epochs, batch_size=t.batch_size,
                            lr=lr, seed=seed, optimizer=t.optimizer, weight_decay=t.weight_decay, prox_mu=t.prox_mu,
                            steps=t.local_steps)
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
        model = self.fresh_model()
        train_local(model, scaler.transform(self.fit_rows.x), self.fit_rows.y, epochs=epochs,
                    batch_size=t.batch_size, lr=t.lr, seed=t.seed, optimizer=t.optimizer,
                    weight_decay=t.weight_decay)
        return evaluate(model, scaler.transform(self.data.test.x), self.data.test.y)

    def personalised(self, weights: Tensors, epochs: int) -> Metrics:
        """Test metrics of `weights` after fine-tuning only the output layer on this node's rows:
        a personal head on the swarm's shared features (FedHealth's personalisation step)."""
        t = self.config.training
        model = self.fresh_model()
        load_numpy_state(model, weights)
        head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
        for p in model.parameters():
            p.requires_grad_(p is head.weight or p is head.bias)
        train_local(model, self.fit.x, self.fit.y, epochs=epochs, batch_size=t.batch_size, lr=t.lr,
                    seed=t.seed, optimizer=t.optimizer, weight_decay=t.weight_decay)
        return evaluate(model, self.test.x, self.test.y)


def coarse_count(n: int) -> int:
    """`n` rounded to two significant digits (at least 1): 7 -> 7, 114 -> 110, 1234 -> 1200."""
    if n < 100:
        return max(1, n)
    unit = 10 ** (len(str(n)) - 2)
    return max(unit, (n + unit // 2) // unit * unit)


def dp_trainer(config: NodeConfig, n_rows: int) -> DpSgd | None:
    """The node's DP-SGD trainer from its `[dp]` settings; None when DP is off (epsilon 0)."""
    dp, t = config.dp, config.training
    if dp.epsilon <= 0:
        return None
    return DpSgd(plan_for(n_rows=n_rows, batch_size=t.batch_size, epochs=t.epochs, rounds=config.swarm.rounds,
                          epsilon=dp.epsilon, delta=dp.delta, noise_multiplier=dp.noise_multiplier,
                          max_grad_norm=dp.max_grad_norm, accountant=dp.accountant))


def add(weights: Tensors, delta: Tensors) -> Tensors:
    return {k: (weights[k] + delta[k]).astype(np.float32) for k in weights}


