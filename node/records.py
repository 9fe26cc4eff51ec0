"""What a node records about its run: one report per round and how long each phase took.

`RoundReport` is the row written to the run folder's metrics file and the log line shown per
round; `PhaseTimer` adds up wall-clock seconds per phase (train, commit, share, collect, ...).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

__all__ = ["PhaseTimer", "RoundReport"]


@dataclass(frozen=True)
class RoundReport:
    round: int
    val_loss: float
    val_accuracy: float
    test_accuracy: float
    test_auc: float
    heard: int  # peers whose valid update was merged
    expected: int  # registered peers
    bytes_in: int  # blob bytes fetched from peers this round (updates, models, statistics)
    bytes_out: int  # blob bytes served to peers this round
    committed: bool
    model_digest: str
    scores: dict[str, int]
    dropped: dict[str, str]
    phases: dict[str, float]
    chain: str

    def line(self, rounds: int) -> str:
        phases = " ".join(f"{k} {v:.2f}s" for k, v in self.phases.items())
        return (f"round {self.round}/{rounds} | val loss {self.val_loss:.3f} acc {self.val_accuracy:.3f}"
                f" | peers {self.heard}/{self.expected} | {phases} | {self.chain}")


@dataclass
class PhaseTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started
