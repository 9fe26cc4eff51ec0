"""Grouping of similar sites (node.grouping): every node computes the same groups from the same
round's updates, whatever order they arrived in, and the groups follow the updates' directions."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from node.config import config_from_mapping
from node.cli import build_parser
from node.grouping import GROUP_COUNTS, SILHOUETTE_MIN, GroupModels, Grouping, group_updates, silhouette, \
    silhouette_groups, similarities
from node.launcher import SwarmPlan
from node.merge import Update
from node.rundir import RunFolder


def _update(sender: str, direction: np.ndarray, seed: int, noise: float = 0.1) -> Update:
    rng = np.random.default_rng(seed)
    flat = direction + noise * rng.standard_normal(direction.shape)
    return Update({"a.weight": flat[:6].reshape(2, 3).astype(np.float32), "b.bias": flat[6:].astype(np.float32)},
                  10 + seed, sender)


def _two_kinds(n: int) -> list[Update]:
    """Senders s0..s{n-1}; even ones pull one way, odd ones another."""
    rng = np.random.default_rng(7)
    kinds = [rng.standard_normal(8), rng.standard_normal(8)]
    return [_update(f"s{i}", kinds[i % 2], seed=i) for i in range(n)]


def test_groups_follow_the_update_directions() -> None:
    grouping = group_updates(_two_kinds(6), 2)
    assert grouping.groups == (("s0", "s2", "s4"), ("s1", "s3", "s5"))
    assert grouping.group_of("s3") == ("s1", "s3", "s5")
    assert grouping.group_of("stranger") is None


def test_every_arrival_order_gives_the_same_groups() -> None:
    updates = _two_kinds(5)
    seen = {group_updates(list(order), 2) for order in itertools.permutations(updates)}
    assert len(seen) == 1
    assert seen.pop().groups == (("s0", "s2", "s4"), ("s1", "s3"))


def test_one_group_and_more_groups_than_updates() -> None:
    updates = _two_kinds(3)
    assert group_updates(updates, 1).groups == (("s0", "s1", "s2"),)
    assert group_updates(updates, 5).groups == (("s0",), ("s1",), ("s2",))


def test_equal_similarities_go_to_the_first_pair() -> None:
    e = np.eye(8)
    # s0, s1, s2 mutually orthogonal (similarity 0 everywhere): the first pair (s0, s1) joins
    updates = [_update(f"s{i}", e[i], seed=i, noise=0.0) for i in range(3)]
    assert group_updates(updates, 2).groups == (("s0", "s1"), ("s2",))


def test_an_all_zero_update_is_dissimilar_to_every_other() -> None:
    updates = _two_kinds(4) + [Update({"a.weight": np.zeros((2, 3), np.float32), "b.bias": np.zeros(2, np.float32)},
                                      5, "s9")]
    sim = similarities(updates)
    assert np.all(np.isfinite(sim)) and sim[4, :4].tolist() == [0.0] * 4
    assert group_updates(updates, 3).group_of("s9") == ("s9",)


def test_bad_grouping_input_is_refused() -> None:
    with pytest.raises(ValueError):
        group_updates([], 2)
    with pytest.raises(ValueError):
        group_updates(_two_kinds(3), 0)
    u = _two_kinds(2)
    with pytest.raises(ValueError):
        group_updates([u[0], u[0]], 2)
    with pytest.raises(ValueError):
        Grouping((("a", "b"), ("b",)))
    with pytest.raises(ValueError):
        Grouping.from_lists([["a"], "b"])  # type: ignore[list-item]


def test_grouping_file_round_trip(tmp_path: Path) -> None:
    folder = RunFolder(tmp_path / "node")
    grouping = group_updates(_two_kinds(4), 2)
    folder.write_grouping("0xabc/1", grouping.to_lists(), 1)
    groups, own = folder.read_grouping("0xabc/1")
    assert Grouping.from_lists(groups) == grouping and own == 1
    assert folder.read_grouping("0xabc/2") is None  # another task's groups do not apply
    assert folder.grouping in folder.run_files()  # cleared when a new chain starts


def test_a_grouped_swarm_has_no_referee() -> None:
    assert config_from_mapping({"name": "a", "swarm": {"groups": 2}}).swarm.groups == 2
    with pytest.raises(ValueError, match="referee"):
        SwarmPlan(groups=2, referee=True).validate()
    with pytest.raises(ValueError, match="referee"):
        SwarmPlan(groups="auto", referee=True).validate()


def test_the_silhouette_finds_two_kinds_and_one_group_in_alike_updates() -> None:
    """Two directions: 2 groups (the silhouette is high), in every arrival order; updates around one
    direction: 1 group; at most half the updates' count of groups, at most `groups`."""
    updates = _two_kinds(6)
    seen = {silhouette_groups(list(order), 4) for order in itertools.permutations(updates[:5])}
    assert seen == {Grouping((("s0", "s2", "s4"), ("s1", "s3")))}
    assert silhouette_groups(updates, 4).groups == (("s0", "s2", "s4"), ("s1", "s3", "s5"))
    rng = np.random.default_rng(3)
    one = rng.standard_normal(8)
    alike = [_update(f"s{i}", one, seed=i, noise=0.3) for i in range(6)]
    assert silhouette_groups(alike, 4).groups == (tuple(f"s{i}" for i in range(6)),)
    assert silhouette_groups(updates, 1).groups == (tuple(f"s{i}" for i in range(6)),)
    assert silhouette_groups(updates[:3], 4).groups == (("s0", "s1", "s2"),)  # 3 updates: 1 group of >= 2
    assert GROUP_COUNTS["fixed"](alike, 2) == group_updates(alike, 2) and len(group_updates(alike, 2).groups) == 2


def test_silhouette_values() -> None:
    # two tight pairs far apart: a = 0.1, b = 0.9 for every row -> (0.9 - 0.1) / 0.9
    sim = np.array([[1, .9, .1, .1], [.9, 1, .1, .1], [.1, .1, 1, .9], [.1, .1, .9, 1]])
    assert silhouette(sim, [[0, 1], [2, 3]]) == round(0.8 / 0.9, 6)
    assert silhouette(sim, [[0, 2], [1, 3]]) < 0 < SILHOUETTE_MIN
    assert silhouette(sim, [[0], [1, 2, 3]]) < silhouette(sim, [[0, 1], [2, 3]])  # a row alone scores 0
    assert silhouette(sim, [[0, 1, 2, 3]]) == 0.0


def test_auto_groups_reach_the_nodes_as_a_silhouette_count() -> None:
    args = build_parser().parse_args(["swarm", "--groups", "auto"])
    plan = SwarmPlan(nodes=6, rounds=2, groups=args.groups)
    config = plan.node_config(0, Path("/nonexistent"), "", "http://127.0.0.1:1", 1, "/ip4/127.0.0.1/tcp/0", ())
    assert (config.swarm.groups, config.swarm.group_count) == (3, "silhouette")  # room for 6 // 2 models
    assert SwarmPlan(nodes=40, groups="auto").grouping_settings() == {"groups": 8, "group_count": "silhouette"}
    assert SwarmPlan(nodes=3, groups=2).grouping_settings() == {"groups": 2, "group_count": "fixed"}
    for bad in ("0", "two", "-1"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["swarm", "--groups", bad])
    with pytest.raises(ValueError, match="auto"):
        SwarmPlan(groups="many").validate()


def test_group_models_hold_one_copy_per_group() -> None:
    models = GroupModels(2)
    weights = {"conv.weight": np.ones((2, 3), np.float32), "head.bias": np.zeros(2, np.float32)}
    state = models.replicate(weights)
    assert sorted(state) == ["g0/conv.weight", "g0/head.bias", "g1/conv.weight", "g1/head.bias"]
    assert models.shapes({k: v.shape for k, v in weights.items()})["g1/conv.weight"] == (2, 3)
    moved = models.join([weights, {k: v + 1 for k, v in weights.items()}])
    assert np.array_equal(models.copy(moved, 1)["head.bias"], np.ones(2)) and sorted(models.copy(moved, 0)) == sorted(weights)
    assert GroupModels.of(moved) == models and GroupModels.of(weights) is None
    with pytest.raises(ValueError):
        GroupModels(1)
