"""Swarm optimisers (FedOpt): how a node turns the round's merged update into its next model.

Every node applies the same optimiser to the same merged update, so honest nodes that merged the
same updates hold bit-identical models (float64 arithmetic, float32 weights and state, no
randomness: the state a node adopts from a bundle is exactly the state the others hold). The
merged update is treated as a pseudo-gradient step, as in Reddi et al., "Adaptive Federated
Optimization" (ICLR 2021): "none" adds it as it is (FedAvg); "momentum" keeps a velocity of past
merged updates (FedAvgM, Hsu et al. 2019); "adam" and "yogi" scale each coordinate by a running
estimate of its second moment (FedAdam, FedYogi).

An optimiser's state (velocity, moments, step) is part of the model a node checkpoints and offers
to late joiners (`state()` / `load()`, see node/bundle.py): a node that adopts the swarm's model
adopts its optimiser state too, and stays in step with the others.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Mapping

import numpy as np

Tensors = dict[str, np.ndarray]


class SwarmOptimizer(ABC):
    """Stateful: `step(weights, merged)` returns the next weights and advances the state."""

    name: str = ""
    default_lr: float = 1.0

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], lr: float = 0.0) -> None:
        self.shapes = {k: tuple(v) for k, v in shapes.items()}
        self.lr = lr if lr > 0 else self.default_lr
        if not math.isfinite(self.lr):
            raise ValueError(f"swarm optimiser learning rate must be finite, got {lr}")
        self._state: Tensors = {k: np.zeros(s, dtype=np.float32) for k, s in self.state_shapes().items()}

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Names and shapes of the state tensors (empty for a stateless optimiser)."""
        return {f"{slot}/{k}": s for slot in self.slots for k, s in self.shapes.items()}

    slots: tuple[str, ...] = ()

    def state(self) -> Tensors:
        return {k: v.copy() for k, v in self._state.items()}

    def _put(self, key: str, value: np.ndarray) -> np.ndarray:
        """Store a state tensor in float32 (as it travels) and return exactly what was stored."""
        self._state[key] = value.astype(np.float32)
        return self._state[key].astype(np.float64)

    def _get(self, key: str) -> np.ndarray:
        return self._state[key].astype(np.float64)

    def load(self, state: Mapping[str, np.ndarray]) -> None:
        """Adopt a state (from a checkpoint or the swarm's model); names and shapes must match."""
        if set(state) != set(self._state):
            raise ValueError(f"optimiser state names differ: expected {sorted(self._state)[:4]}..., "
                             f"got {sorted(state)[:4]}...")
        for k, v in state.items():
            if tuple(np.shape(v)) != self._state[k].shape or not np.all(np.isfinite(v)):
                raise ValueError(f"optimiser state {k}: wrong shape or non-finite values")
        self._state = {k: np.asarray(v, dtype=np.float32).copy() for k, v in state.items()}

    def step(self, weights: Mapping[str, np.ndarray], merged: Mapping[str, np.ndarray]) -> Tensors:
        out = {}
        for k, w in weights.items():
            move = self._move(k, np.asarray(merged[k], dtype=np.float64))
            out[k] = (np.asarray(w, dtype=np.float64) + move).astype(np.float32)
        return out

    @abstractmethod
    def _move(self, name: str, delta: np.ndarray) -> np.ndarray:
        """The change applied to tensor `name` for the merged update `delta` (float64)."""


class Plain(SwarmOptimizer):
    """FedAvg: the next model is the round's model plus lr x the merged update."""

    name = "none"

    def step(self, weights: Mapping[str, np.ndarray], merged: Mapping[str, np.ndarray]) -> Tensors:
        # float32 arithmetic, as nodes have always added the merged update (bit-identical models)
        lr = np.float32(self.lr)
        return {k: (w + lr * merged[k]).astype(np.float32) for k, w in weights.items()}

    def _move(self, name: str, delta: np.ndarray) -> np.ndarray:
        return self.lr * delta


class Momentum(SwarmOptimizer):
    """FedAvgM: v <- beta v + delta; the model moves by lr x v."""

    name, slots = "momentum", ("v",)
    beta = 0.9

    def _move(self, name: str, delta: np.ndarray) -> np.ndarray:
        v = self._put(f"v/{name}", self.beta * self._get(f"v/{name}") + delta)
        return self.lr * v


class Adam(SwarmOptimizer):
    """FedAdam: first and second moments of merged updates; move lr x m / (sqrt(v) + tau)."""

    name, slots = "adam", ("m", "v")
    default_lr = 0.03
    beta1, beta2, tau = 0.9, 0.99, 1e-3

    def _second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return self.beta2 * v + (1 - self.beta2) * d2

    def _move(self, name: str, delta: np.ndarray) -> np.ndarray:
        m = self._put(f"m/{name}", self.beta1 * self._get(f"m/{name}") + (1 - self.beta1) * delta)
        v = self._put(f"v/{name}", self._second(self._get(f"v/{name}"), delta * delta))
        return self.lr * m / (np.sqrt(v) + self.tau)


class Yogi(Adam):
    """FedYogi: like FedAdam, but the second moment grows or shrinks additively (sign rule),
    so one large update does not damp later steps for long."""

    name = "yogi"

    def _second(self, v: np.ndarray, d2: np.ndarray) -> np.ndarray:
        return v - (1 - self.beta2) * d2 * np.sign(v - d2)


SWARM_OPTIMIZERS: dict[str, type[SwarmOptimizer]] = {cls.name: cls for cls in (Plain, Momentum, Adam, Yogi)}


def optimizer_by_name(name: str, shapes: Mapping[str, tuple[int, ...]], lr: float = 0.0) -> SwarmOptimizer:
    try:
        cls = SWARM_OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown swarm optimiser {name!r}; expected one of {tuple(SWARM_OPTIMIZERS)}") from None
    return cls(shapes, lr)


__all__ = ["SWARM_OPTIMIZERS", "SwarmOptimizer", "optimizer_by_name"]
