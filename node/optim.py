"""Local optimisers (Adam; SGD with momentum) in plain tensor arithmetic.

torch 2.13's ``torch.optim`` imports ``torch._dynamo`` on an optimiser's first use even when
nothing is ever compiled: about 1.9 CPU-s and 100+ MB in every node process, paid by a cold start
(scripts/bench/startup.py). These two do the arithmetic of torch's single-tensor CPU path op for
op (weight decay added to the gradient, ``lerp_``/``addcmul_`` moments, Python-float bias
corrections), so they give the same bits as ``torch.optim.Adam`` / ``torch.optim.SGD``
(tests/node/test_optim.py holds them to it). DP-SGD keeps torch's optimisers: Opacus wraps them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable

import torch

__all__ = ["Adam", "SGD", "LocalOptimizer", "make_optimizer"]


class LocalOptimizer(ABC):
    """Parameters with gradients, stepped in place; `zero_grad` drops the gradients."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float) -> None:
        self.params = [p for p in params if p.requires_grad]
        if not lr > 0 or weight_decay < 0:
            raise ValueError(f"invalid optimiser settings: lr={lr}, weight_decay={weight_decay}")
        self.lr = lr
        self.weight_decay = weight_decay

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _decayed(self, p: torch.Tensor) -> torch.Tensor:
        grad = p.grad
        return grad.add(p, alpha=self.weight_decay) if self.weight_decay != 0 else grad

    @abstractmethod
    def step(self) -> None:
        """One step of every parameter that has a gradient."""


class Adam(LocalOptimizer):
    """Adam (Kingma & Ba) with L2 weight decay added to the gradient, as ``torch.optim.Adam``."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self) -> None:
        self.steps += 1
        # torch keeps the step count in a float32 tensor and reads it back as a Python float
        step = float(self.steps)
        bias_correction1 = 1 - self.beta1 ** step
        step_size = self.lr / bias_correction1
        bias_correction2_sqrt = (1 - self.beta2 ** step) ** 0.5
        for p, exp_avg, exp_avg_sq in zip(self.params, self.exp_avg, self.exp_avg_sq):
            if p.grad is None:
                continue
            grad = self._decayed(p)
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)


class SGD(LocalOptimizer):
    """SGD with optional heavy-ball momentum (no dampening), as ``torch.optim.SGD``."""

    def __init__(self, params: Iterable[torch.Tensor], lr: float, weight_decay: float = 0.0,
                 momentum: float = 0.0) -> None:
        super().__init__(params, lr, weight_decay)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must lie in [0, 1), got {momentum}")
        self.momentum = momentum
        self.buffers: list[torch.Tensor | None] = [None] * len(self.params)

    @torch.no_grad()
    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            grad = self._decayed(p)
            if self.momentum != 0:
                buf = self.buffers[i]
                if buf is None:
                    buf = self.buffers[i] = grad.detach().clone()
                else:
                    buf.mul_(self.momentum).add_(grad)
                grad = buf
            p.add_(grad, alpha=-self.lr)


def make_optimizer(name: str, params: Iterable[torch.Tensor], *, lr: float, weight_decay: float = 0.0,
                   momentum: float = 0.0) -> LocalOptimizer:
    """The local optimiser `name` ("adam" or "sgd") over `params`."""
    if name == "adam":
        return Adam(params, lr, weight_decay)
    if name == "sgd":
        return SGD(params, lr, weight_decay, momentum)
    raise ValueError(f"unknown optimizer {name!r}; expected 'adam' or 'sgd'")
