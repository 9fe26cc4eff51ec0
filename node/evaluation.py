"""The evaluation layer: a node's merge rule, and for the `best` rule the published validation set
that ranks the members' models.

`EvaluationLayer.for_node(config, learner)` builds the configured merge rule. For `best` it also
loads the task's published validation set (`node.scenarios.published_set`), which every node holds
bit for bit, scales it with the swarm's agreed scaling as soon as that exists, and gives the rule
a judge: the cross-entropy of a model on that set. `check(task_digest)` compares the set's
keccak256 digest with the one the task carries on chain, so a node holding another set refuses
to take part instead of choosing models nobody else would choose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import NodeConfig
from .learner import Learner, Split
from .merge import BestModel, MergeRule, rule_by_name
from .scenarios import PublishedSet, published_set

Tensors = dict[str, np.ndarray]


class ValidationMismatch(ValueError):
    """This node's published validation set is not the one the task names on chain."""


@dataclass
class ValidationJudge:
    """Loss of a model on the published set, scaled as the swarm scales every input."""

    learner: Learner
    published: PublishedSet
    _split: Split | None = None
    _scaler: object = None

    def __call__(self, weights: Tensors) -> float:
        scaler = self.learner.scaler
        if scaler is None:
            raise RuntimeError("the published validation set is judged only after the swarm agreed on scaling")
        if self._split is None or self._scaler is not scaler:
            self._split = Split(scaler.transform(self.published.x), self.published.y)
            self._scaler = scaler
        return self.learner.evaluate(weights, self._split).loss


@dataclass(frozen=True)
class EvaluationLayer:
    rule: MergeRule
    published: PublishedSet | None

    @classmethod
    def for_node(cls, config: NodeConfig, learner: Learner) -> "EvaluationLayer":
        name = config.swarm.merge
        if name != BestModel.name:
            return cls(rule_by_name(name), None)
        published = published_set(config.data)
        if published is None:
            raise ValueError(f"swarm.merge = 'best' needs a published validation set; data set "
                             f"{config.data.dataset!r} has none")
        return cls(BestModel(ValidationJudge(learner, published)), published)

    @property
    def digest(self) -> str | None:
        return None if self.published is None else self.published.digest

    def check(self, task_digest: str | None) -> None:
        """Raise ValidationMismatch unless the task names this node's published set (when it has one)."""
        if self.published is None:
            return
        ours = self.digest
        if task_digest is None or task_digest.lower() != ours:
            raise ValidationMismatch(f"the task's validation-set digest is {task_digest}, this node's published "
                                     f"set hashes to {ours}: the best-model rule needs the task's own set")
