"""Learning quality on real hospital files: swarm vs central training vs each hospital alone.

    .venv/bin/python -m scripts.bench.quality [--quick] [--out reports/bench] [--arms default,...]

Runs the swarm's learning in one process: the nodes' real `Learner`s (data, validation share,
local training, FedProx, learning-rate schedule), the swarm's input scaling from shared sums and
counts (`swarm.statistics`, node.preprocess.STATISTICS), the real merge rule and the real swarm optimiser
(`node.swarmopt`), round after round, exactly as every node of a swarm computes them; only the
network and the chain are left out (they do not change the numbers: every honest node merges the
same updates). The end-to-end runs in tests/e2e and scripts/bench/learning.py cover those.

- Heart (node/data/heart_split, the FLamby-style split: 4 hospitals, 486 train / 254 test rows):
  accuracy and ROC AUC on all 254 test rows pooled (each hospital's rows scored by the model),
  10 and 50 rounds, 3 seeds. Central: one model on every hospital's training rows (minus the same
  validation rows), scaled by their own statistics, for rounds x epochs epochs. Alone: each
  hospital's model on its own rows, scored on all pooled test rows.
- Breast cancer (Wisconsin), Dirichlet alpha 0.1 over 8 nodes, 5 seeds: accuracy of the swarm's
  model on every node's test rows pooled.

Choosing defaults: arms are compared on validation rows only (the nodes' held-back validation
shares, pooled); test rows are reported, never used to pick. How far training has converged is
measured on the training rows alone: for logreg (convex) the pooled training objective (log loss
over every node's fit rows, plus weight_decay/2 ||w||^2, what central training minimises) minus its
exact minimum (`optimum`, full-batch L-BFGS), for the swarm after R rounds and central after R x
epochs epochs; the exact minimum's validation loss shows which objective (weight decay) generalises,
and that of a logreg also quadratic in the continuous inputs (`with_squares`) whether a model
nonlinear in them would.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from node.config import SETTINGS_FILE, load_settings
from scripts.bench import harness as B
from scripts.bench.output import publish

HEART_SPLIT = Path(__file__).resolve().parents[2] / "node" / "data" / "heart_split"
# The heart files' settings, chosen on validation rows only (README "The heart files' settings"):
# the folder's own settings file, which `medswarm swarm --data node/data/heart_split` applies by
# itself; arm "heart" here, less REFIT: a run with the file trains on every training row, but arms
# are compared on validation rows, so here they keep them.
REFIT = "data.validation_fraction="
SHIPPED_HEART_SETTINGS: tuple[str, ...] = load_settings(HEART_SPLIT / SETTINGS_FILE)
HEART_SETTINGS: tuple[str, ...] = tuple(s for s in SHIPPED_HEART_SETTINGS if not s.startswith(REFIT))
# An arm is "+"-joined parts (e.g. "mean+cosine+prox"), each some node config overrides on top
# of the shipped defaults; "default" is the defaults alone.
PARTS: dict[str, tuple[str, ...]] = {
    "default": (),
    "fedavg": ("swarm.optimizer=none", "training.lr_schedule=constant", "training.prox_mu=0"),
    "mean": ("swarm.merge=mean",), "pooledstats": ("swarm.statistics=pooled",), "median": ("swarm.merge=median",), "trimmed": ("swarm.merge=trimmed",),
    "constant": ("training.lr_schedule=constant",), "cosine": ("training.lr_schedule=cosine",),
    "prox": ("training.prox_mu=0.1",), "prox1": ("training.prox_mu=1.0",), "noprox": ("training.prox_mu=0",),
    "plain": ("swarm.optimizer=none",), "momentum": ("swarm.optimizer=momentum",),
    "adam": ("swarm.optimizer=adam",), "yogi": ("swarm.optimizer=yogi",),
    "lsgd": ("training.optimizer=sgd",), "ladam": ("training.optimizer=adam",),
    "logreg": ("model.kind=logreg",), "mlp": ("model.kind=mlp",),
    "last": ("swarm.final_model=last",), "bestval": ("swarm.final_model=best_val",),
    # heart split: a cholesterol of 0 (all of Switzerland's, a quarter of VA's) read as missing,
    # and a 0/1 column saying so
    "chol0": ('data.missing_values=["chol=0"]',), "cholind": ('data.missing_indicators=["chol"]',),
    "heart": HEART_SETTINGS,
}
# A part made of one of these prefixes and a number sets that setting: "lr0.1", "wd0.001", "ep5".
VALUED: dict[str, str] = {
    "slr": "swarm.server_lr", "lr": "training.lr", "wd": "training.weight_decay", "ep": "training.epochs",
    "bs": "training.batch_size", "st": "training.local_steps", "vf": "data.validation_fraction", "h": "model.hidden",
}


def arm_overrides(arm: str) -> tuple[str, ...]:
    out: list[str] = []
    for part in arm.split("+"):
        prefix = part.rstrip("0123456789.")
        if part in PARTS:
            out.extend(PARTS[part])
        elif prefix in VALUED and part[len(prefix):] and part[len(prefix):].replace(".", "", 1).isdigit():
            out.append(f"{VALUED[prefix]}={part[len(prefix):]}")
        else:
            raise ValueError(f"unknown arm part {part!r}; known: {', '.join(PARTS)}, or "
                             f"{', '.join(VALUED)} followed by a number")
    return tuple(out)


def _pred(learner, weights, x: np.ndarray) -> np.ndarray:
    """P(class 1) of `weights` on raw rows x, scaled with the learner's (swarm) scaler."""
    import torch

    learner.set_weights(weights)
    with torch.no_grad():
        logits = learner.model(torch.from_numpy(learner.scaler.transform(x)))
    return torch.softmax(logits.double(), dim=1)[:, 1].numpy()


def _score(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from node.training import roc_auc

    eps = 1e-7
    loss = float(-np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)))
    return {"accuracy": float(np.mean((p >= 0.5) == y)), "auc": roc_auc(y, p), "loss": loss}


def _penalty(weights: dict[str, np.ndarray], weight_decay: float) -> float:
    """weight_decay/2 ||w||^2: the term torch's SGD weight decay adds to the objective (every tensor)."""
    return 0.5 * weight_decay * float(sum(np.square(np.asarray(w, np.float64)).sum() for w in weights.values()))


def objective(learner, weights, x: np.ndarray, y: np.ndarray, weight_decay: float) -> float:
    """The training objective on raw rows: mean log loss plus the weight-decay term."""
    return _score(y, _pred(learner, weights, x))["loss"] + _penalty(weights, weight_decay)


def optimum(learner, x: np.ndarray, y: np.ndarray, weight_decay: float) -> dict[str, np.ndarray]:
    """The exact minimiser of the training objective on raw rows x (scaled by the learner's scaler),
    by full-batch L-BFGS in float64, from the learner's model shape: meaningful for a convex
    model (logreg) only."""
    return _minimise(learner.fresh_model(), learner.scaler.transform(x), y, weight_decay)


def _minimise(model, x: np.ndarray, y: np.ndarray, weight_decay: float) -> dict[str, np.ndarray]:
    """`model` (made float64 and trained in place) at the minimum of cross-entropy + weight_decay/2
    ||params||^2 on scaled rows x; its parameters as float32 arrays."""
    import torch

    model = model.double()
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=2000, tolerance_grad=1e-10,
                            tolerance_change=1e-14, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xt), yt)
        loss = loss + 0.5 * weight_decay * sum((p ** 2).sum() for p in model.parameters())
        loss.backward()
        return loss

    opt.step(closure)
    return {k: v.detach().float().numpy() for k, v in model.state_dict().items()}


def with_squares(learner, fit_x: np.ndarray, fit_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
                 weight_decay: float) -> float:
    """Pooled validation loss of the exact optimum of a logreg that is also quadratic in the continuous
    inputs (more than two distinct values in the fit rows; not the one-hot and 0/1 columns): the scaled
    inputs plus the squares of the continuous ones. Whether a model nonlinear in them would generalise
    better, without SGD noise; validation rows only."""
    import torch

    from node.models import build_model

    continuous = [j for j in range(fit_x.shape[1]) if len(np.unique(fit_x[~np.isnan(fit_x[:, j]), j])) > 2]

    def expand(x: np.ndarray) -> np.ndarray:
        z = learner.scaler.transform(x)
        return np.concatenate([z, z[:, continuous] ** 2], axis=1)

    model = build_model("logreg", fit_x.shape[1] + len(continuous), 2)
    _minimise(model, expand(fit_x), fit_y, weight_decay)  # trains `model` itself, in float64
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(expand(val_x)).double()), dim=1)[:, 1].numpy()
    return _score(val_y, p)["loss"]


def swarm(plan: B.SwarmPlan, rounds: int) -> dict[str, Any]:
    """The swarm's model after each round, scored on pooled validation and pooled test rows."""
    from node.merge import rule_by_name
    from node.preprocess import STATISTICS, FeatureStats
    from node.swarmopt import optimizer_by_name

    setups = B.node_setups(replace(plan, rounds=rounds))
    learners = [s.learner for s in setups]
    config = setups[0].config
    # what every node computes from the float32 statistics blobs it receives
    parts = [FeatureStats.from_tensors(l.local_stats().to_tensors()) for l in learners]
    stats = STATISTICS[config.swarm.statistics](parts)
    for l in learners:
        l.set_scaling(stats)
    rule = rule_by_name(config.swarm.merge)
    opt = optimizer_by_name(config.swarm.optimizer, learners[0].shapes, config.swarm.server_lr)
    weights = learners[0].weights()
    val_x = np.concatenate([l.val_rows.x for l in learners])
    val_y = np.concatenate([l.val_rows.y for l in learners])
    test_x = np.concatenate([l.data.test.x for l in learners])
    test_y = np.concatenate([l.data.test.y for l in learners])
    fit_x = np.concatenate([l.fit_rows.x for l in learners])
    fit_y = np.concatenate([l.fit_rows.y for l in learners])
    decay = config.training.weight_decay
    best = optimum(learners[0], fit_x, fit_y, decay) if config.model.kind == "logreg" else None
    floor = objective(learners[0], best, fit_x, fit_y, decay) if best else math.nan
    # Two seeded halves of the pooled validation rows: the final-model rule is judged by choosing
    # on one half and scoring on the other (both ways), so it is never scored on what chose it.
    halves = np.random.default_rng(plan.seed).permutation(len(val_y)) % 2
    curve = []
    for r in range(1, rounds + 1):
        weights = opt.step(weights, rule.merge(B.local_updates(setups, weights, r)))
        p_val = _pred(learners[0], weights, val_x)
        curve.append({"round": r, "val": _score(val_y, p_val),
                      "val_halves": [_score(val_y[halves == h], p_val[halves == h])["loss"] for h in (0, 1)],
                      "test": _score(test_y, _pred(learners[0], weights, test_x)),
                      "gap": objective(learners[0], weights, fit_x, fit_y, decay) - floor})
    chosen = selected(curve)
    final = {**curve[-1], **chosen} if config.swarm.final_model == "best_val" else curve[-1]
    exact = {"val": _score(val_y, _pred(learners[0], best, val_x))["loss"],
             "val_squares": with_squares(learners[0], fit_x, fit_y, val_x, val_y, decay)} if best else {}
    return {"final": final, "curve": curve, "selected": chosen, "optimum": exact}


def _moving(window: int):
    def rule(losses: np.ndarray) -> int:
        return int(np.argmin([losses[max(0, i - window + 1):i + 1].mean() for i in range(len(losses))]))
    return rule


def _margin(margin: float):
    def rule(losses: np.ndarray) -> int:
        best = int(np.argmin(losses))
        return best if losses[best] < losses[-1] - margin else len(losses) - 1
    return rule


# Final-model rules compared on validation rows (index of the chosen round's model, from the
# rounds' validation losses): keep the last; the lowest (node.selection's best_val); less noisy
# variants of it.
FINAL_RULES: dict[str, Any] = {
    "last": lambda losses: len(losses) - 1,
    "best_val": lambda losses: int(np.argmin(losses)),
    "moving3": _moving(3), "moving5": _moving(5),
    "margin0.005": _margin(0.005), "margin0.01": _margin(0.01),
    "second_half": lambda losses: len(losses) // 2 + int(np.argmin(losses[len(losses) // 2:])),
}


def selected(curve: list[dict[str, Any]]) -> dict[str, Any]:
    """What `swarm.final_model = "best_val"` ends with: of the rounds' models, the one of lowest
    pooled validation loss (node.selection).
    `held_out_val`: that rule against keeping the last model, each chosen on one validation half and
    scored on the other, mean of both ways (validation rows only: what the default is chosen on);
    `held_out_rules`: the same for every rule of FINAL_RULES."""
    best = min(curve, key=lambda c: c["val"]["loss"])
    held = {}
    for name, rule in FINAL_RULES.items():
        scores = []
        for h in (0, 1):
            pick = rule(np.array([c["val_halves"][h] for c in curve]))
            scores.append(curve[pick]["val_halves"][1 - h])
        held[name] = float(np.mean(scores))
    return {"round": best["round"], "test": best["test"], "val": best["val"],
            "held_out_val": held["best_val"], "held_out_val_last": held["last"], "held_out_rules": held}


def central_and_alone(plan: B.SwarmPlan, rounds: int) -> dict[str, Any]:
    from node.models import build_model
    from node.preprocess import FeatureStats, Scaler
    from node.training import train_local

    import torch

    setups = B.node_setups(replace(plan, rounds=rounds))
    c = setups[0].config
    t = c.training
    epochs = rounds * t.epochs
    test_x = np.concatenate([s.learner.data.test.x for s in setups])
    test_y = np.concatenate([s.learner.data.test.y for s in setups])

    def fit(x: np.ndarray, y: np.ndarray) -> tuple[dict[str, float], Scaler, Any]:
        scaler = Scaler.from_stats(FeatureStats.of(x))
        model = build_model(c.model.kind, x.shape[1], 2, hidden=c.model.hidden, seed=c.swarm.seed)
        train_local(model, scaler.transform(x), y, epochs=epochs, batch_size=t.batch_size, lr=t.lr, seed=t.seed,
                    optimizer=t.optimizer, weight_decay=t.weight_decay)
        with torch.no_grad():
            p = torch.softmax(model(torch.from_numpy(scaler.transform(test_x))).double(), 1)[:, 1].numpy()
        return _score(test_y, p), scaler, model

    fit_x = np.concatenate([s.learner.fit_rows.x for s in setups])
    fit_y = np.concatenate([s.learner.fit_rows.y for s in setups])
    central, scaler, model = fit(fit_x, fit_y)
    if c.model.kind == "logreg":  # its training objective above the exact minimum (same scaling: pooled rows)
        learner = setups[0].learner
        learner.set_scaling(FeatureStats.of(fit_x))
        trained = {k: v.detach().numpy() for k, v in model.state_dict().items()}
        central["gap"] = (objective(learner, trained, fit_x, fit_y, t.weight_decay)
                          - objective(learner, optimum(learner, fit_x, fit_y, t.weight_decay), fit_x, fit_y,
                                      t.weight_decay))
    alone = {s.name: fit(s.learner.fit_rows.x, s.learner.fit_rows.y)[0] for s in setups}
    return {"central": central, "alone": alone}


def heart_plan(seed: int, model: str, overrides: tuple[str, ...], folder: Path = HEART_SPLIT) -> B.SwarmPlan:
    """The hospitals of `folder` (default: the heart split) as a swarm plan."""
    from node.datadir import read_data_dir

    data = read_data_dir(folder)
    return B.SwarmPlan(nodes=len(data.hospitals), data=data, model=model, seed=seed, out=Path("/tmp/quality"),
                       node_overrides=overrides)


def bc_plan(seed: int, model: str, overrides: tuple[str, ...]) -> B.SwarmPlan:
    return B.SwarmPlan(nodes=8, dataset="breast_cancer", partition="dirichlet", alpha=0.1, model=model, seed=seed,
                       out=Path("/tmp/quality"), node_overrides=overrides)


def run(arms: list[str], models: list[str], rounds_list: list[int], seeds: list[int], bc_seeds: list[int],
        bc_rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {"heart": {}, "breast_cancer": {}}
    for model in models:
        for rounds in rounds_list if seeds else []:
            key = f"{model} {rounds} rounds"
            cell = results["heart"][key] = {"baselines": [], "arms": {a: [] for a in arms}}
            for seed in seeds:
                cell["baselines"].append(central_and_alone(heart_plan(seed, model, ()), rounds))
                for arm in arms:
                    out = swarm(heart_plan(seed, model, arm_overrides(arm)), rounds)
                    # central training with the arm's own inputs and settings: what the swarm converges to
                    out["central"] = central_and_alone(heart_plan(seed, model, arm_overrides(arm)), rounds)["central"]
                    cell["arms"][arm].append(out)
                    B.say(f"heart {key} seed {seed} {arm}: test acc {out['final']['test']['accuracy']:.3f} "
                          f"auc {out['final']['test']['auc']:.3f} (val loss {out['final']['val']['loss']:.3f}); "
                          f"central {cell['baselines'][-1]['central']['accuracy']:.3f}")
        if not bc_seeds:
            continue
        key = f"{model} {bc_rounds} rounds"
        cell = results["breast_cancer"][key] = {a: [] for a in arms}
        for seed in bc_seeds:
            for arm in arms:
                out = swarm(bc_plan(seed, model, arm_overrides(arm)), bc_rounds)
                cell[arm].append(out)
                B.say(f"breast cancer {key} seed {seed} {arm}: test acc {out['final']['test']['accuracy']:.3f}")
    return results


def _ms(values: list[float]) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return f"{100 * np.mean(vals):.1f} ± {100 * np.std(vals):.1f}" if vals else "n/a"


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = ["# Learning quality on hospital files", "",
             f"Command: `{meta['command']}`; {meta['seconds']:.0f} s. Mean ± std over seeds, percent.", "",
             "## Heart (node/data/heart_split), all 254 test rows pooled", "",
             "The swarm's final model follows the arm's `swarm.final_model`. \"last acc\" / \"best-val acc\": the "
             "last round's model and the lowest-validation-loss one (`best_val`); \"held-out val\": each rule "
             "choosing on one half of the validation rows, scored (loss) on the other (validation rows only).", "",
             "| model, rounds | arm | swarm acc | swarm AUC | min acc over rounds (2nd half) | val loss | "
             "last acc | best-val acc (round) | held-out val loss last / best-val | "
             "central acc | central AUC | alone acc (mean of 4) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, cell in results["heart"].items():
        central = [b["central"]["accuracy"] for b in cell["baselines"]]
        central_auc = [b["central"]["auc"] for b in cell["baselines"]]
        alone = [float(np.mean([v["accuracy"] for v in b["alone"].values()])) for b in cell["baselines"]]
        for arm, outs in cell["arms"].items():
            half = [min(c["test"]["accuracy"] for c in o["curve"][len(o["curve"]) // 2:]) for o in outs]
            lines.append(f"| {key} | {arm} | {_ms([o['final']['test']['accuracy'] for o in outs])} | "
                         f"{_ms([o['final']['test']['auc'] for o in outs])} | {_ms(half)} | "
                         f"{np.mean([o['final']['val']['loss'] for o in outs]):.3f} | "
                         f"{_ms([o['curve'][-1]['test']['accuracy'] for o in outs])} | "
                         f"{_ms([o['selected']['test']['accuracy'] for o in outs])} "
                         f"({', '.join(str(o['selected']['round']) for o in outs)}) | "
                         f"{np.mean([o['selected']['held_out_val_last'] for o in outs]):.4f} / "
                         f"{np.mean([o['selected']['held_out_val'] for o in outs]):.4f} | {_ms(central)} | "
                         f"{_ms(central_auc)} | {_ms(alone)} |")
    lines += ["", "## Convergence on the heart training rows (logreg)", "",
              "Training objective (pooled log loss on every node's fit rows + weight_decay/2 ||w||^2) above its "
              "exact minimum, mean over seeds: the swarm's last model after R rounds, central training with the "
              "arm's inputs and settings after R x epochs epochs; the exact minimum's pooled validation loss (which "
              "objective generalises) next to the last model's, and that of the exact minimum of a logreg also "
              "quadratic in the continuous inputs (`with_squares`). Training and validation rows only; central's test "
              "accuracy (same settings) for reference.", "",
              "| model, rounds | arm | swarm gap | central gap | val loss: last model / exact minimum | "
              "val loss: exact minimum with squares | central acc (same settings) |", "|---|---|---|---|---|---|---|"]
    for key, cell in results["heart"].items():
        for arm, outs in cell["arms"].items():
            if not outs[0].get("optimum"):
                continue
            lines.append(f"| {key} | {arm} | {np.mean([o['curve'][-1]['gap'] for o in outs]):.4f} | "
                         f"{np.mean([o['central']['gap'] for o in outs]):.4f} | "
                         f"{np.mean([o['final']['val']['loss'] for o in outs]):.4f} / "
                         f"{np.mean([o['optimum']['val'] for o in outs]):.4f} | "
                         f"{np.mean([o['optimum']['val_squares'] for o in outs]):.4f} | "
                         f"{_ms([o['central']['accuracy'] for o in outs])} |")
    lines += ["", "## Final-model rules on the heart cells above (held-out validation loss)", "",
              "Mean over cells (each the mean over its seeds); \"lower than last\": in how many cells.", "",
              "| rule | held-out val loss | lower than last |", "|---|---|---|"]
    cells = [[o["selected"]["held_out_rules"] for o in outs]
             for cell in results["heart"].values() for outs in cell["arms"].values()]
    if cells:
        means = [{r: float(np.mean([c[r] for c in outs])) for r in FINAL_RULES} for outs in cells]
        for rule in FINAL_RULES:
            lower = sum(m[rule] < m["last"] for m in means)
            lines.append(f"| {rule} | {np.mean([m[rule] for m in means]):.4f} | {lower} of {len(means)} |")
    lines += ["", "## Breast cancer, Dirichlet 0.1, 8 nodes (all test rows pooled)", "",
              "| model, rounds | arm | mean acc | per seed | lowest | last acc | best-val acc (round) | "
              "held-out val loss last / best-val |", "|---|---|---|---|---|---|---|---|"]
    for key, cell in results["breast_cancer"].items():
        for arm, outs in cell.items():
            accs = [o["final"]["test"]["accuracy"] for o in outs]
            lines.append(f"| {key} | {arm} | {_ms(accs)} | {', '.join(f'{100 * a:.1f}' for a in accs)} | "
                         f"{100 * min(accs):.1f} | {_ms([o['curve'][-1]['test']['accuracy'] for o in outs])} | "
                         f"{_ms([o['selected']['test']['accuracy'] for o in outs])} "
                         f"({', '.join(str(o['selected']['round']) for o in outs)}) | "
                         f"{np.mean([o['selected']['held_out_val_last'] for o in outs]):.4f} / "
                         f"{np.mean([o['selected']['held_out_val'] for o in outs]):.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "/tmp/quality", "1 seed, 10 rounds, mlp only")
    ap.add_argument("--arms", default="default", help=f"comma-separated; each +-joined parts of {', '.join(PARTS)}")
    ap.add_argument("--models", default="mlp,logreg")
    ap.add_argument("--rounds", default="10,50")
    ap.add_argument("--seeds", type=int, default=3, help="heart seeds (breast cancer: --bc-seeds)")
    ap.add_argument("--bc-seeds", type=int, default=5)
    ap.add_argument("--bc-rounds", type=int, default=30)
    ap.add_argument("--only", choices=("heart", "breast_cancer"), help="run one data set")
    args = ap.parse_args(argv)
    B.quiet()
    import torch

    torch.set_num_threads(1)
    started = time.monotonic()
    arms = args.arms.split(",")
    try:
        [arm_overrides(a) for a in arms]
    except ValueError as exc:
        ap.error(str(exc))
    if args.quick:
        results = run(arms, ["mlp"], [10], [0], [0], 10)
    else:
        heart_seeds = [] if args.only == "breast_cancer" else list(range(args.seeds))
        bc_seeds = [] if args.only == "heart" else list(range(args.bc_seeds))
        results = run(arms, args.models.split(","), [int(r) for r in args.rounds.split(",")], heart_seeds,
                      bc_seeds, args.bc_rounds)
    meta = {"command": "python -m scripts.bench.quality " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seconds": time.monotonic() - started, "machine": B.machine()}
    md = markdown(results, meta)
    publish(Path(args.out), "quality", {"meta": meta, "results": results}, md)
    print(md)
    B.say(f"benchmark done: {args.out}/quality.md, {args.out}/quality.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
