"""The seed's clinical scenarios: each swarm against local-only and central (pooled) training.

    .venv/bin/python -m scripts.bench.scenarios [--scenario ecg-rhythm] [--seeds 3] [--quick] [--out reports/bench]

For each scenario (`node.scenarios.SCENARIOS`) and seed, the swarm runs through the one launcher
(in process: real libp2p hosts, an eth-tester chain, the full ledger) once per merge rule the
scenario compares (and, for the grouping scenario, once per group count: one model per group of
similar sites against one global model); each node reports its final model's accuracy on its own test rows and that of
the same model trained on its rows alone (same epochs in total). Central training pools every
node's fitting rows (scaled by their combined statistics) and is tested on each node's rows.
Every final swarm model is also scored on the task's published validation set, the one the `best`
rule ranks models on. Writes scenarios.json, scenarios.md and scenarios.png into --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from node.scenarios import SCENARIOS, published_set
from scripts.bench import harness as B
from scripts.bench.output import publish

WHERE = ("node_mean", "pooled", "published", "validation")
# The chain closes a round this long after its first commit. Rounds end as soon as every update is
# in, so this costs nothing on a quiet machine; under a load average of 12 on 2 cores, 60 s let
# round 1 miss its quorum (every node trained alone, heard 0 updates).
ROUND_TIMEOUT = 180.0


def _evaluate(model, x: np.ndarray, y: np.ndarray) -> float:
    from node.training import evaluate

    return evaluate(model, x, y).accuracy


def baselines(plan: B.SwarmPlan) -> dict[str, dict[str, float]]:
    """Central (every node's fitting rows pooled, scaled by their combined statistics) and local-only
    (each node alone, scaled by its own) training of the swarm's model, same epochs in total; each
    tested on every node's own test rows and on the published validation set."""
    import torch

    from node.preprocess import FeatureStats, Scaler

    torch.set_num_threads(1)
    setups = B.node_setups(plan)
    published = published_set(setups[0].config.data)
    epochs = plan.rounds * plan.epochs

    test_x = np.concatenate([s.learner.data.test.x for s in setups])
    test_y = np.concatenate([s.learner.data.test.y for s in setups])
    val_x, val_y = _validation_rows(setups)

    def scored(models_and_scalers: list) -> dict[str, float]:
        own = [_evaluate(m, sc.transform(s.learner.data.test.x), s.learner.data.test.y)
               for s, (m, sc) in zip(setups, models_and_scalers)]
        row = {"node_mean": float(np.mean(own)),
               "pooled": float(np.mean([_evaluate(m, sc.transform(test_x), test_y) for m, sc in models_and_scalers])),
               "validation": float(np.mean([_evaluate(m, sc.transform(val_x), val_y) for m, sc in models_and_scalers]))}
        if published is not None:
            row["published"] = float(np.mean([_evaluate(m, sc.transform(published.x), published.y)
                                              for m, sc in models_and_scalers]))
        return row

    fit_x = np.concatenate([s.learner.fit_rows.x for s in setups])
    fit_y = np.concatenate([s.learner.fit_rows.y for s in setups])
    pooled = Scaler.from_stats(FeatureStats.of(fit_x))
    model = _trained(setups[0], pooled.transform(fit_x), fit_y, epochs)
    local = []
    for s in setups:
        own = Scaler.from_stats(FeatureStats.of(s.learner.fit_rows.x))
        local.append((_trained(s, own.transform(s.learner.fit_rows.x), s.learner.fit_rows.y, epochs), own))
    return {"central": scored([(model, pooled)] * len(setups)), "local": scored(local)}


def _validation_rows(setups) -> tuple[np.ndarray, np.ndarray]:
    """Every node's validation rows (held back from fitting, used to choose settings), unscaled."""
    return (np.concatenate([s.learner.val_rows.x for s in setups]),
            np.concatenate([s.learner.val_rows.y for s in setups]))


def _trained(setup, x: np.ndarray, y: np.ndarray, epochs: int):
    """The node's starting model (the scenario's pretrained start where it has one), trained on (x, y)."""
    from node.training import train_local

    t = setup.config.training
    model = setup.learner.fresh_model()
    train_local(model, x, y, epochs=epochs, batch_size=t.batch_size, lr=t.lr, seed=t.seed,
                optimizer=t.optimizer, weight_decay=t.weight_decay)
    return model


def swarm_elsewhere(run: B.SwarmRun) -> dict[str, float | None]:
    """Mean accuracy of the nodes' final models (in a grouped swarm, each its group's) on every
    node's test rows pooled and on the published validation set."""
    from node.bundle import BUNDLE_MAX_ABS, selection_state, split_bundle
    from node.grouping import GroupModels
    from node.models import load_numpy_state
    from node.preprocess import Scaler
    from node.rundir import RunFolder
    from node.selection import final_of

    task_key = f"{run.report['contract']}/{run.report['task_id']}"
    setups = B.node_setups(run.plan)
    test_x = np.concatenate([s.learner.data.test.x for s in setups])
    test_y = np.concatenate([s.learner.data.test.y for s in setups])
    val_x, val_y = _validation_rows(setups)
    pooled, validation, published_scores = [], [], []
    for s in setups:
        published = published_set(s.config.data)
        folder = RunFolder(run.plan.out / s.name)
        ckpt = folder.load_checkpoint(None, task_key, BUNDLE_MAX_ABS)
        if ckpt is None:
            continue
        weights, stats = split_bundle(ckpt.tensors)
        weights, _ = final_of(weights, selection_state(ckpt.tensors), s.config.swarm.final_model)
        if (groups := GroupModels.of(weights)) is not None:  # a grouped swarm: the node's group's model
            weights = groups.copy(weights, (folder.read_grouping(task_key) or ([], 0))[1])
        scaler = Scaler.from_stats(stats)
        load_numpy_state(s.learner.model, weights)
        pooled.append(_evaluate(s.learner.model, scaler.transform(test_x), test_y))
        validation.append(_evaluate(s.learner.model, scaler.transform(val_x), val_y))
        if published is not None:
            published_scores.append(_evaluate(s.learner.model, scaler.transform(published.x), published.y))
    return {"pooled": float(np.mean(pooled)) if pooled else None,
            "validation": float(np.mean(validation)) if validation else None,
            "published": float(np.mean(published_scores)) if published_scores else None}


def replayed(plan: B.SwarmPlan) -> dict:
    """The swarm's arithmetic in one process, without the network and the chain: the nodes' own
    learners and input scaling, round 1 merged for all, the groups (`swarm.groups` > 1, counted by
    `swarm.group_count`) from round 1's updates by `node.grouping`, then each group's updates merged
    into its model, as every honest node computes them. Machine load cannot drop updates here (it did in the launcher runs
    at a load average of 12-22 on 2 cores). Scored like `swarm_elsewhere`."""
    import torch

    from node.grouping import GROUP_COUNTS, Grouping
    from node.learner import Split, add
    from node.merge import rule_by_name
    from node.preprocess import FeatureStats

    torch.set_num_threads(1)
    setups = B.node_setups(plan)
    stats = FeatureStats.robust_combine([s.learner.local_stats() for s in setups])
    for s in setups:
        s.learner.set_scaling(stats)
    rule = rule_by_name(plan.merge)
    start = setups[0].learner.weights()
    first = B.local_updates(setups, start, 1)
    grouped = plan.grouping_settings()
    grouping = (GROUP_COUNTS[grouped["group_count"]](first, grouped["groups"]) if grouped["groups"] > 1
                else Grouping((tuple(sorted(s.name for s in setups)),)))
    models = {g: add(start, rule.at(start).merge(first)) for g in grouping.groups}
    for r in range(2, plan.rounds + 1):
        for g in grouping.groups:
            members = [s for s in setups if s.name in g]
            models[g] = add(models[g], rule.at(models[g]).merge(B.local_updates(members, models[g], r)))
    final = {s.name: models[grouping.group_of(s.name)] for s in setups}
    pooled = Split(np.concatenate([s.learner.test.x for s in setups]), np.concatenate([s.learner.test.y for s in setups]))
    validation = Split(np.concatenate([s.learner.val.x for s in setups]), np.concatenate([s.learner.val.y for s in setups]))
    published = published_set(setups[0].config.data)
    own = {s.name: s.learner.evaluate(final[s.name], s.learner.test).accuracy for s in setups}
    row = {"node_mean": float(np.mean(list(own.values()))), "per_node": own,
           "pooled": float(np.mean([setups[0].learner.evaluate(w, pooled).accuracy for w in final.values()])),
           "validation": float(np.mean([setups[0].learner.evaluate(w, validation).accuracy for w in final.values()])),
           "published": None, "groups": [list(g) for g in grouping.groups] if grouped["groups"] > 1 else [],
           "heard": "all (replayed)"}
    if published is not None:
        split = Split(setups[0].learner.scaler.transform(published.x), published.y)
        row["published"] = float(np.mean([setups[0].learner.evaluate(w, split).accuracy for w in final.values()]))
    return row


def run_scenario(name: str, seeds: list[int], changes: dict, runs: Path, merges: tuple[str, ...] = (),
                 replay: bool = False) -> dict:
    """Every merge rule the scenario compares (or `merges`), local-only and central, per seed;
    `changes` are SwarmPlan fields that override the scenario's; `replay`: the swarm's arithmetic
    in one process (`replayed`) instead of launcher runs."""
    scenario = SCENARIOS[name]
    per_seed = []
    for seed in seeds:
        plan = B.SwarmPlan(**{**scenario.plan, **changes}, seed=seed,
                           in_process=True, round_timeout=ROUND_TIMEOUT, node_overrides=scenario.node_settings,
                           out=runs / f"{name}-s{seed}")
        row: dict = {"seed": seed}
        for merge, groups in ((m, g) for m in merges or scenario.compare for g in scenario.groups):
            arm = merge if groups == 1 else f"{merge}_grouped"
            if replay:
                row[f"swarm_{arm}"] = replayed(B.plan_with(plan, merge=merge, groups=groups))
                B.say(f"{name} seed {seed} {arm} (replayed): groups {row[f'swarm_{arm}']['groups']}, "
                      f"own {row[f'swarm_{arm}']['node_mean']:.3f}, pooled {row[f'swarm_{arm}']['pooled']:.3f}")
                continue
            run = B.run_swarm(B.plan_with(plan, merge=merge, groups=groups, out=plan.out / arm),
                              f"{name} {arm} seed {seed}", read_chain=False)
            done = {n: s for n, s in run.summaries.items() if s}
            row[f"swarm_{arm}"] = {"node_mean": float(np.mean([s["test_accuracy"] for s in done.values()])),
                                     **swarm_elsewhere(run),
                                     "per_node": {n: s["test_accuracy"] for n, s in done.items()},
                                     "audit_ok": run.report.get("audit_ok"), "seconds": run.seconds,
                                     # updates merged from peers against those expected: a run whose
                                     # nodes did not hear each other is local training, not a swarm
                                     "heard": sum(m["heard"] for ms in run.metrics.values() for m in ms),
                                     "expected": sum(m["expected"] for ms in run.metrics.values() for m in ms),
                                     "groups": sorted({tuple(s["group"]) for s in done.values() if "group" in s}),
                                     "distinct_models": len({s["model_digest"] for s in done.values()})}
            if all("personalised_accuracy" in s for s in done.values()):
                row[f"swarm_{arm}_personalised"] = {
                    "node_mean": float(np.mean([s["personalised_accuracy"] for s in done.values()])),
                    "per_node": {n: s["personalised_accuracy"] for n, s in done.items()}}
            got = row[f"swarm_{arm}"]
            B.say(f"{name} seed {seed} {arm}: groups {got['groups']}, swarm {got['node_mean']:.3f}, heard {got['heard']}/{got['expected']}, "
                  f"{run.seconds:.0f}s")
        row.update(baselines(plan))
        B.say(f"{name} seed {seed}: local {row['local']['node_mean']:.3f}, central {row['central']['node_mean']:.3f}")
        per_seed.append(row)
    return summarised({"title": scenario.title, "data": scenario.data, "plan": {**scenario.plan, **changes},
                       "node_settings": list(scenario.node_settings), "seeds": seeds}, per_seed)


def summarised(result: dict, per_seed: list[dict]) -> dict:
    """`result` with its seeds' rows, the methods they hold and each method's mean and std."""
    methods = [m for m in per_seed[0] if m.startswith("swarm_")] + ["local", "central"]
    summary = {m: {w: B.mean_std([r[m].get(w) for r in per_seed]) for w in WHERE} for m in methods}
    return {**result, "seeds": [r["seed"] for r in per_seed], "methods": methods, "per_seed": per_seed,
            "summary": summary}


def combined(paths: list[Path]) -> tuple[dict, list[dict]]:
    """Earlier runs' results (scenarios.json files, e.g. one seed each, run apart when the machine
    was quiet enough) as one: each scenario's per-seed rows together, summarised again; and the
    runs' own meta (command, seconds)."""
    import json

    results: dict = {}
    metas = []
    for path in paths:
        saved = json.loads(path.read_text())
        metas.append(saved["meta"])
        for name, res in saved["results"].items():
            if name in results and res["plan"] != results[name]["plan"]:
                raise SystemExit(f"{path}: {name} ran with another plan ({res['plan']})")
            results.setdefault(name, {**res, "per_seed": []})["per_seed"] += res["per_seed"]
    return ({name: summarised(res, sorted(res["per_seed"], key=lambda r: r["seed"])) for name, res in results.items()},
            metas)


LABELS = {"local": "local only", "central": "central (pooled)"}


def _swarm_label(method: str) -> str:
    """"swarm_mean" -> "swarm (mean)"; "swarm_mean_personalised" -> "swarm (mean) + personalised";
    "swarm_mean_grouped" -> "swarm (mean), grouped"."""
    rule, _, extra = method.removeprefix("swarm_").partition("_")
    return f"swarm ({rule})" + {"": "", "grouped": ", grouped"}.get(extra, f" + {extra}")


def markdown(results: dict, meta: dict) -> str:
    lines = ["# Clinical scenarios", "",
             f"Command: `{meta['command']}`; {meta['seconds']:.0f} s on {meta['machine']['cpus']} CPUs. "
             "Accuracy in percent, mean ± std over seeds. \"own test rows\": each node's final model on its "
             "own held-out rows, averaged over nodes; \"pooled test rows\": the same models on every node's "
             "test rows together; \"published set\": on the task's published validation set (balanced classes); "
             "\"pooled validation rows\": on every node's validation rows (held back from fitting; settings are "
             "chosen on these and the published set, never on test rows).", ""]
    if meta.get("combined"):
        lines += ["Combining the runs of: " + "; ".join(f"`{c}`" for c in meta["combined"]), ""]
    for name, res in results.items():
        s = res["summary"]
        lines += [f"## {name}: {res['title']}", "", f"Data: {res['data']}. Plan: {res['plan']}, "
                  f"{', '.join(res['node_settings'])}; {len(res['seeds'])} seed(s).", "",
                  "| method | acc, own test rows | acc, pooled test rows | acc, published set | "
                  "acc, pooled validation rows |", "|---|---|---|---|---|"]
        for m in res["methods"]:
            label = LABELS.get(m) or _swarm_label(m)
            lines.append(f"| {label} | {B.fmt_ms(s[m]['node_mean'])} | {B.fmt_ms(s[m]['pooled'])} | "
                         f"{B.fmt_ms(s[m]['published'])} | {B.fmt_ms(s[m]['validation'])} |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """One panel per scenario: each method's accuracy (mean, std bars) on own test rows, on every
    node's test rows pooled, and on the published validation set where the scenario has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4.4 * len(results), 3.6), dpi=110, squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        methods = res["methods"]
        xs = np.arange(len(methods))
        for k, (where, label) in enumerate((("node_mean", "own test rows"), ("pooled", "pooled test rows"),
                                            ("published", "published set"))):
            stats = [res["summary"][m][where] for m in methods]
            means = [st["mean"] if st["mean"] is not None else np.nan for st in stats]
            errs = [st["std"] or 0.0 for st in stats]
            ax.bar(xs + (k - 1) * 0.27, means, 0.27, yerr=errs, capsize=2, label=label, color=f"C{k}")
        ax.set_xticks(xs, [LABELS.get(m) or _swarm_label(m) for m in methods],
                      rotation=30, ha="right", fontsize=7)
        ax.set_ylim(0, 1.0)
        ax.set_title(name, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("accuracy")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/scenarios", "one seed, 2 nodes, 2 rounds, ecg-anomaly only")
    ap.add_argument("--scenario", action="append", choices=tuple(SCENARIOS), help="(repeatable) default: all")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, action="append", default=[], help="(repeatable) run these seeds instead")
    ap.add_argument("--replay", action="store_true", help="the swarm's arithmetic in one process, no network or "
                                                          "chain (immune to machine load)")
    ap.add_argument("--rounds", type=int, default=None, help="override each scenario's rounds")
    ap.add_argument("--merge", action="append", default=[], help="(repeatable) merge rules to run instead of "
                                                                  "each scenario's own list")
    ap.add_argument("--combine", action="append", default=[], type=Path, metavar="JSON",
                    help="(repeatable) publish these earlier runs' scenarios.json as one table instead of running")
    args = ap.parse_args(argv)
    B.quiet()
    started = time.monotonic()
    command = "python -m scripts.bench.scenarios " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.combine:
        results, runs = combined(args.combine)
        meta = {"command": command, "seconds": sum(m["seconds"] for m in runs), "machine": B.machine(),
                "combined": [m["command"] for m in runs]}
        publish(Path(args.out), "scenarios", {"meta": meta, "results": results}, markdown(results, meta),
                lambda folder: plot(results, folder / "scenarios.png"))
        return 0
    # "evaluation-layer" is ecg-rhythm with the best rule, which the ecg-rhythm table compares already
    names = ["ecg-anomaly"] if args.quick else (args.scenario or ["ecg-rhythm", "ecg-anomaly", "wearable", "ecg-groups"])
    seeds = [0] if args.quick else (args.seed or list(range(args.seeds)))
    changes = {"nodes": 2, "rounds": 2} if args.quick else ({"rounds": args.rounds} if args.rounds else {})
    results = {n: run_scenario(n, seeds, changes, Path(args.runs), tuple(args.merge), args.replay) for n in names}
    seconds = time.monotonic() - started
    meta = {"command": command, "seconds": seconds, "machine": B.machine()}
    out = Path(args.out)
    publish(out, "scenarios", {"meta": meta, "results": results}, markdown(results, meta),
            lambda folder: plot(results, folder / "scenarios.png"))
    B.say(f"scenarios benchmark done in {seconds:.0f}s: {out}/scenarios.json, scenarios.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
