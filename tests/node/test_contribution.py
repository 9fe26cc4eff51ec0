"""Checkable contribution scores on real, seeded training rounds: determinism, flags, attacks."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from threadpoolctl import threadpool_limits

from node.contribution import (CONTRIBUTIONS, GRAM_BLOCK, ContributionReport, PublicValidation, checkable_scores,
                               contribution_by_name, gram)
from node.launcher import SwarmPlan
from node.merge import Update, rule_by_name
from node.scoring import MAX_SCORE
from scripts.bench.contribution import (Round, attacks, honest_rounds, loud_copier, missing_member, payout_shares,
                                        public_validation, scaled, with_noise)

ROOT = Path(__file__).resolve().parents[2]
MEDIAN = rule_by_name("median")


@pytest.fixture(scope="module")
def heart() -> tuple[list, list[Round]]:
    """Three honest rounds of the four heart hospitals (mlp, median merge, seed 0)."""
    return honest_rounds(SwarmPlan(nodes=4, dataset="heart", model="mlp"), 3, MEDIAN)


@pytest.fixture(scope="module")
def rounds(heart) -> list[Round]:
    return heart[1]


def score(now: Round, before: Round | None, updates: list[Update] | None = None, **kw) -> ContributionReport:
    return checkable_scores(now.updates if updates is None else updates, before.updates if before else [],
                            before.merged if before else None, **kw)


def replaced(now: Round, index: int, tensors: dict[str, np.ndarray], sender: str | None = None) -> list[Update]:
    """The round's updates with update `index` replaced (its sender kept unless `sender`)."""
    out = list(now.updates)
    out[index] = Update(tensors, out[index].samples, sender or out[index].sender)
    return out


def honest_scores(report: ContributionReport, *exclude: str) -> list[int]:
    return [v for s, v in report.scores.items() if s not in exclude]


# --------------------------------------------------------------------------- determinism


def test_scores_are_integers_for_every_sender_and_sum_to_at_most_10000(rounds) -> None:
    for r, now in enumerate(rounds):
        report = score(now, rounds[r - 1] if r else None)
        assert set(report.scores) == {u.sender for u in now.updates}
        assert all(isinstance(v, int) and 0 <= v <= MAX_SCORE for v in report.scores.values())
        assert 9990 <= sum(report.scores.values()) <= MAX_SCORE  # floor loses at most one per sender
        assert report.flags == {}


def test_same_report_whatever_the_order_or_the_arrays(rounds) -> None:
    before, now = rounds[1], rounds[2]
    expected = score(now, before)
    rng = random.Random(7)
    for _ in range(5):
        ups = [Update({k: np.array(v, copy=True) for k, v in reversed(list(u.tensors.items()))}, u.samples, u.sender)
               for u in now.updates]
        prev = list(before.updates)
        rng.shuffle(ups)
        rng.shuffle(prev)
        merged = {k: before.merged[k].copy() for k in reversed(list(before.merged))}
        assert checkable_scores(ups, prev, merged) == expected


def _hex_report(report: ContributionReport) -> dict:
    return {"scores": report.scores, "flags": report.flags,
            "measures": {s: {k: float(v).hex() for k, v in m.items()} for s, m in report.measures.items()}}


def test_a_separate_process_with_other_thread_settings_computes_the_same_bits(rounds, tmp_path: Path) -> None:
    before, now = rounds[1], rounds[2]
    arrays = {}
    for kind, ups in (("now", now.updates), ("before", before.updates)):
        for u in ups:
            for k, v in u.tensors.items():
                arrays[f"{kind}|{u.sender}|{u.samples}|{k}"] = v
    for k, v in before.merged.items():
        arrays[f"merged|-|0|{k}"] = v
    np.savez(tmp_path / "round.npz", **arrays)
    script = """
import json, sys
import numpy as np
from node.contribution import checkable_scores
from node.merge import Update
from node.scoring import MAX_SCORE
data = np.load(sys.argv[1])
groups = {}
for key in data.files:
    kind, sender, samples, name = key.split("|")
    groups.setdefault((kind, sender, int(samples)), {})[name] = data[key]
ups = [Update(t, n, s) for (kind, s, n), t in groups.items() if kind == "now"]
prev = [Update(t, n, s) for (kind, s, n), t in groups.items() if kind == "before"]
merged = next(t for (kind, _, _), t in groups.items() if kind == "merged")
r = checkable_scores(ups[::-1], prev, merged)
print(json.dumps({"scores": r.scores, "flags": r.flags,
                  "measures": {s: {k: float(v).hex() for k, v in m.items()} for s, m in r.measures.items()}}))
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "round.npz")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout) == json.loads(json.dumps(_hex_report(score(now, before))))


def _vectors(seed: int, size: int = 3 * GRAM_BLOCK + 77) -> list[np.ndarray]:
    """Float32 vectors of unlike scales, one all zero, one with a huge entry in one block."""
    rng = np.random.default_rng(seed)
    out = [(rng.standard_normal(size) * scale).astype(np.float32) for scale in (1e-3, 1.0, 7e4, 3e-30)]
    out.append(np.zeros(size, dtype=np.float32))
    spiky = rng.standard_normal(size).astype(np.float32)
    spiky[GRAM_BLOCK + 5] = 1e6
    return out + [spiky]


def test_gram_is_exact_on_small_integers_across_partial_blocks() -> None:
    rng = np.random.default_rng(3)
    ints = [rng.integers(-2**10, 2**10, size=2 * GRAM_BLOCK + 300) for _ in range(5)]
    exact = np.stack(ints) @ np.stack(ints).T  # int64: no rounding anywhere
    assert np.array_equal(gram([v.astype(np.float32) for v in ints]), exact.astype(np.float64))


def test_gram_is_close_to_float64_and_scales_by_powers_of_two_exactly() -> None:
    vectors = _vectors(4)
    g = gram(vectors)
    wide = np.stack([v.astype(np.float64) for v in vectors])
    reference = wide @ wide.T
    norms = np.sqrt(np.diag(reference))
    assert np.all(np.abs(g - reference) <= 2.0**-19 * np.outer(norms, norms))
    assert np.all(g[4] == 0) and np.all(g[:, 4] == 0)
    smaller = gram([v * np.float32(2.0**-20) for v in vectors])  # 3e-36 is still a normal float32
    assert np.array_equal(smaller, g * 2.0**-40)


def test_gram_bits_do_not_depend_on_blas_threads_or_summation_order() -> None:
    vectors = _vectors(5, size=64 * GRAM_BLOCK)
    with threadpool_limits(limits=1):
        one = gram(vectors)
    with threadpool_limits(limits=2):
        two = gram(vectors)
    # the same permutation inside every block changes BLAS's order of additions, not a block's scale
    order = np.concatenate([start + np.random.default_rng(6).permutation(GRAM_BLOCK)
                            for start in range(0, vectors[0].size, GRAM_BLOCK)])
    permuted = gram([v[order] for v in vectors])
    assert one.tobytes() == two.tobytes() == permuted.tobytes()


# --------------------------------------------------------------------------- flags


def test_concurrent_copies_flag_both_scaled_or_flipped(rounds) -> None:
    now, before = rounds[2], rounds[1]
    source = now.updates[0]
    for factor in (1.0, 1e-3, 0.5, 100.0, -1.0):
        report = score(now, before, replaced(now, 3, scaled(source.tensors, factor)))
        copier = now.updates[3].sender
        assert set(report.flags) == {source.sender, copier}, factor
        assert "near-copy" in report.flags[source.sender] and report.scores[copier] == report.scores[source.sender] == 0
        assert report.flags[copier].startswith("free rider" if factor == 1e-3 else "near-copy")
        assert all(v > 0 for s, v in report.scores.items() if s not in report.flags)


def test_stale_copies_of_others_and_of_the_merged_update_are_flagged(rounds) -> None:
    now, before = rounds[2], rounds[1]
    copier = now.updates[3].sender
    for stale, what in ((before.updates[0].tensors, f"{before.updates[0].sender}'s round r-1 update"),
                        (scaled(before.updates[1].tensors, -2.0), f"{before.updates[1].sender}'s round r-1 update"),
                        (scaled(before.merged, 3.0), "the round r-1 merged update")):
        report = score(now, before, replaced(now, 3, stale))
        assert set(report.flags) == {copier} and what in report.flags[copier]
        assert report.scores[copier] == 0 and min(honest_scores(report, copier)) > 0


def test_free_riders_are_flagged(rounds) -> None:
    now, before = rounds[2], rounds[1]
    rider = now.updates[2].sender
    for factor in (0.0, 1e-3):
        report = score(now, before, replaced(now, 2, scaled(now.updates[2].tensors, factor)))
        assert set(report.flags) == {rider} and report.flags[rider].startswith("free rider")
    nobody = score(rounds[0], None, [Update(scaled(u.tensors, 0.0), u.samples, u.sender) for u in rounds[0].updates])
    assert set(nobody.scores.values()) == {0} and len(nobody.flags) == 4
    lone = score(rounds[0], None, [Update(scaled(u.tensors, float(i == 0)), u.samples, u.sender)
                                   for i, u in enumerate(rounds[0].updates)])
    assert len(lone.flags) == 3 and lone.scores[rounds[0].updates[0].sender] > 0


def test_repeating_its_own_update_scores_zero_unflagged_and_does_not_frame_the_repeater(rounds) -> None:
    """A node that re-sends its own r-1 update is not slashed (honest single-step nodes do that) but
    earns nothing; whoever copies that old update is flagged, not the repeater."""
    now, before = rounds[2], rounds[1]
    repeater = now.updates[1].sender
    ups = replaced(now, 1, before.updates[1].tensors)
    report = score(now, before, ups)
    assert report.flags == {} and report.scores[repeater] == 0
    copier = now.updates[3].sender
    report = score(now, before, replaced(Round(now.start, ups, now.merged), 3, scaled(before.updates[1].tensors, 2.0)))
    assert set(report.flags) == {copier} and report.scores[repeater] == 0


# --------------------------------------------------------------------------- quality


def test_attacks_that_escape_the_flags_earn_less_than_every_honest_update(rounds) -> None:
    """The benchmark's attacks in VA Long Beach's place; the sign flip is the documented limit."""
    now, before = rounds[2], rounds[1]
    bad = now.updates[3].sender
    sent = attacks(now, before, 3, np.random.default_rng(3))
    for name in ("x100", "garbage (random, median norm)", "stale: other's r-1 update + noise",
                 "stale: r-1 merged + noise", "stale: own r-1 update + noise"):
        report = score(now, before, replaced(now, 3, sent[name]))
        assert report.flags == {}, name
        assert report.scores[bad] < min(honest_scores(report, bad)), name


def test_colluding_pair_with_noise_below_the_flag_shares_almost_nothing(rounds) -> None:
    now, before = rounds[2], rounds[1]
    source, copier = now.updates[0].sender, now.updates[3].sender
    report = score(now, before, replaced(now, 3, with_noise(now.updates[0].tensors, 0.998, np.random.default_rng(4))))
    assert report.flags == {}
    assert max(report.scores[source], report.scores[copier]) < min(honest_scores(report, source, copier))


@pytest.mark.parametrize("plan", [SwarmPlan(nodes=4, dataset="heart", model="logreg"),
                                  SwarmPlan(nodes=8, dataset="breast_cancer", model="mlp"),
                                  SwarmPlan(nodes=8, dataset="breast_cancer", partition="dirichlet", alpha=0.1,
                                            model="mlp"),
                                  SwarmPlan(nodes=8, dataset="breast_cancer", partition="dirichlet", alpha=0.1,
                                            model="logreg")],
                         ids=["heart-logreg", "bc-iid-mlp", "bc-dirichlet-mlp", "bc-dirichlet-logreg"])
def test_honest_updates_are_never_flagged(plan: SwarmPlan) -> None:
    _, trained = honest_rounds(plan, 4, MEDIAN)
    for r, now in enumerate(trained):
        assert score(now, trained[r - 1] if r else None).flags == {}


@pytest.mark.parametrize("rule", ["mean", "trimmed", "geomedian"])
def test_rounds_merged_by_any_rule_score_cleanly(rule: str) -> None:
    """Under the mean the r-1 merged update lies in the span of the r-1 updates: no trouble."""
    merge = rule_by_name(rule)
    _, trained = honest_rounds(SwarmPlan(nodes=4, dataset="heart", model="mlp", merge=rule), 3, merge)
    for r, now in enumerate(trained):
        before = trained[r - 1] if r else None
        args = (now.updates, before.updates if before else [], before.merged if before else None)
        report = checkable_scores(*args)
        assert report.flags == {} and min(report.scores.values()) > 0
        assert checkable_scores(*args) == report


def test_switzerland_earns_in_every_round(rounds) -> None:
    """94% prevalence, a direction the other hospitals lack: its update is honest and earns."""
    for r, now in enumerate(rounds):
        assert score(now, rounds[r - 1] if r else None).scores["switzerland"] > 500


def test_a_missing_member_takes_little_of_the_others_shares() -> None:
    """One hospital's updates left out of every round's scores (it never serves, or sends a copy or
    nothing), six rounds: whichever hospital it is, no other loses more than 10% of its share (seed
    0 measures no loss at all; before round 1 was scored alike, Switzerland missing cost VA Long
    Beach 18%)."""
    _, six = honest_rounds(SwarmPlan(nodes=4, dataset="heart", model="mlp"), 6, MEDIAN)
    losses = missing_member(six)
    assert set(losses) == {"cleveland", "hungary", "switzerland", "va-long-beach"}
    assert max(losses.values()) <= 10.0, losses
    full, without = payout_shares(six), payout_shares(six, missing="switzerland")
    assert "switzerland" not in without and without["va-long-beach"] >= 0.9 * full["va-long-beach"]


def test_a_copier_in_the_place_of_a_members_only_support_costs_that_member_little() -> None:
    """Seed 2: Cleveland's and Hungary's new directions explain each other (75 standard deviations
    above chance in round 2) and nobody else's do. Hungary copying with loud noise for six rounds,
    merged and trained on, leaves Cleveland without that support. Cleveland keeps at least 90 % of
    its honest share (the issue's bound; 79.5 % while novelty was graded up to 1) and the copier
    ends below every honest member."""
    plan = SwarmPlan(nodes=4, dataset="heart", model="mlp", seed=2)
    honest = payout_shares(honest_rounds(plan, 6, MEDIAN)[1])
    copied = payout_shares(honest_rounds(plan, 6, MEDIAN, rewrite=loud_copier("hungary", "switzerland", 2))[1])
    assert copied["cleveland"] >= 0.9 * honest["cleveland"], (honest, copied)
    assert all(copied["hungary"] < copied[s] for s in copied if s != "hungary"), copied
    assert copied["hungary"] < 0.5 * honest["hungary"], (honest, copied)


def test_round_one_splits_alike_among_updates_that_show_structure(rounds) -> None:
    """With no round r-1 to judge what is new against, every honest round-1 update earns alike,
    whoever else is present; a random vector in one member's place earns nothing."""
    first = rounds[0]
    assert set(score(first, None).scores.values()) == {2500}
    for gone in range(4):
        rest = [u for i, u in enumerate(first.updates) if i != gone]
        assert set(checkable_scores(rest, [], None).scores.values()) == {3333}
    rng = np.random.default_rng(3)
    noise = {k: rng.standard_normal(v.shape).astype(np.float32) * np.float32(0.01)
             for k, v in first.updates[3].tensors.items()}
    report = score(first, None, replaced(first, 3, noise))
    assert report.flags == {}
    assert report.scores["va-long-beach"] == 0 and set(honest_scores(report, "va-long-beach")) == {3333}


@pytest.mark.parametrize("cos", [0.99, 0.9, 0.7, 0.5])
def test_an_old_update_plus_noise_of_any_size_earns_less_than_every_honest_update(rounds, cos: float) -> None:
    """A free rider re-sends another member's round r-1 update or the r-1 merged update with noise
    enough to escape the copy flag. Its residual (what the round r-1 vectors do not explain) is the
    noise, which no other update's residual explains: the innovation factor keeps it below every
    honest update however much noise it adds (before it, noise at cos 0.9 took 40-50% of a round)."""
    now, before = rounds[2], rounds[1]
    bad = now.updates[3].sender
    for source in (before.updates[0].tensors, before.merged):
        report = score(now, before, replaced(now, 3, with_noise(source, cos, np.random.default_rng(5))))
        assert report.flags == {}
        assert report.measures[bad]["innovation_factor"] < 0.5
        assert report.scores[bad] < min(honest_scores(report, bad)), (cos, report.scores)


def test_noise_shaped_like_an_update_counts_as_chance(rounds) -> None:
    """Noise scaled per tensor to that tensor's RMS (what `node.attacks` adds to a copy) is not
    uniform over the parameters: measured against isotropic chance it looked shared, and a loud
    copy of an old update reached 6.6 standard deviations of innovation (full credit). Weighed per
    tensor by the round's typical scale it is chance again, as isotropic noise was before."""
    now, before = rounds[2], rounds[1]
    bad = now.updates[3].sender
    rng = np.random.default_rng(11)
    z = []
    for source in before.updates[:3]:
        for _ in range(8):
            noisy = {k: (v + rng.normal(0.0, 0.5 * float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))),
                                        v.shape)).astype(np.float32) for k, v in source.tensors.items()}
            z.append(score(now, before, replaced(now, 3, noisy)).measures[bad]["innovation_z"])
    assert abs(float(np.mean(z))) < 1.0 and max(z) < 3.0, z


def test_an_old_update_plus_the_weight_decay_step_is_not_new_work() -> None:
    """With weight decay every honest update carries -c x the round's starting weights (cos 0.3-0.7
    with them on heart mlp at 0.05), and anyone can add that to an old update: measured against
    the r-1 vectors alone it looked like new work the others share and took an honest share. The
    starting model is part of what the swarm already had."""
    plan = SwarmPlan(nodes=4, dataset="heart", model="mlp", node_overrides=("training.weight_decay=0.05",))
    _, trained = honest_rounds(plan, 3, MEDIAN)
    now, before = trained[2], trained[1]
    names = sorted(now.start)
    w = np.concatenate([now.start[k].ravel() for k in names]).astype(np.float64)
    decay = float(np.median([-(np.concatenate([u.tensors[k].ravel() for k in names]) @ w) / (w @ w)
                             for u in now.updates]))
    assert decay > 0.01  # the honest updates do carry the decay step
    rng = np.random.default_rng(12)
    bad = now.updates[3].sender
    for source in before.updates[:3]:
        sent = {k: (v + rng.normal(0.0, 0.5 * float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))), v.shape)
                    - decay * now.start[k]).astype(np.float32) for k, v in source.tensors.items()}
        report = score(now, before, replaced(now, 3, sent), starts=[now.start])
        assert report.flags == {}
        assert report.measures[bad]["innovation_factor"] < 1.0, report.measures[bad]  # not shared work
        assert report.scores[bad] < min(honest_scores(report, bad)), report.scores


def test_every_group_model_joins_the_basis_and_a_repeated_one_counts_once(rounds) -> None:
    """A grouped swarm trains from one model per group: each is what the swarm already had. Before
    the groups form every group holds the same model, which must score as one."""
    now, before = rounds[2], rounds[1]
    one = score(now, before, starts=[now.start])
    assert score(now, before, starts=[now.start, dict(now.start)]).scores == one.scores
    other = {k: v + np.float32(0.01) for k, v in now.start.items()}
    two = score(now, before, starts=[now.start, other])
    assert two.flags == {} and 9990 <= sum(two.scores.values()) <= MAX_SCORE
    with pytest.raises(ValueError, match="starting model"):
        score(now, before, starts=[{("g0/" + k): v for k, v in now.start.items()}])


def test_a_random_update_earns_little_even_with_few_parameters() -> None:
    """Logistic regression on heart has 46 parameters, so a random vector of the median norm lies
    partly in the span of the other updates by chance; structure counts only what lies above
    chance, and the residual reference clips every update's residual to the median length (a
    random vector's residual used to dominate it and take over half of the round)."""
    _, trained = honest_rounds(SwarmPlan(nodes=4, dataset="heart", model="logreg"), 4, MEDIAN)
    rng = np.random.default_rng(6)
    for r in (2, 3):
        now, before = trained[r], trained[r - 1]
        sent = attacks(now, before, 3, rng)["garbage (random, median norm)"]
        report = score(now, before, replaced(now, 3, sent), starts=[now.start])
        bad = now.updates[3].sender
        assert report.scores[bad] < min(honest_scores(report, bad)), (r, report.scores)


def test_a_flagged_stale_copy_costs_the_member_it_copied_nothing(rounds) -> None:
    """VA Long Beach re-sends Switzerland's previous update: flagged, and every other member scores
    exactly as if VA Long Beach had sent nothing (its own new work resembles its previous update,
    |cos| ~0.99, so the copy used to make Switzerland's work look redundant)."""
    now, before = rounds[2], rounds[1]
    swiss = next(u for u in before.updates if u.sender == "switzerland")
    copied = score(now, before, replaced(now, 3, swiss.tensors))
    absent = score(now, before, [u for u in now.updates if u.sender != "va-long-beach"])
    assert set(copied.flags) == {"va-long-beach"} and "switzerland's round r-1 update" in copied.flags["va-long-beach"]
    assert copied.measures["switzerland"]["concurrent_cos"] > 0.95  # it does resemble Switzerland's new work
    assert {s: v for s, v in copied.scores.items() if s != "va-long-beach"} == absent.scores


@pytest.mark.parametrize("factor", [1.5, 2.0, 3.0])
def test_scaling_an_update_up_earns_nothing_and_takes_nothing(rounds, factor: float) -> None:
    """Every factor of the quality is scale-free below the norm tolerance (x6 the median): a member
    that sends its honest update x1.5 to x3 scores what x1 scores, and so does everyone else (when the
    reference weighed each residual by its length, x1.5-x3 raised a member above its own honest
    score in 63 of 84 heart rounds)."""
    for r, now in enumerate(rounds):
        before = rounds[r - 1] if r else None
        honest_run = score(now, before).scores
        for i, u in enumerate(now.updates):
            report = score(now, before, replaced(now, i, scaled(u.tensors, factor)))
            assert report.flags == {}
            assert all(abs(report.scores[s] - v) <= 1 for s, v in honest_run.items()), (u.sender, report.scores)


def test_public_validation_is_optional_and_recorded(heart) -> None:
    setups, trained = heart
    model, x, y = public_validation(setups)
    now, before = trained[2], trained[1]
    public = PublicValidation(model, now.start, x, y)
    report = score(now, before, validation=public)
    assert report == score(now, before, validation=public)
    assert all("validation_gain" in m for m in report.measures.values())
    assert sum(report.scores.values()) <= MAX_SCORE and min(report.scores.values()) > 0


# --------------------------------------------------------------------------- input errors and registry


def test_unusable_input_is_a_clear_value_error(rounds) -> None:
    now, before = rounds[1], rounds[0]
    name = sorted(now.updates[0].tensors)[0]
    bad_shape = {**now.updates[1].tensors, name: np.zeros((1, 2), np.float32)}
    with pytest.raises(ValueError, match="no updates"):
        checkable_scores([], [], None)
    with pytest.raises(ValueError, match=f"{name} has shape"):
        score(now, before, replaced(now, 1, bad_shape))
    with pytest.raises(ValueError, match="'s round r-1 update: .* has shape"):
        checkable_scores(now.updates, replaced(before, 0, bad_shape), before.merged)
    with pytest.raises(ValueError, match="merged update: .*shape"):
        checkable_scores(now.updates, before.updates, bad_shape)
    with pytest.raises(ValueError, match="tensor names"):
        score(now, before, replaced(now, 1, {"w": np.ones(3, np.float32)}))
    with pytest.raises(ValueError, match="more than one update"):
        score(now, before, now.updates + [now.updates[0]])
    with pytest.raises(ValueError, match="NaN"):
        score(now, before, replaced(now, 1, {**now.updates[1].tensors, name: now.updates[1].tensors[name] * np.nan}))


def test_registry() -> None:
    assert CONTRIBUTIONS["checkable"] is checkable_scores is contribution_by_name("checkable")
    with pytest.raises(ValueError, match="unknown contribution rule"):
        contribution_by_name("shapley")
