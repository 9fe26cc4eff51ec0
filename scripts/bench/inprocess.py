"""A swarm's learning rounds in one process: the nodes' real learners, update pipelines, merge
rule and contribution scores, without the sockets and the chain.

Used where the question is what the bytes and the rules do to learning (compression) or how a
protocol scales in the number of nodes (partial exchange), not what the transport costs: every
node's update goes through its own `UpdatePipeline.prepare` (its own error-feedback residual) and
is merged as its peers decode it, with the rule and the contribution scores the nodes use. The
learners are the ones `harness.node_setups` builds for a `SwarmPlan` (the launcher's config path).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from node.contribution import contribution_by_name
from node.learner import Split, add
from node.merge import Update, rule_by_name
from node.pipeline import COMPRESSION, PRIVACY, UpdatePipeline, stage_by_name
from node.preprocess import FeatureStats
from node.launcher import SwarmPlan

from .harness import NodeSetup, node_setups


@dataclass
class RoundRecord:
    round: int
    accuracy: float  # the merged model on every node's test rows, pooled
    blob_bytes: list[int]  # each node's update on the wire
    flags: Counter[str] = field(default_factory=Counter)  # reason kind -> honest senders flagged
    # the measures nearest the flag thresholds: largest |cos| with a concurrent or an older update,
    # smallest norm over the round's median norm
    closest: dict[str, float] = field(default_factory=dict)


class InProcessSwarm:
    """All nodes of `plan` in one process; every node merges every update (all-to-all)."""

    def __init__(self, plan: SwarmPlan, score: bool = True, merge: str | None = None) -> None:
        """`merge`, when given, replaces the plan's rule after the configs are built: how the
        compression benchmark measures pairs the node config refuses (sparse + median)."""
        import torch

        torch.set_num_threads(1)
        self.setups: list[NodeSetup] = node_setups(plan)
        stats = FeatureStats.robust_combine([s.learner.local_stats() for s in self.setups])
        for s in self.setups:
            s.learner.set_scaling(stats)
        swarm = self.setups[0].config.swarm
        self.codec = swarm.codec
        self.rule = rule_by_name(merge or swarm.merge)
        self.contribution = contribution_by_name(swarm.contribution) if score else None
        self.pipelines = [self._pipeline(s) for s in self.setups]
        self.weights = self.setups[0].learner.weights()
        self.parameters = sum(int(np.prod(v.shape)) for v in self.weights.values())
        self._previous: list[Update] = []
        self._previous_merged: dict[str, np.ndarray] | None = None

    @staticmethod
    def _pipeline(setup: NodeSetup) -> UpdatePipeline:
        swarm, learner = setup.config.swarm, setup.learner
        raw = 4 * sum(int(np.prod(s)) for s in learner.shapes.values())

        async def no_chain(ann):  # not used: nothing here is announced
            return None

        return UpdatePipeline(learner.shapes, 2 * raw + 64 * 1024, swarm.codec, no_chain,
                              privacy=stage_by_name(PRIVACY, swarm.privacy),
                              compression=stage_by_name(COMPRESSION, swarm.compression,
                                                        fraction=swarm.compression_fraction))

    def round(self, r: int) -> RoundRecord:
        updates, sizes = [], []
        for i, (s, pipeline) in enumerate(zip(self.setups, self.pipelines)):
            s.learner.set_weights(self.weights)
            blob = pipeline.prepare(s.learner.train_update(r), r)
            sizes.append(len(blob))
            updates.append(pipeline.own_update(blob, len(s.learner.fit), f"node{i:03d}"))
        merged = self.rule.merge(updates)
        flags, closest = self._score(updates)
        self.weights = add(self.weights, merged)
        self._previous = updates
        self._previous_merged = merged
        return RoundRecord(r, self.accuracy(), sizes, flags, closest)

    def _score(self, updates: Sequence[Update]) -> tuple[Counter[str], dict[str, float]]:
        if self.contribution is None:
            return Counter(), {}
        report = self.contribution(updates, self._previous, self._previous_merged, starts=[self.weights])
        measures = report.measures.values()
        closest = {"concurrent_cos": max(m.get("concurrent_cos", 0.0) for m in measures),
                   "previous_cos": max(m.get("previous_cos", 0.0) for m in measures),
                   "norm_ratio": min(m.get("norm_ratio", np.inf) for m in measures)}
        return Counter(reason.split(":")[0].split(" of ")[0] for reason in report.flags.values()), closest

    def accuracy(self) -> float:
        correct = total = 0
        for s in self.setups:
            m = s.learner.evaluate(self.weights, s.learner.test)
            correct += m.accuracy * m.n
            total += m.n
        return correct / total

    def run(self, rounds: int, progress: Callable[[RoundRecord], None] | None = None) -> list[RoundRecord]:
        records = []
        for r in range(1, rounds + 1):
            records.append(self.round(r))
            if progress is not None:
                progress(records[-1])
        return records


class SampledSwarm(InProcessSwarm):
    """Every node keeps its own model and, each round, merges its trained model with those of the
    `s` partners `node.sampling.partners` draws for it (s = n - 1: all-to-all, one shared model).

    Models, not deltas, are merged: partners start a round from different weights, so their
    deltas have different bases (as in Epidemic Learning). Bytes per node per round are
    s x the model's float32 encoding, fetched once from each partner.
    """

    def __init__(self, plan: SwarmPlan, s: int, seed: bytes) -> None:
        super().__init__(plan, score=False)
        self.s, self.seed = s, seed
        self.names = [f"0x{i + 1:040x}" for i in range(len(self.setups))]
        self.models = [dict(self.weights) for _ in self.setups]

    def round(self, r: int) -> RoundRecord:
        from node.sampling import partners

        trained, sizes = [], []
        for i, (s, pipeline) in enumerate(zip(self.setups, self.pipelines)):
            s.learner.set_weights(self.models[i])
            blob = pipeline.prepare(s.learner.train_update(r), r)
            update = pipeline.own_update(blob, len(s.learner.fit), self.names[i])
            trained.append(Update(add(self.models[i], update.tensors), update.samples, self.names[i]))
            sizes.append(len(blob))
        index = {name: i for i, name in enumerate(self.names)}
        if self.s >= len(self.names) - 1:
            shared = self.rule.merge(trained)
            self.models = [shared for _ in self.names]
        else:
            self.models = [self.rule.merge([trained[i]] + [trained[index[p]] for p in
                                                            partners(self.seed, r, self.names, me, self.s)])
                           for i, me in enumerate(self.names)]
        return RoundRecord(r, self.accuracy(), sizes, closest={"spread": self.spread()})

    def accuracy(self) -> float:
        """The nodes' own models, each on every node's test rows, averaged over nodes."""
        x = np.concatenate([s.learner.test.x for s in self.setups])
        y = np.concatenate([s.learner.test.y for s in self.setups])
        learner, split = self.setups[0].learner, Split(x, y)
        return float(np.mean([learner.evaluate(m, split).accuracy for m in self._distinct_models()]))

    def _distinct_models(self) -> list[dict[str, np.ndarray]]:
        seen, out = set(), []
        for m in self.models:
            if id(m) not in seen:
                seen.add(id(m))
                out.append(m)
        return out

    def spread(self) -> float:
        """Mean distance of the nodes' models from their average, relative to the average's norm."""
        flat = np.stack([np.concatenate([m[k].ravel() for k in sorted(m)]) for m in self.models]).astype(np.float64)
        centre = flat.mean(axis=0)
        return float(np.linalg.norm(flat - centre, axis=1).mean() / max(np.linalg.norm(centre), 1e-12))
