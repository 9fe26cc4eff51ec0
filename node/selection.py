"""The swarm's final model: the last round's, or the one of lowest pooled validation loss.

Accuracy on held-out rows can fall again as rounds go on (heart hospitals, logreg: the pooled test
curve peaked at round 5 and was lower at 50). With `swarm.final_model = "best_val"` every node
keeps, besides the model it trains on, the swarm model of lowest pooled validation loss seen so
far, and that is the model the run ends with: the node's summary, `medswarm evaluate` and
`medswarm export` use it (early stopping by checkpoint choice; the rounds themselves still run,
their number is fixed on chain). Opt-in: judged on held-out validation rows over 10 validation
splits, the last model was the better choice in 26 of 26 heart settings (README "The final model").

How the swarm agrees on it. Right after its round-r merge every node evaluates the merged model on
its own validation rows and announces a tiny report (kind "val": mean loss, row count), without
waiting for anyone's. At round r+1's merge, when those reports have long arrived, each node pools
the reports of the members whose round-r updates it merged (its own included), each as it was
sent, into one validation loss: a row-weighted mean with each member's row count clipped at 3x
the median count (as `FeatureStats.robust_combine` clips counts), so a member claiming millions of
rows cannot outweigh the others. If that loss is the lowest so far, the round-r model becomes the
choice. The last round's reports are pooled right after its own merge (no round follows), waiting
for them. The choice (round, loss, weights) is part of the model bundle every node checkpoints and
attests on chain (node.bundle, prefix "b/"): nodes that merged the same updates and reports hold
bit-identical bundles, and one that missed a report is the odd one out and adopts the bundle a
majority attested, exactly as for a missed update. So every node ends with the same final model,
the one inside the last attested bundle.

A member may misreport its own validation loss; that can only pick another of the swarm's own
attested models, never bring in a model of its own.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

import numpy as np

Tensors = dict[str, np.ndarray]

REPORT_SHAPES: dict[str, tuple[int, ...]] = {"val": (2,)}  # [mean loss, validation rows]
MAX_REPORTED_LOSS = 1e6  # a cross-entropy beyond this is no measurement
MAX_REPORTED_ROWS = 10_000_000  # as node.pipeline.MAX_SAMPLES
ROUND, LOSS = "round", "loss"


def encode_report(loss: float, rows: int) -> dict[str, np.ndarray]:
    """A node's validation report as tensors for the wire codec."""
    return {"val": np.array([min(loss, MAX_REPORTED_LOSS), rows], dtype=np.float32)}


def decode_report(tensors: Mapping[str, np.ndarray]) -> tuple[float, int]:
    """(mean loss, rows) of a peer's report; ValueError when the values make no sense."""
    loss, rows = (float(v) for v in np.asarray(tensors["val"], dtype=np.float64))
    if not 0.0 <= loss <= MAX_REPORTED_LOSS:
        raise ValueError(f"validation loss {loss!r} outside [0, {MAX_REPORTED_LOSS:g}]")
    if not (rows.is_integer() and 1 <= rows <= MAX_REPORTED_ROWS):
        raise ValueError(f"validation rows {rows!r} not an integer in 1..{MAX_REPORTED_ROWS}")
    return loss, int(rows)


def pooled_loss(reports: Mapping[str, tuple[float, int]]) -> float:
    """Row-weighted mean loss over the reports, each count clipped at 3x the median count
    (order-independent: reports are summed in sorted sender order)."""
    if not reports:
        raise ValueError("no validation reports to pool")
    counts = np.array([reports[s][1] for s in sorted(reports)], dtype=np.float64)
    losses = np.array([reports[s][0] for s in sorted(reports)], dtype=np.float64)
    if len(counts) >= 3:
        counts = np.minimum(counts, 3.0 * float(np.median(counts)))
    return float(np.sum(losses * counts) / np.sum(counts))


class FinalModel(ABC):
    """Which model a node ends with; its state travels in the model bundle (`state()` / `load()`)."""

    name: str = ""
    needs_reports: bool = False

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.shapes = {k: tuple(v) for k, v in shapes.items()}

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {}

    def state(self) -> Tensors:
        return {}

    def load(self, state: Mapping[str, np.ndarray]) -> None:
        if set(state) != set(self.state_shapes()):
            raise ValueError(f"final-model state names differ: expected {sorted(self.state_shapes())[:4]}, "
                             f"got {sorted(state)[:4]}")

    def observe(self, round_no: int, weights: Mapping[str, np.ndarray], loss: float) -> bool:
        """Round `round_no`'s model had pooled validation loss `loss`; True if it is now the choice."""
        return False

    @abstractmethod
    def final(self, weights: Tensors) -> Tensors:
        """The model to end with, given the last round's `weights`."""

    @property
    def chosen_round(self) -> int:
        """The round whose model `final` returns (0: the last round's)."""
        return 0


class LastModel(FinalModel):
    """The last round's model."""

    name = "last"

    def final(self, weights: Tensors) -> Tensors:
        return weights


class BestValidation(FinalModel):
    """The model of lowest pooled validation loss among those that started a round."""

    name = "best_val"
    needs_reports = True

    def __init__(self, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(shapes)
        self._round = 0  # 0: nothing chosen yet
        self._loss = 0.0
        self._weights: Tensors = {k: np.zeros(s, dtype=np.float32) for k, s in self.shapes.items()}

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return {ROUND: (1,), LOSS: (1,), **{f"w/{k}": s for k, s in self.shapes.items()}}

    def state(self) -> Tensors:
        return {ROUND: np.array([self._round], dtype=np.float32), LOSS: np.array([self._loss], dtype=np.float32),
                **{f"w/{k}": v.copy() for k, v in self._weights.items()}}

    def load(self, state: Mapping[str, np.ndarray]) -> None:
        super().load(state)
        round_no = float(state[ROUND][0])
        if not (round_no.is_integer() and round_no >= 0):
            raise ValueError(f"final-model state: round {round_no!r} is not a round number")
        self._round, self._loss = int(round_no), float(state[LOSS][0])
        self._weights = {k: np.asarray(state[f"w/{k}"], dtype=np.float32).copy() for k in self.shapes}

    def observe(self, round_no: int, weights: Mapping[str, np.ndarray], loss: float) -> bool:
        stored = float(np.float32(loss))  # as it travels in the bundle, so every node compares the same numbers
        if self._round and stored >= self._loss:
            return False
        self._round, self._loss = round_no, stored
        self._weights = {k: np.asarray(weights[k], dtype=np.float32).copy() for k in self.shapes}
        return True

    def final(self, weights: Tensors) -> Tensors:
        return weights if not self._round else {k: v.copy() for k, v in self._weights.items()}

    @property
    def chosen_round(self) -> int:
        return self._round

    @property
    def chosen_loss(self) -> float:
        return self._loss


FINAL_MODELS: dict[str, type[FinalModel]] = {cls.name: cls for cls in (LastModel, BestValidation)}


def final_of(weights: Tensors, state: Mapping[str, np.ndarray], name: str) -> tuple[Tensors, int]:
    """The final model of a checkpointed bundle (its last `weights` and its final-model `state`,
    node.bundle `selection_state`) under rule `name`, and its round (0: the last round's)."""
    rule = final_model_by_name(name, {k: v.shape for k, v in weights.items()})
    rule.load(state)
    return rule.final(weights), rule.chosen_round


def final_model_by_name(name: str, shapes: Mapping[str, tuple[int, ...]]) -> FinalModel:
    try:
        return FINAL_MODELS[name](shapes)
    except KeyError:
        raise ValueError(f"unknown final-model rule {name!r}; expected one of {tuple(FINAL_MODELS)}") from None


__all__ = ["FINAL_MODELS", "BestValidation", "FinalModel", "LastModel", "decode_report", "encode_report",
           "final_model_by_name", "final_of", "pooled_loss"]
