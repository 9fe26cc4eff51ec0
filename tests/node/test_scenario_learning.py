"""Each scenario learns: its nodes' learners, built from the launcher's own node configs, run a few
rounds of the swarm's arithmetic (train, merge with the configured rule from the round's model)
without the network, and the result beats chance and, where the README's table says so, local-only
training. The full protocol runs in tests/e2e/test_scenario_swarms.py."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import torch

from node.datasets import load_node_data
from node.evaluation import EvaluationLayer
from node.launcher import SwarmPlan
from node.learner import Learner, Split, add
from node.grouping import GROUP_COUNTS, Grouping
from node.merge import Update, rule_by_name
from node.preprocess import FeatureStats, Scaler
from node.scenarios import SCENARIOS, published_set, watch
from node.training import evaluate, train_local


def learners(name: str, **changes) -> tuple[SwarmPlan, list[Learner]]:
    scenario = SCENARIOS[name]
    return plan_learners(SwarmPlan(**{**scenario.plan, **changes}, node_overrides=scenario.node_settings))


def plan_learners(plan: SwarmPlan) -> tuple[SwarmPlan, list[Learner]]:
    """The plan's nodes' learners, built from the launcher's own node configs, scaled alike."""
    out = []
    for i in range(plan.nodes):
        config = plan.node_config(i, Path("/nonexistent") / str(i), "", "http://127.0.0.1:1", 1,
                                  "/ip4/127.0.0.1/tcp/0", ())
        out.append(Learner(config, load_node_data(config.data)))
    stats = FeatureStats.robust_combine([learner.local_stats() for learner in out])
    for learner in out:
        learner.set_scaling(stats)
    return plan, out


def rounds(plan: SwarmPlan, nodes: list[Learner]) -> dict[str, np.ndarray]:
    torch.set_num_threads(1)
    layers = [EvaluationLayer.for_node(learner.config, learner) for learner in nodes]
    weights = nodes[0].weights()
    for r in range(1, plan.rounds + 1):
        updates = []
        for i, learner in enumerate(nodes):
            learner.set_weights(weights)
            updates.append(Update(learner.train_update(r), len(learner.fit), f"n{i}"))
        merged = [add(weights, layer.rule.at(weights).merge(updates)) for layer in layers]
        assert all(all(np.array_equal(m[k], merged[0][k]) for k in m) for m in merged)  # one choice everywhere
        weights = merged[0]
    return weights


def on_published(learner: Learner, weights) -> float:
    published = published_set(learner.config.data)
    return learner.evaluate(weights, Split(learner.scaler.transform(published.x), published.y)).accuracy


def test_the_evaluation_layer_learns_every_class_of_the_published_set() -> None:
    plan, nodes = learners("evaluation-layer", rounds=4)
    weights = rounds(plan, nodes)
    assert on_published(nodes[0], weights) > 0.4  # five balanced classes: chance is 0.2


def alone_on(learner: Learner, epochs: int, x: np.ndarray, y: np.ndarray) -> float:
    """Accuracy on raw rows (x, y) of the scenario's model trained on `learner`'s fitting rows alone
    (scaled by their own statistics) for `epochs` epochs: the README's "each hospital alone"."""
    t = learner.config.training
    scaler = Scaler.from_stats(FeatureStats.of(learner.fit_rows.x))
    model = learner.fresh_model()
    train_local(model, scaler.transform(learner.fit_rows.x), learner.fit_rows.y, epochs=epochs,
                batch_size=t.batch_size, lr=t.lr, seed=t.seed, optimizer=t.optimizer, weight_decay=t.weight_decay)
    return evaluate(model, scaler.transform(x), y).accuracy


def test_ecg_rhythm_swarm_beats_each_hospital_alone_on_every_hospitals_rows() -> None:
    """The README's ecg-rhythm table at the scenario's 24 rounds of 2 epochs (seed 0): the swarm's
    model learns every class of the published set, and on the four hospitals' test rows pooled it
    beats each hospital's model trained alone for as many epochs (48): 85.1% against 77.7%."""
    plan, nodes = learners("ecg-rhythm")
    assert (plan.rounds, plan.epochs, plan.merge) == (24, 2, "mean")
    weights = rounds(plan, nodes)
    x = np.concatenate([n.data.test.x for n in nodes])
    y = np.concatenate([n.data.test.y for n in nodes])
    swarm = nodes[0].evaluate(weights, Split(nodes[0].scaler.transform(x), y)).accuracy
    alone = float(np.mean([alone_on(n, plan.rounds * plan.epochs, x, y) for n in nodes]))
    assert on_published(nodes[0], weights) > 0.6, on_published(nodes[0], weights)  # chance: 0.2
    assert swarm > alone + 0.04, (swarm, alone)


def test_ecg_anomaly_swarm_separates_normal_from_abnormal() -> None:
    plan, nodes = learners("ecg-anomaly", rounds=3)
    weights = rounds(plan, nodes)
    published = published_set(nodes[0].config.data)
    metrics = nodes[0].evaluate(weights, Split(nodes[0].scaler.transform(published.x), published.y))
    assert metrics.auc > 0.8, metrics
    for learner in nodes:
        auc = learner.evaluate(weights, learner.test).auc
        assert np.isnan(auc) or auc > 0.6, learner.data.name  # NaN: a hospital with one class only


def test_wearable_starts_from_the_public_subjects_and_personalisation_helps() -> None:
    plan, nodes = learners("wearable", rounds=3)
    starts = [learner.weights() for learner in nodes]
    assert all(np.array_equal(s[k], starts[0][k]) for s in starts for k in s)  # one start on every node
    assert all(learner.data.name != f"subject{s}" for learner in nodes for s in watch.PUBLIC_SUBJECTS)
    start_acc = np.mean([learner.evaluate(starts[0], learner.test).accuracy for learner in nodes])
    weights = rounds(plan, nodes)
    swarm = np.mean([learner.evaluate(weights, learner.test).accuracy for learner in nodes])
    personal = np.mean([learner.personalised(weights, 5).accuracy for learner in nodes])
    assert start_acc > 2 / 7  # the public subjects' model already transfers (chance: 1/7)
    assert swarm > start_acc and personal > swarm, (start_acc, swarm, personal)


def test_personalisation_changes_only_the_output_layer() -> None:
    plan, nodes = learners("wearable", nodes=2)
    learner = nodes[0]
    weights = learner.weights()
    before = {k: v.copy() for k, v in weights.items()}
    model = learner.fresh_model()
    learner.personalised(weights, 1)
    assert all(np.array_equal(before[k], weights[k]) for k in weights)  # the swarm's weights are untouched
    assert [k for k, _ in model.named_parameters()][-2:] == ["head.weight", "head.bias"]


def first_updates(nodes: list[Learner]) -> tuple[dict[str, np.ndarray], list[Update]]:
    torch.set_num_threads(1)
    start = nodes[0].weights()
    first = []
    for i, learner in enumerate(nodes):
        learner.set_weights(start)
        first.append(Update(learner.train_update(1), len(learner.fit), f"n{i}"))
    return start, first


def groups_in_every_order(nodes: list[Learner], first: list[Update]) -> set[Grouping]:
    """The groups every node's configured count (the scenario's: "auto", the silhouette) finds from
    `first`, over every order the updates can arrive in."""
    swarm = nodes[0].config.swarm
    return {GROUP_COUNTS[swarm.group_count](list(order), swarm.groups) for order in itertools.permutations(first)}


def test_auto_groups_find_one_group_in_iid_data() -> None:
    """Four hospitals holding IID shares of the breast-cancer data: round 1's updates look alike
    (silhouette of the best split 0.33, below SILHOUETTE_MIN), so every node keeps one group."""
    plan, nodes = plan_learners(SwarmPlan(nodes=4, rounds=2, dataset="breast_cancer", partition="iid", epochs=2,
                                          groups="auto"))
    assert (nodes[0].config.swarm.groups, nodes[0].config.swarm.group_count) == (2, "silhouette")
    _, first = first_updates(nodes)
    assert groups_in_every_order(nodes, first) == {Grouping((("n0", "n1", "n2", "n3"),))}


def test_ecg_groups_every_node_groups_alike_and_grouped_beats_one_global_model() -> None:
    """Round 1's updates group the hospitals by their kind (rhythm clinics 0 and 2, chest-pain
    units 1 and 3: the scenario's automatic count finds 2 groups) in whatever order a node received
    them; then one model per group fits each hospital's own test rows better than one global model
    (as in the README's ecg-groups table)."""
    plan, nodes = learners("ecg-groups", rounds=4)
    start, first = first_updates(nodes)
    assert groups_in_every_order(nodes, first) == {Grouping((("n0", "n2"), ("n1", "n3")))}

    rule = rule_by_name(plan.merge)

    def own_accuracy(groups: tuple[tuple[int, ...], ...]) -> float:
        models = {g: add(start, rule.merge(first)) for g in groups}  # round 1 was one merge for all
        for r in range(2, plan.rounds + 1):
            for g in groups:
                updates = []
                for i in g:
                    nodes[i].set_weights(models[g])
                    updates.append(Update(nodes[i].train_update(r), len(nodes[i].fit), f"n{i}"))
                models[g] = add(models[g], rule.merge(updates))
        return float(np.mean([nodes[i].evaluate(models[g], nodes[i].test).accuracy for g in groups for i in g]))

    grouped, global_ = own_accuracy(((0, 2), (1, 3))), own_accuracy(((0, 1, 2, 3),))
    assert grouped > global_ + 0.05, (grouped, global_)
