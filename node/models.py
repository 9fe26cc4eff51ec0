"""Models every node builds identically: logistic regression, an MLP, and a small 1D CNN.

`build_model(kind, n_features, ...)` seeds its own initialisation without touching torch's global
random state, so the same seed gives the same initial weights on every node. Models output logits
of shape (batch, n_classes) and hold only float parameters (no buffers), so their state travels as
`state_to_numpy` float32 arrays in `state_dict` order and comes back with `load_numpy_state`.
"""

from __future__ import annotations

import logging
from typing import Mapping

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

MODEL_KINDS: tuple[str, ...] = ("logreg", "mlp", "cnn1d")


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: one linear layer to class logits."""

    def __init__(self, n_features: int, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Module):
    """Two hidden ReLU layers for tabular data."""

    def __init__(self, n_features: int, n_classes: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n_features, hidden), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN1D(nn.Module):
    """Small 1D CNN for signals (ECG, IMU): input (batch, channels, length), or (batch, length) for one
    channel. Two conv blocks, global average pooling, a linear head; works for any length >= 4."""

    def __init__(self, in_channels: int, n_classes: int, hidden: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, hidden, kernel_size=7, padding=3), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(hidden, hidden, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool1d(2),
        )
        self.head = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.reshape(x.shape[0], self.in_channels, -1)
        return self.head(self.features(x).mean(dim=-1))


def build_model(kind: str, n_features: int, n_classes: int = 2, hidden: int = 32, seed: int = 0,
                in_channels: int = 1) -> nn.Module:
    """A freshly initialised model; same arguments -> bit-identical weights.

    For "cnn1d", `n_features` is the signal length per channel (it only has to be >= 4) and
    `in_channels` the number of channels; flat (batch, in_channels * length) input is reshaped.
    """
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    if n_features < 1 or n_classes < 2 or hidden < 1 or in_channels < 1:
        raise ValueError(f"invalid model size: n_features={n_features}, n_classes={n_classes}, "
                         f"hidden={hidden}, in_channels={in_channels}")
    if kind == "cnn1d" and n_features < 4:
        raise ValueError(f"cnn1d needs a signal length >= 4, got {n_features}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "logreg":
            model: nn.Module = LogisticRegression(n_features, n_classes)
        elif kind == "mlp":
            model = MLP(n_features, n_classes, hidden)
        else:
            model = CNN1D(in_channels, n_classes, hidden)
    return model


def state_to_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state as float32 numpy copies, in `state_dict` order."""
    return {name: t.detach().cpu().numpy().astype(np.float32, copy=True) for name, t in model.state_dict().items()}


def load_numpy_state(model: nn.Module, tensors: Mapping[str, np.ndarray]) -> None:
    """Copy numpy tensors into the model; names and shapes must match exactly (ValueError otherwise)."""
    state = model.state_dict()
    if list(tensors) != list(state) and set(tensors) != set(state):
        raise ValueError(f"state names differ: expected {list(state)}, got {list(tensors)}")
    for name, target in state.items():
        value = np.asarray(tensors[name])
        if tuple(value.shape) != tuple(target.shape):
            raise ValueError(f"{name}: expected shape {tuple(target.shape)}, got {tuple(value.shape)}")
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name}: holds NaN or Inf")
    with torch.no_grad():
        for name, target in state.items():
            target.copy_(torch.from_numpy(np.ascontiguousarray(tensors[name], dtype=np.float32)))


def state_shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the model's state (the codec's `expected` for updates of this model)."""
    return {name: tuple(t.shape) for name, t in model.state_dict().items()}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
