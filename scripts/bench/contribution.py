"""Checkable contribution scores (node.contribution) on real, honestly trained rounds, and attacks on them.

    .venv/bin/python -m scripts.bench.contribution [--quick] [--out reports/bench] [--seeds N] [--rounds R]

Rounds run in process with the nodes' own learners (node.learner, the launcher's configs), the
swarm's robust input scaling and the median merge: no libp2p, no chain. Per setting (UCI heart's
4 hospitals with mlp and logreg; breast cancer over 8 nodes, IID and Dirichlet 0.1) it measures:

- what honest updates look like to the flags: |cos| between concurrent updates, with other
  senders' round r-1 updates, with the round r-1 merged update, with the sender's own r-1 update,
  and norms relative to the round's median (the thresholds' margins come from these);
- honest rounds scored: how many honest updates were flagged (must be 0) or scored 0;
- attacks, one at a time in the last node's place (its honest update is what it would have sent):
  each attack's flag rate, and how often it scored below every honest update;
- one member's updates left out of the scores (the same training; as when it never serves or
  sends a copy): the largest loss of another member's share of the pool (the issue's bound is 10 %);
- every member in turn sending an attack in every round (an old update plus loud noise, a random
  vector, its work x2, its work sign-flipped): the honest members' largest loss of their share,
  the attacker's share against its honest one, and whether it ended below every honest member;
- heart, closed loop (what was sent is merged and trained on, as in a swarm): every member in turn
  sends a loud copy of each other member's previous update in turn, or its own work sign-flipped;
  the same three figures, and how many runs cost an honest member more than 10 %;
- heart: Switzerland's mean share, and what its update adds: accuracy and loss on Switzerland's
  test patients of the final swarm model trained with and without it.

Writes contribution.json and contribution.md into --out.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from node.attacks import add_noise
from node.contribution import (COPY_COS, FREE_RIDER_NORM, NORM_TOLERANCE, REDUNDANT_COS, PublicValidation,
                               checkable_scores)
from node.launcher import SwarmPlan
from node.learner import add
from node.merge import MergeRule, Update, rule_by_name
from node.preprocess import FeatureStats
from node.scoring import tensor_norm
from scripts.bench import harness as B
from scripts.bench.output import publish

SETTINGS: dict[str, SwarmPlan] = {
    "heart mlp": SwarmPlan(nodes=4, dataset="heart", model="mlp"),
    "heart logreg": SwarmPlan(nodes=4, dataset="heart", model="logreg"),
    "breast cancer iid mlp": SwarmPlan(nodes=8, dataset="breast_cancer", model="mlp"),
    "breast cancer dirichlet 0.1 mlp": SwarmPlan(nodes=8, dataset="breast_cancer", partition="dirichlet",
                                                 alpha=0.1, model="mlp"),
    "breast cancer dirichlet 0.1 logreg": SwarmPlan(nodes=8, dataset="breast_cancer", partition="dirichlet",
                                                    alpha=0.1, model="logreg"),
}
# Noise that brings a copy just under the copy threshold: the most an attacker keeps unflagged.
EVADING_COS = 0.998
# Noise far from the flag: an old update's direction kept, a residual (what the round r-1 vectors
# do not explain) as long as an honest one or longer.
LOUD_COS = (0.9, 0.7)


@dataclass(frozen=True)
class Round:
    start: dict[str, np.ndarray]  # the round's starting weights
    updates: list[Update]
    merged: dict[str, np.ndarray]


# What a closed-loop replay sends in place of the trained updates: (round number, the trained
# updates, the rounds so far) -> the updates the swarm merges and scores.
Rewrite = Callable[[int, list[Update], list["Round"]], list[Update]]


def honest_rounds(plan: SwarmPlan, rounds: int, rule: MergeRule, leave_out: str | None = None,
                  rewrite: Rewrite | None = None) -> tuple[list[B.NodeSetup], list[Round]]:
    """Train `rounds` rounds in process as the swarm would (robust scaling, every node from the
    merged model); returns the learners' set-ups and each round's updates and merged update.
    With `rewrite`, what it returns is what the swarm merges and trains on next: a closed loop."""
    setups = [s for s in B.node_setups(plan) if s.name != leave_out]
    stats = FeatureStats.robust_combine([s.learner.local_stats() for s in setups])
    for s in setups:
        s.learner.set_scaling(stats)
    weights = setups[0].learner.weights()
    out: list[Round] = []
    for r in range(1, rounds + 1):
        updates = B.local_updates(setups, weights, r)
        if rewrite is not None:
            updates = rewrite(r, updates, out)
        merged = rule.merge(updates)
        out.append(Round(weights, updates, merged))
        weights = add(weights, merged)
    for s in setups:
        s.learner.set_weights(weights)
    return setups, out


def with_noise(tensors: dict[str, np.ndarray], cos: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The tensors plus orthogonal Gaussian noise, so that the result's cosine with them is `cos`."""
    names = sorted(tensors)
    v = np.concatenate([tensors[k].astype(np.float64).ravel() for k in names])
    z = rng.standard_normal(v.size)
    z -= (z @ v) / (v @ v) * v
    z *= math.sqrt(v @ v) * math.sqrt(1 / cos**2 - 1) / math.sqrt(z @ z)
    out, at = {}, 0
    for k in names:
        size = tensors[k].size
        out[k] = (v[at:at + size] + z[at:at + size]).reshape(tensors[k].shape).astype(np.float32)
        at += size
    return out


def scaled(tensors: dict[str, np.ndarray], factor: float) -> dict[str, np.ndarray]:
    return {k: (v * np.float32(factor)).astype(np.float32) for k, v in tensors.items()}


def random_like(now: Round, shapes: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random vector as long as the median of the round's updates, in `shapes`' tensors."""
    median = float(np.median([tensor_norm(u.tensors) for u in now.updates]))
    size = sum(v.size for v in shapes.values())
    return {k: (rng.standard_normal(v.shape) * median / math.sqrt(size)).astype(np.float32) for k, v in shapes.items()}


def attacks(now: Round, before: Round, attacker: int, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """What the attacker sends instead of its honest update, per attack."""
    own = now.updates[attacker].tensors
    other = next(u for i, u in enumerate(before.updates) if i != attacker).tensors
    peer = now.updates[0].tensors
    return {
        "x100": scaled(own, 100.0),
        "sign flip": scaled(own, -1.0),
        "x1e-3": scaled(own, 1e-3),
        "zero": scaled(own, 0.0),
        "garbage (random, median norm)": random_like(now, own, rng),
        "stale: other's r-1 update": dict(other),
        "stale: other's r-1 update + noise": with_noise(other, EVADING_COS, rng),
        "stale: r-1 merged + noise": with_noise(before.merged, EVADING_COS, rng),
        f"stale: other's r-1 update + noise to cos {LOUD_COS[0]}": with_noise(other, LOUD_COS[0], rng),
        f"stale: r-1 merged + noise to cos {LOUD_COS[1]}": with_noise(before.merged, LOUD_COS[1], rng),
        "stale: own r-1 update": dict(before.updates[attacker].tensors),
        "stale: own r-1 update + noise": with_noise(before.updates[attacker].tensors, EVADING_COS, rng),
        "concurrent copy x0.5 (collusion)": scaled(peer, 0.5),
        "concurrent copy + noise (collusion)": with_noise(peer, EVADING_COS, rng),
    }


def _abs_cos(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    x = np.concatenate([a[k].astype(np.float64).ravel() for k in sorted(a)])
    y = np.concatenate([b[k].astype(np.float64).ravel() for k in sorted(b)])
    return abs(float(x @ y) / math.sqrt(float(x @ x) * float(y @ y)))


def geometry(rounds: list[Round]) -> dict[str, list[float]]:
    """The honest quantities the thresholds are set against (the quality measures come from the
    scores' own `measures`)."""
    g: dict[str, list[float]] = {k: [] for k in ("concurrent", "other_previous", "previous_merged", "own_previous",
                                                 "norm_ratio")}
    for r, now in enumerate(rounds):
        norms = [tensor_norm(u.tensors) for u in now.updates]
        g["norm_ratio"] += [n / float(np.median(norms)) for n in norms]
        for i, u in enumerate(now.updates):
            g["concurrent"] += [_abs_cos(u.tensors, o.tensors) for o in now.updates[i + 1:]]
            if r:
                before = rounds[r - 1]
                g["previous_merged"].append(_abs_cos(u.tensors, before.merged))
                for p in before.updates:
                    (g["own_previous"] if p.sender == u.sender else g["other_previous"]).append(
                        _abs_cos(u.tensors, p.tensors))
    return g


def public_validation(setups: list[B.NodeSetup]) -> tuple[Any, np.ndarray, np.ndarray]:
    """Every node's validation rows pooled: what a sponsor's published validation set stands for."""
    return (setups[0].learner.model, np.concatenate([s.learner.val.x for s in setups]),
            np.concatenate([s.learner.val.y for s in setups]))


def score_rounds(rounds: list[Round], seed: int,
                 validation: tuple[Any, np.ndarray, np.ndarray] | None = None) -> dict[str, Any]:
    """Honest scores of every round, and every attack in the last node's place from round 2 on."""
    rng = np.random.default_rng([seed, 2718])
    honest_shares: dict[str, list[int]] = {u.sender: [] for u in rounds[0].updates}
    honest_flags, honest_zero = 0, 0
    measured: dict[str, list[float]] = {"explained": [], "novelty": []}
    per_attack: dict[str, dict[str, Any]] = {}
    attacker = len(rounds[0].updates) - 1
    for r, now in enumerate(rounds):
        before = rounds[r - 1] if r else None
        public = PublicValidation(validation[0], now.start, validation[1], validation[2]) if validation else None
        report = checkable_scores(now.updates, before.updates if before else [],
                                  before.merged if before else None, starts=[now.start], validation=public)
        honest_flags += len(report.flags)
        honest_zero += sum(1 for v in report.scores.values() if v == 0)
        for s, v in report.scores.items():
            honest_shares[s].append(v)
        for m in report.measures.values():
            for k in measured:
                measured[k] += [m[k]] if k in m else []
        if before is None:
            continue
        for name, tensors in attacks(now, before, attacker, rng).items():
            sent = list(now.updates)
            bad = sent[attacker].sender
            sent[attacker] = Update(tensors, sent[attacker].samples, bad)
            rep = checkable_scores(sent, before.updates, before.merged, starts=[now.start], validation=public)
            # a concurrent copy's source colludes with the attacker: it is not among the honest
            colluder = now.updates[0].sender if name.startswith("concurrent") else None
            honest = [v for s, v in rep.scores.items() if s not in (bad, colluder)]
            row = per_attack.setdefault(name, {"rounds": 0, "flagged": 0, "below_every_honest": 0,
                                               "attacker_share": [], "honest_min_share": [],
                                               "honest_flagged_with_it": 0, "missed_rounds": []})
            row["rounds"] += 1
            row["flagged"] += bad in rep.flags
            row["honest_flagged_with_it"] += sum(1 for s in rep.flags if s not in (bad, colluder))
            # "below" also when both are 0: an honest update that scored 0 cannot be undercut
            below = rep.scores[bad] == 0 or rep.scores[bad] < min(honest, default=0)
            row["below_every_honest"] += below
            row["missed_rounds"] += [] if below else [r + 1]
            row["attacker_share"].append(rep.scores[bad])
            row["honest_min_share"].append(min(honest) if honest else 0)
    return {"honest_shares": honest_shares, "honest_flags": honest_flags, "honest_zero_scores": honest_zero,
            "honest_measures": measured, "attacks": per_attack}


def payout_shares(rounds: list[Round], missing: str | None = None) -> dict[str, float]:
    """Each sender's share of the scores summed over the rounds (how the pool is split), with
    `missing`'s updates left out of every round's scoring (as when it never serves, or sends a
    copy or nothing). As in the engine, round r is judged against round r-1's updates less the
    ones that round flagged."""
    totals: dict[str, int] = {u.sender: 0 for u in rounds[0].updates if u.sender != missing}
    previous: list[Update] = []
    for r, now in enumerate(rounds):
        current = [u for u in now.updates if u.sender != missing]
        report = checkable_scores(current, previous, rounds[r - 1].merged if r else None, starts=[now.start])
        previous = [u for u in current if u.sender not in report.flags]
        for who, v in report.scores.items():
            totals[who] = totals.get(who, 0) + v
    total = sum(totals.values())
    return {who: v / total if total else 0.0 for who, v in totals.items()}


def missing_member(rounds: list[Round]) -> dict[str, float]:
    """Per member left out of the scores: the largest loss (%) of another member's share against
    the run where every update is scored (the issue's bound: 10 %)."""
    full = payout_shares(rounds)
    out = {}
    for who in full:
        without = payout_shares(rounds, missing=who)
        out[who] = max((100.0 * (full[o] - without[o]) / full[o] for o in without if full[o] > 0), default=0.0)
    return out


# What a member sends instead of its work in every round of the replay (round 1 has no r-1 update
# to copy: a copier sends zeros there, as node.attacks.Copy does).
TURN_ATTACKS = ("other's r-1 update + noise to cos 0.9", "random vector (median norm)", "x2", "sign flip")


def _turn_attack(name: str, rounds: list[Round], r: int, attacker: int,
                 rng: np.random.Generator) -> dict[str, np.ndarray]:
    now = rounds[r]
    own = now.updates[attacker].tensors
    if name == "x2":
        return scaled(own, 2.0)
    if name == "sign flip":
        return scaled(own, -1.0)
    if name.startswith("random"):
        return random_like(now, own, rng)
    if r == 0:
        return scaled(own, 0.0)
    source = rounds[r - 1].updates[(attacker + 1) % len(now.updates)].tensors
    return with_noise(source, LOUD_COS[0], rng)


def every_member_attacking(rounds: list[Round], seed: int) -> dict[str, list[dict[str, float]]]:
    """Each member in turn sends an attack instead of its work in every round (the others' updates
    as trained): per attack and attacker, the largest loss (%) of an honest member's share of the
    pool against the all-honest scores, the attacker's share against its own honest share (%),
    and whether it ended below every honest member (the issue's bound: a loss of at most 10 %, and
    every dishonest member below every honest one)."""
    full = payout_shares(rounds)
    out: dict[str, list[dict[str, float]]] = {name: [] for name in TURN_ATTACKS}
    for attacker, bad in enumerate(u.sender for u in rounds[0].updates):
        for name in TURN_ATTACKS:
            rng = np.random.default_rng([seed, attacker, TURN_ATTACKS.index(name)])
            replayed = [Round(now.start, [Update(_turn_attack(name, rounds, r, attacker, rng), u.samples, u.sender)
                                          if i == attacker else u for i, u in enumerate(now.updates)], now.merged)
                        for r, now in enumerate(rounds)]
            out[name].append(_against_honest(full, payout_shares(replayed), bad))
    return out


def _against_honest(full: dict[str, float], shares: dict[str, float], bad: str) -> dict[str, Any]:
    """The honest members' largest loss of their share (%), the attacker's share against its own
    honest one (%), and whether it ended below every honest member."""
    honest = [w for w in full if w != bad]
    return {"attacker": bad,
            "largest_honest_loss": max(100.0 * (full[w] - shares[w]) / full[w] for w in honest if full[w] > 0),
            "attacker_vs_honest_self": 100.0 * (shares[bad] - full[bad]) / full[bad] if full[bad] > 0 else 0.0,
            "below_every_honest": float(all(shares[bad] < shares[w] for w in honest))}


def _replaced(updates: list[Update], who: str, tensors: dict[str, np.ndarray]) -> list[Update]:
    return [Update(tensors, u.samples, u.sender) if u.sender == who else u for u in updates]


def loud_copier(copier: str, source: str, seed: int) -> Rewrite:
    """`copier` trains nothing and sends `source`'s previous update plus Gaussian noise at half each
    tensor's RMS, as `node.attacks.NoisyCopy` sends it (|cos| about 0.9; zeros in round 1)."""
    def rewrite(r: int, updates: list[Update], so_far: list[Round]) -> list[Update]:
        if not so_far:
            return _replaced(updates, copier, scaled(next(u for u in updates if u.sender == copier).tensors, 0.0))
        old = next(u for u in so_far[-1].updates if u.sender == source).tensors
        return _replaced(updates, copier, add_noise(old, 0.5, (seed, r, 7)))
    return rewrite


def sign_flipper(member: str) -> Rewrite:
    """`member` sends its own work sign-flipped."""
    def rewrite(r: int, updates: list[Update], so_far: list[Round]) -> list[Update]:
        return _replaced(updates, member, scaled(next(u for u in updates if u.sender == member).tensors, -1.0))
    return rewrite


# Attacks replayed in a closed loop (merged and trained on), on settings of at most this many nodes
CLOSED_LOOP = ("loud copy of each other member in turn", "sign flip")
CLOSED_LOOP_NODES = 4


def closed_loop(plan: SwarmPlan, honest: list[Round], rule: MergeRule, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Each member in turn attacks in every round, and the swarm merges and trains on what it sent
    (the incentive benchmark's setting without libp2p and the chain): a loud copy of each other
    member's previous update in turn, and its own work sign-flipped; against `honest`, the same
    plan's rounds with everybody behaving."""
    full, rounds = payout_shares(honest), len(honest)
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in CLOSED_LOOP}
    for bad in full:
        for source in (w for w in full if w != bad):
            shares = payout_shares(honest_rounds(plan, rounds, rule, rewrite=loud_copier(bad, source, seed))[1])
            out[CLOSED_LOOP[0]].append({**_against_honest(full, shares, bad), "source": source})
        shares = payout_shares(honest_rounds(plan, rounds, rule, rewrite=sign_flipper(bad))[1])
        out[CLOSED_LOOP[1]].append(_against_honest(full, shares, bad))
    return out


def switzerland(plan: SwarmPlan, full: list[B.NodeSetup], rounds: int, rule: MergeRule) -> dict[str, float]:
    """Test accuracy and loss on Switzerland's patients of the final model of the swarm `full`
    (trained `rounds` rounds) and of the same swarm trained without Switzerland."""
    from node.training import evaluate

    out = {}
    swiss = next(s for s in full if s.name == "switzerland")
    without, _ = honest_rounds(plan, rounds, rule, leave_out="switzerland")
    for label, setups in (("with", full), ("without", without)):
        learner = setups[0].learner
        # Switzerland's patients, scaled by the swarm that trained the model (as its node would be)
        x = learner.scaler.transform(swiss.learner.data.test.x)
        m = evaluate(learner.model, x, swiss.learner.data.test.y)
        out[f"accuracy_{label}"], out[f"loss_{label}"] = m.accuracy, m.loss
    out["test_rows"] = len(swiss.learner.data.test.y)
    return out


def run(setting: str, plan: SwarmPlan, seeds: list[int], rounds: int) -> dict[str, Any]:
    rule = rule_by_name(plan.merge)
    result: dict[str, Any] = {"geometry": {}, "seeds": []}
    for seed in seeds:
        seeded = replace(plan, seed=seed)
        setups, trained = honest_rounds(seeded, rounds, rule)
        for k, v in geometry(trained).items():
            result["geometry"].setdefault(k, []).extend(v)
        row = score_rounds(trained, seed)
        for k, v in row["honest_measures"].items():
            result["geometry"].setdefault(k, []).extend(v)
        row["with_validation"] = score_rounds(trained, seed, public_validation(setups))
        row["missing_member"] = missing_member(trained)
        row["every_member_attacking"] = every_member_attacking(trained, seed)
        if plan.nodes <= CLOSED_LOOP_NODES:
            row["closed_loop"] = closed_loop(seeded, trained, rule, seed)
        if plan.dataset == "heart":
            row["switzerland"] = switzerland(seeded, setups, rounds, rule)
        result["seeds"].append(row)
        B.say(f"{setting} seed {seed}: {row['honest_flags']} honest flags, {row['honest_zero_scores']} honest zeros")
    return result


VARIANTS = ("updates only", "with public validation")


def _score_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Honest scores and attack outcomes of one scoring variant, over seeds."""
    attacks_: dict[str, dict[str, Any]] = {}
    for row in rows:
        for name, a in row["attacks"].items():
            s = attacks_.setdefault(name, {"rounds": 0, "flagged": 0, "below_every_honest": 0, "shares": [],
                                           "honest_min": [], "honest_flagged_with_it": 0, "missed_rounds": {}})
            for k in ("rounds", "flagged", "below_every_honest", "honest_flagged_with_it"):
                s[k] += a[k]
            s["shares"] += a["attacker_share"]
            s["honest_min"] += a["honest_min_share"]
            for r in a["missed_rounds"]:
                s["missed_rounds"][r] = s["missed_rounds"].get(r, 0) + 1
    for s in attacks_.values():
        s["mean_share"] = float(np.mean(s.pop("shares")))
        s["mean_honest_min"] = float(np.mean(s.pop("honest_min")))
    shares: dict[str, list[int]] = {}
    for row in rows:
        for who, v in row["honest_shares"].items():
            shares.setdefault(who, []).extend(v)
    return {"attacks": attacks_,
            "honest": {"flags": sum(r["honest_flags"] for r in rows),
                       "zero_scores": sum(r["honest_zero_scores"] for r in rows),
                       "scored": sum(len(v) for v in shares.values()),
                       "mean_share": {w: float(np.mean(v)) for w, v in shares.items()}}}


def _turns_summary(ts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"largest_honest_loss_mean": float(np.mean([t["largest_honest_loss"] for t in ts])),
            "largest_honest_loss_max": max(t["largest_honest_loss"] for t in ts),
            "over_10_percent": sum(t["largest_honest_loss"] > 10.0 for t in ts),
            "attacker_vs_honest_self_mean": float(np.mean([t["attacker_vs_honest_self"] for t in ts])),
            "attacker_vs_honest_self_max": max(t["attacker_vs_honest_self"] for t in ts),
            "below_every_honest": int(sum(t["below_every_honest"] for t in ts)), "runs": len(ts)}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    seeds = result["seeds"]
    out = {"geometry": {k: {"min": min(v), "median": float(np.median(v)), "p99": float(np.quantile(v, 0.99)),
                            "max": max(v)} for k, v in result["geometry"].items() if v},
           VARIANTS[0]: _score_summary(seeds), VARIANTS[1]: _score_summary([r["with_validation"] for r in seeds])}
    # the largest loss of any member's share, over seeds, when one member's updates are not scored
    out["missing_member"] = {who: max(r["missing_member"][who] for r in seeds) for who in seeds[0]["missing_member"]}
    for key, names in (("every_member_attacking", TURN_ATTACKS), ("closed_loop", CLOSED_LOOP)):
        if key in seeds[0]:
            out[key] = {name: _turns_summary([t for r in seeds for t in r[key][name]]) for name in names}
    if "switzerland" in seeds[0]:
        out["switzerland"] = {k: B.mean_std([r["switzerland"][k] for r in seeds]) for k in seeds[0]["switzerland"]}
    return out


def markdown(summaries: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = ["# Checkable contribution scores", "",
             f"Command: `{meta['command']}`; {meta['seconds']:.0f} s. {meta['setting']}.", "",
             f"Thresholds: copy |cos| >= {COPY_COS}, concurrent redundancy from |cos| {REDUNDANT_COS}, free rider "
             f"norm <= {FREE_RIDER_NORM} x median, norm tolerance {NORM_TOLERANCE} x median. Attacks that evade "
             f"the copy flag add noise down to cos {EVADING_COS}.", "",
             "## Honest geometry (|cos|; norm / round median; share explained by the other updates; novelty)", "",
             "| setting | quantity | min | median | p99 | max |", "|---|---|---|---|---|---|"]
    for setting, s in summaries.items():
        for k, g in s["geometry"].items():
            lines.append(f"| {setting} | {k} | {g['min']:.4f} | {g['median']:.3f} | {g['p99']:.4f} | {g['max']:.4f} |")
    lines += ["", "## Honest scores", "", "| setting | scoring | honest updates scored | flagged | scored 0 | "
              "mean share per node |", "|---|---|---|---|---|---|"]
    for setting, s in summaries.items():
        for variant in VARIANTS:
            h = s[variant]["honest"]
            shares = ", ".join(f"{w} {v:.0f}" for w, v in h["mean_share"].items())
            lines.append(f"| {setting} | {variant} | {h['scored']} | {h['flags']} | {h['zero_scores']} | {shares} |")
    lines += ["", "## Attacks (in the last node's place, rounds 2..R)", "",
              "| setting | scoring | attack | flagged | 0 or below every honest | mean attacker share | "
              "mean lowest honest share | honest flagged with it | rounds missed (round: count) |",
              "|---|---|---|---|---|---|---|---|---|"]
    for setting, s in summaries.items():
        for variant in VARIANTS:
            for name, a in s[variant]["attacks"].items():
                lines.append(f"| {setting} | {variant} | {name} | {a['flagged']}/{a['rounds']} | "
                             f"{a['below_every_honest']}/{a['rounds']} | {a['mean_share']:.0f} | "
                             f"{a['mean_honest_min']:.0f} | {a['honest_flagged_with_it']} | "
                             f"{' '.join(f'{r}:{c}' for r, c in sorted(a['missed_rounds'].items())) or '-'} |")
    lines += ["", "## One member's updates not scored (same training): the others' largest share loss", "",
              "| setting | missing member: largest loss of another member's share over seeds (%) |", "|---|---|"]
    for setting, s in summaries.items():
        lines.append(f"| {setting} | " + ", ".join(f"{w} {v:.1f}" for w, v in s["missing_member"].items()) + " |")
    for key, title in (("every_member_attacking", "Every member in turn sends an attack in every round (payouts "
                                                   "over the rounds; the others' updates as trained)"),
                       ("closed_loop", "Closed loop: every member in turn attacks in every round, and the swarm "
                                       "merges and trains on what it sent")):
        lines += ["", f"## {title}", "",
                  "| setting | attack | largest honest loss, mean / worst (%) | runs above 10 % | attacker vs its "
                  "honest payout, mean / best (%) | attacker below every honest (runs) |", "|---|---|---|---|---|---|"]
        for setting, s in summaries.items():
            for name, t in s.get(key, {}).items():
                lines.append(f"| {setting} | {name} | {t['largest_honest_loss_mean']:.1f} / "
                             f"{t['largest_honest_loss_max']:.1f} | {t['over_10_percent']}/{t['runs']} | "
                             f"{t['attacker_vs_honest_self_mean']:.1f} / {t['attacker_vs_honest_self_max']:.1f} | "
                             f"{t['below_every_honest']}/{t['runs']} |")
    swiss = [(k, s["switzerland"]) for k, s in summaries.items() if "switzerland" in s]
    if swiss:
        lines += ["", "## Switzerland: what leaving its update out costs its own patients", "",
                  "| setting | accuracy with | accuracy without | loss with | loss without |", "|---|---|---|---|---|"]
        for k, w in swiss:
            lines.append(f"| {k} | {B.fmt_ms(w['accuracy_with'])} | {B.fmt_ms(w['accuracy_without'])} | "
                         f"{B.fmt_ms(w['loss_with'], 1, 3)} | {B.fmt_ms(w['loss_without'], 1, 3)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/contribution", "seconds-long smoke run: heart mlp, 1 seed, 3 rounds")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=10)
    args = ap.parse_args(argv)
    B.quiet()
    import torch

    torch.set_num_threads(1)
    started = time.monotonic()
    settings = {"heart mlp": SETTINGS["heart mlp"]} if args.quick else SETTINGS
    seeds, rounds = ([0], 3) if args.quick else (list(range(args.seeds)), args.rounds)
    results = {name: run(name, plan, seeds, rounds) for name, plan in settings.items()}
    summaries = {name: summarise(r) for name, r in results.items()}
    meta = {"command": "python -m scripts.bench.contribution"
                       + (" --quick" if args.quick else f" --seeds {args.seeds} --rounds {args.rounds}"),
            "seconds": time.monotonic() - started, "machine": B.machine(), "seeds": seeds,
            "setting": f"{rounds} rounds x 1 local epoch, median merge, in process; seeds {seeds}"}
    payload: dict[str, Any] = {"meta": meta, "summary": summaries,
                               "per_seed": {k: r["seeds"] for k, r in results.items()},
                               "thresholds": {"copy_cos": COPY_COS, "free_rider_norm": FREE_RIDER_NORM,
                                              "norm_tolerance": NORM_TOLERANCE, "evading_cos": EVADING_COS}}
    text = markdown(summaries, meta)
    publish(Path(args.out), "contribution", payload, text)
    print(text)
    B.say(f"contribution benchmark done in {meta['seconds']:.0f}s: {args.out}/contribution.json, contribution.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
