"""Local training and evaluation in torch, seeded and deterministic on CPU.

`train_local` shuffles minibatches with its own `torch.Generator(seed)` (never the global RNG), so
the same model, data and seed give bit-identical weights. `evaluate` returns cross-entropy loss,
accuracy and (binary tasks) ROC AUC computed with the rank (Mann-Whitney) formula in numpy.
Callers run these in a worker thread; nothing here touches the network.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .optim import make_optimizer

logger = logging.getLogger(__name__)

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")
COSINE_FLOOR = 0.1  # the cosine schedule ends at this share of the base learning rate, not at 0


def scheduled_lr(lr: float, schedule: str, round_no: int, rounds: int) -> float:
    """Local learning rate of round `round_no` (1-based) of `rounds`: the same on every node.

    "cosine" decays from lr in round 1 to COSINE_FLOOR x lr in the last round, so late rounds
    refine the swarm's model instead of moving it around (accuracy does not decline with rounds).
    """
    if schedule == "constant" or rounds <= 1:
        return lr
    if schedule != "cosine":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected one of {LR_SCHEDULES}")
    progress = min(max(round_no - 1, 0), rounds - 1) / (rounds - 1)
    return lr * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass(frozen=True)
class TrainStats:
    epochs: int
    steps: int
    samples: int
    first_loss: float   # mean minibatch loss of the first epoch
    final_loss: float   # mean minibatch loss of the last epoch
    seconds: float


@dataclass(frozen=True)
class Metrics:
    loss: float
    accuracy: float
    auc: float          # NaN when not binary or only one class present
    n: int


def _tensor_x(x: np.ndarray) -> torch.Tensor:
    if np.isnan(x).any():
        raise ValueError("inputs contain NaN; scale and impute them first (node.preprocess.Scaler)")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def passes_for(rows: int, batch_size: int, epochs: int, steps: int) -> int:
    """Passes over `rows` that `train_local` starts: `epochs`, or with `steps` > 0 as many as
    `steps` minibatches take (the last pass cut short)."""
    return epochs if steps == 0 else math.ceil(steps / math.ceil(rows / batch_size))


def train_local(model: nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                seed: int, weight_decay: float = 0.0, optimizer: str = "adam", momentum: float = 0.0,
                prox_mu: float = 0.0, steps: int = 0) -> TrainStats:
    """Train `model` in place on (x, y) for `epochs` passes of shuffled minibatches, or, with
    `steps` > 0, for exactly `steps` minibatches (reshuffled at every pass), however many rows.

    Steps exist for swarms of unequal sites: with epochs, a site of n rows takes ~n/batch steps, so
    the sample-weighted mean of the updates weighs each site's gradient by n x steps ~ n^2 and
    converges to another optimum than the pooled rows' (Wang et al., "Tackling the Objective
    Inconsistency Problem in Heterogeneous Federated Optimization", NeurIPS 2020); with the same
    steps everywhere the weights are n, as in central training.

    `prox_mu` > 0 adds FedProx's proximal term mu/2 ||w - w_start||^2 to the loss (Li et al.,
    MLSys 2020): local training on a skewed site cannot wander far from the swarm's model."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
    if epochs < 1 or batch_size < 1 or not lr > 0 or weight_decay < 0 or prox_mu < 0 or steps < 0:
        raise ValueError(f"invalid training settings: epochs={epochs}, batch_size={batch_size}, lr={lr}, "
                         f"weight_decay={weight_decay}, prox_mu={prox_mu}, steps={steps}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need matching, non-empty x and y, got {len(x)} and {len(y)} rows")
    started = time.perf_counter()
    xt = _tensor_x(x)
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    opt = make_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=weight_decay, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    anchor = [p.detach().clone() for p in model.parameters()] if prox_mu > 0 else []
    gen = torch.Generator().manual_seed(seed)
    model.train()
    passes = passes_for(len(xt), batch_size, epochs, steps)
    limit = steps or passes * math.ceil(len(xt) / batch_size)
    taken = 0
    epoch_losses: list[float] = []
    for _ in range(passes):
        order = torch.randperm(len(xt), generator=gen)
        total = 0.0
        batches = 0
        for start in range(0, len(order), batch_size):
            if taken == limit:
                break
            idx = order[start:start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[idx]), yt[idx])
            if anchor:
                loss = loss + 0.5 * prox_mu * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
            loss.backward()
            opt.step()
            total += float(loss.detach())
            batches += 1
            taken += 1
        epoch_losses.append(total / batches)
    model.eval()
    return TrainStats(passes, taken, len(xt), epoch_losses[0], epoch_losses[-1], time.perf_counter() - started)


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC of binary labels by the rank formula (ties get average ranks); NaN with one class."""
    y_true = np.asarray(y_true).astype(bool)
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(len(score), dtype=np.float64)
    # average ranks over runs of equal scores
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(score)]))
    for s, e in zip(starts, ends):
        ranks[order[s:e]] = (s + e + 1) / 2.0  # mean of 1-based ranks s+1..e
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> Metrics:
    """Cross-entropy loss, accuracy and binary ROC AUC of `model` on (x, y)."""
    if len(x) == 0:
        return Metrics(math.nan, math.nan, math.nan, 0)
    model.eval()
    logits = model(_tensor_x(x))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    loss = float(nn.functional.cross_entropy(logits, yt))
    accuracy = float((logits.argmax(dim=1) == yt).double().mean())
    auc = math.nan
    if logits.shape[1] == 2:
        margin = (logits[:, 1] - logits[:, 0]).double().numpy()
        auc = roc_auc(np.asarray(y), margin)
    return Metrics(loss, accuracy, auc, len(y))
