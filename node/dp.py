"""Record-level differential privacy at each node: DP-SGD and its privacy accountant.

DP-SGD [Abadi et al., 2016, arXiv:1607.00133]: every step draws a Poisson sample of the rows
(each row independently with probability q = batch_size / n), clips each row's gradient to
L2 norm ``max_grad_norm`` and adds Gaussian noise of standard deviation
``noise_multiplier * max_grad_norm`` to their sum. Per-example gradients and the noisy step
come from Opacus (``GradSampleModule`` + ``DPOptimizer``); the sampling is done here with a
seeded ``torch.Generator`` so that a node's training is reproducible.

The privacy spent is a function of (noise multiplier, q, number of steps) only, and every
round runs the same fixed number of steps (``epochs * ceil(1/q)``), so the epsilon after k
rounds is known before round k is trained: :meth:`DpSgd.can_train` tells the node to stop
*before* a round would take it past its budget. Accountants: Rényi DP [Mironov, 2017,
arXiv:1702.07476; Mironov et al., 2019, arXiv:1908.10530] or PRV [Gopi et al., 2021,
arXiv:2106.02848], both Opacus's.

The noise generator's seed must stay secret to the node: whoever knows it can subtract the
noise. The training seed is a node's own setting, never shared; deployments should set it
to a random value per hospital.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

# Opacus is imported inside the functions that use it (after `warmup.finish()`, see node.warmup):
# importing it pulls in torch.distributed and scipy.stats (1 s and more of a node's start-up),
# which a node without DP never needs.

from incentive.ledger import PrivacyTerms, epsilon_milli

from . import warmup
from .training import OPTIMIZERS, TrainStats, _tensor_x

__all__ = ["ACCOUNTANTS", "BudgetExhausted", "DpPlan", "DpSgd", "calibrate_noise", "epsilon_spent", "plan_for", "privacy_conflict"]

ACCOUNTANTS: tuple[str, ...] = ("rdp", "prv")
MAX_ROUNDS = 100_000  # bounds `DpSgd.resume`'s search


class BudgetExhausted(RuntimeError):
    """Training another round would spend more than the node's privacy budget."""


@dataclass(frozen=True)
class DpPlan:
    """The DP parameters of one node for a whole task (what the task fixes on chain)."""

    epsilon_budget: float
    delta: float
    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps_per_round: int
    accountant: str = "rdp"


#: Rényi orders the node's RDP accounting uses: the integers 2..64. Opacus's default orders add
#: fractional ones, each summed as a series (20x slower: seconds per epsilon on a busy machine).
#: Fewer orders can only overstate epsilon (by 1-3% here), so what a node spends, reports on
#: chain and calibrates its noise with is a valid, slightly conservative bound.
RDP_ORDERS: tuple[int, ...] = tuple(range(2, 65))


@functools.lru_cache(maxsize=4096)
def epsilon_spent(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                  accountant: str = "rdp", orders: tuple[float, ...] | None = RDP_ORDERS) -> float:
    """Epsilon of `steps` DP-SGD steps at (noise multiplier, sampling rate), for `delta`
    (RDP over `orders`; None: Opacus's default orders)."""
    if steps <= 0:
        return 0.0
    warmup.finish()
    from opacus.accountants import create_accountant  # deferred: see the note above the imports

    acc = create_accountant(accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    extra = {"alphas": list(orders)} if accountant == "rdp" and orders is not None else {}
    return float(acc.get_epsilon(delta=delta, **extra))


def plan_for(*, n_rows: int, batch_size: int, epochs: int, rounds: int, epsilon: float, delta: float = 0.0,
             noise_multiplier: float = 0.0, max_grad_norm: float = 1.0, accountant: str = "rdp") -> DpPlan:
    """The node's plan: delta 0 means 1/n; noise multiplier 0 means the smallest one whose
    epsilon over all `rounds` stays within `epsilon`."""
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"unknown accountant {accountant!r}; expected one of {ACCOUNTANTS}")
    if n_rows < 1 or batch_size < 1 or epochs < 1 or rounds < 1 or not epsilon > 0 or not max_grad_norm > 0:
        raise ValueError(f"invalid DP settings: n_rows={n_rows}, batch_size={batch_size}, epochs={epochs}, "
                         f"rounds={rounds}, epsilon={epsilon}, max_grad_norm={max_grad_norm}")
    q = min(1.0, batch_size / n_rows)
    steps = epochs * math.ceil(1 / q)
    delta = delta or 1.0 / n_rows
    if not 0 < delta < 1:
        raise ValueError(f"delta must lie in (0, 1), got {delta}")
    if not noise_multiplier:
        noise_multiplier = calibrate_noise(epsilon, delta, q, steps * rounds, accountant)
    return DpPlan(epsilon, delta, float(noise_multiplier), max_grad_norm, q, steps, accountant)


@functools.lru_cache(maxsize=256)
def calibrate_noise(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp") -> float:
    """The smallest noise multiplier (to 0.01 in epsilon) whose epsilon after `steps` fits `epsilon`."""
    warmup.finish()
    from opacus.accountants.utils import get_noise_multiplier  # deferred: see the note above the imports

    extra = {"alphas": list(RDP_ORDERS)} if accountant == "rdp" else {}
    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant=accountant, epsilon_tolerance=0.01, **extra))


class DpSgd:
    """One node's DP-SGD trainer and budget, across the rounds of a task."""

    def __init__(self, plan: DpPlan) -> None:
        self.plan = plan
        self.rounds_trained = 0

    def epsilon_after(self, rounds: int) -> float:
        p = self.plan
        return epsilon_spent(p.noise_multiplier, p.sample_rate, rounds * p.steps_per_round, p.delta, p.accountant)

    @property
    def spent(self) -> float:
        """Epsilon spent so far (the node's cumulative epsilon)."""
        return self.epsilon_after(self.rounds_trained)

    def resume(self, reported: float) -> int:
        """After a restart: count as trained the rounds behind the cumulative epsilon this node last
        committed on chain (the privacy spent is that of the updates it released, and every
        released update was committed first). Returns the rounds counted."""
        reported_milli = epsilon_milli(reported)
        k = 0
        while k < MAX_ROUNDS and reported_milli and epsilon_milli(self.epsilon_after(k + 1)) <= reported_milli:
            k += 1
        self.rounds_trained = max(self.rounds_trained, k)
        return self.rounds_trained

    def can_train(self) -> bool:
        """Would one more round stay within the budget?"""
        return self.epsilon_after(self.rounds_trained + 1) <= self.plan.epsilon_budget

    def train(self, model: nn.Module, x: np.ndarray, y: np.ndarray, *, lr: float, seed: int,
              optimizer: str = "adam", weight_decay: float = 0.0) -> TrainStats:
        """One round of DP-SGD on `model` in place; raises BudgetExhausted instead of overspending."""
        if not self.can_train():
            raise BudgetExhausted(f"one more round would spend epsilon {self.epsilon_after(self.rounds_trained + 1):.3f}"
                                  f" of a budget of {self.plan.epsilon_budget:g}")
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
        started = time.perf_counter()
        p = self.plan
        xt = _tensor_x(x)
        yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
        gen = torch.Generator().manual_seed(seed)
        noise = torch.Generator().manual_seed(seed ^ 0x5EED_D1FF)
        warmup.finish()
        from opacus.grad_sample import GradSampleModule  # deferred: see the note above the imports
        from opacus.optimizers import DPOptimizer

        gsm = GradSampleModule(model)
        base = (torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay) if optimizer == "adam"
                else torch.optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay))
        # Mean loss over the drawn rows: Opacus rescales it back to per-row gradients, clips
        # them, and divides the noisy sum by the *expected* batch size q*n, as DP-SGD's analysis
        # assumes (dividing by the drawn batch size would leak it).
        opt = DPOptimizer(base, noise_multiplier=p.noise_multiplier, max_grad_norm=p.max_grad_norm,
                          expected_batch_size=max(1, round(p.sample_rate * len(xt))), loss_reduction="mean",
                          generator=noise)
        loss_fn = nn.CrossEntropyLoss()
        losses: list[float] = []
        gsm.train()
        try:
            for _ in range(p.steps_per_round):
                idx = torch.nonzero(torch.rand(len(xt), generator=gen) < p.sample_rate).flatten()
                opt.zero_grad(set_to_none=True)
                if len(idx) == 0:  # a noise-only step, as the accountant counts it
                    for param in model.parameters():
                        param.grad_sample = torch.zeros((0, *param.shape))
                else:
                    loss = loss_fn(gsm(xt[idx]), yt[idx])
                    loss.backward()
                    losses.append(float(loss.detach()))
                opt.step()
        finally:
            gsm.remove_hooks()
            for param in model.parameters():
                for attr in ("grad_sample", "summed_grad"):
                    if hasattr(param, attr):
                        delattr(param, attr)
        model.eval()
        self.rounds_trained += 1
        first = losses[0] if losses else math.nan
        return TrainStats(p.steps_per_round // math.ceil(1 / p.sample_rate), p.steps_per_round, len(xt), first, losses[-1] if losses else math.nan,
                          time.perf_counter() - started)


def privacy_conflict(terms: PrivacyTerms | None, dp: DpSgd | None) -> str | None:
    """Why this node's DP settings break the task's on-chain privacy terms (None: they keep them).

    A task with terms needs DP training within its budget, at most its delta, at least its
    noise and at most its clipping norm (where the task fixes them), with its accountant.
    """
    if terms is None:
        return None
    if dp is None:
        return f"the task fixes a privacy budget of epsilon {terms.epsilon:g}; set [dp] epsilon (DP is off here)"
    p = dp.plan
    checks = [
        (p.epsilon_budget <= terms.epsilon, f"dp.epsilon {p.epsilon_budget:g} exceeds the task's budget {terms.epsilon:g}"),
        (not terms.delta or p.delta <= terms.delta, f"delta {p.delta:.3g} exceeds the task's {terms.delta:.3g}"),
        (not terms.noise_multiplier or p.noise_multiplier >= terms.noise_multiplier,
         f"noise multiplier {p.noise_multiplier:.3f} is below the task's {terms.noise_multiplier:g}"),
        (not terms.max_grad_norm or p.max_grad_norm <= terms.max_grad_norm,
         f"clipping norm {p.max_grad_norm:g} exceeds the task's {terms.max_grad_norm:g}"),
        (p.accountant == terms.accountant, f"accountant {p.accountant} is not the task's {terms.accountant}"),
    ]
    return next((why for ok, why in checks if not ok), None)
