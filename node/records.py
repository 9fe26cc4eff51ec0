"""What a node records about its run: one report per round, how long each phase took, a summary.

`RoundReport` is the row written to the run folder's metrics file and the log line shown per
round; `PhaseTimer` adds up wall-clock seconds per phase (train, commit, share, collect, ...);
`Recorder` measures the node's model and traffic and writes both, and the final summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

import numpy as np

from p2p.codec import digest, encode_update
from p2p.host import SwarmHost

from .bundle import BUNDLE_MAX_ABS
from .chainduties import ChainDuties
from .exchange import Exchange
from .learner import Learner
from .rundir import RunFolder

__all__ = ["PhaseTimer", "Recorder", "RoundReport", "weights_digest"]

Tensors = dict[str, np.ndarray]


def weights_digest(weights: Mapping[str, np.ndarray]) -> str:
    """The digest nodes compare to tell whether they hold the same merged weights."""
    return digest(encode_update(weights, "f32", max_abs=BUNDLE_MAX_ABS))


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
    epsilon: float = 0.0  # this node's cumulative DP epsilon after the round (0 without DP)
    merged: tuple[str, ...] = ()  # the peers whose updates were merged, by name
    val_rows: int = 0  # the validation rows `val_loss` is the mean over
    # this round's gossip messages checked (first copies), own publishes, and blob fetches started
    gossip_in: int = 0
    gossip_out: int = 0
    fetches: int = 0
    # at the end of the round: peers connected, with a gossip stream, and known subscribed to the
    # swarm's topic (own publishes reach only the last; each is N - 1 in a healthy swarm)
    connected: int = 0
    pubsub_peers: int = 0
    topic_peers: int = 0

    def line(self, rounds: int) -> str:
        phases = " ".join(f"{k} {v:.2f}s" for k, v in self.phases.items())
        val = f"val loss {self.val_loss:.3f} acc {self.val_accuracy:.3f}" if self.val_rows else "val n/a (no validation rows)"
        return (f"round {self.round}/{rounds} | {val}"
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


class Recorder:
    """Writes one node's metrics line per round and its summary into its run folder."""

    def __init__(self, run: RunFolder, learner: Learner, exchange: Exchange, host: SwarmHost, duties: ChainDuties,
                 name: Callable[[str], str]) -> None:
        self._run = run
        self._learner = learner
        self._exchange = exchange
        self._host = host
        self._duties = duties
        self._name = name
        self._marks = self._counters()  # the counters when the last round was reported

    def round(self, r: int, weights: Tensors, committed: bool, heard: Collection[str], expected: int,
              scores: Mapping[str, int], timer: PhaseTimer) -> RoundReport:
        val = self._learner.evaluate(weights, self._learner.val)
        test = self._learner.evaluate(weights, self._learner.test)
        status = self._duties.status()
        now = self._counters()
        bytes_in, bytes_out, gossip_in, gossip_out, fetches = (a - b for a, b in zip(now, self._marks))
        report = RoundReport(
            round=r, val_loss=val.loss, val_accuracy=val.accuracy, test_accuracy=test.accuracy,
            test_auc=test.auc, heard=len(heard), expected=expected, committed=committed,
            bytes_in=bytes_in, bytes_out=bytes_out, gossip_in=gossip_in, gossip_out=gossip_out, fetches=fetches,
            connected=len(self._host.peers()), pubsub_peers=len(self._host.pubsub_peers()),
            topic_peers=len(self._host.topic_peers()),
            model_digest=weights_digest(weights),
            scores={self._name(p): s for p, s in scores.items()},
            dropped={self._name(p): str(n) for p, n in self._exchange.strikes.items()},
            phases={k: round(v, 4) for k, v in {**timer.seconds, "chain": status.busy_seconds}.items()},
            chain=status.describe(), epsilon=round(self._learner.epsilon_spent, 4),
            merged=tuple(sorted(map(self._name, heard))), val_rows=val.n)
        self._run.append_metrics(asdict(report))
        self._marks = now
        return report

    def _counters(self) -> tuple[int, int, int, int, int]:
        host = self._host
        return (self._exchange.bytes_in, host.bytes_served, host.gossip_checked, host.gossip_published,
                host.fetches)

    def summary(self, weights: Tensors, rounds: int, local_epochs: int, **identity: Any) -> dict[str, Any]:
        """The node's final figures (swarm model and a local-only model on its test rows)."""
        final = self._learner.evaluate(weights, self._learner.test)
        local = self._learner.local_only(local_epochs)
        summary = {
            **identity, "rounds": rounds, "model_digest": weights_digest(weights),
            "test_accuracy": final.accuracy, "test_auc": final.auc, "test_rows": final.n,
            "local_only_accuracy": local.accuracy, "local_only_auc": local.auc,
            "epsilon": self._learner.epsilon_spent, "dp": None if (dp := self._learner.dp) is None else asdict(dp.plan),
            "strikes": {self._name(p): n for p, n in self._exchange.strikes.items()},
            "chain": asdict(self._duties.status()),
        }
        epochs = self._learner.config.training.personalise_epochs
        if epochs:
            personal = self._learner.personalised(weights, epochs)
            summary.update(personalised_accuracy=personal.accuracy, personalised_auc=personal.auc)
        self._run.write_summary(summary)
        return summary
