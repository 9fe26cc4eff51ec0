"""Learning quality: the swarm against pooled training and against each node training alone.

    .venv/bin/python -m scripts.bench.learning [--quick] [--out reports/bench]

- UCI Heart Disease, its 4 real hospitals as 4 nodes: swarm with the default (trimmed mean), the
  mean and the median merge rule, pooled training (all hospitals' fitting rows in one place), local-only training; accuracy
  and ROC AUC on each hospital's test rows and on all test rows pooled; 5 seeds (a seed fixes the
  train/test splits, the initial model and the minibatch order).
- Breast cancer (Wisconsin) over 8 nodes: IID, Dirichlet alpha 0.5 and 0.1; swarm with the default
  (trimmed mean) and the mean merge rule.

Every arm trains the same model with the same settings: the swarm runs `rounds` rounds of
`epochs` local epochs; pooled and local-only train rounds x epochs epochs on the same fitting
rows the swarm nodes train on (each node's validation rows are held back in all arms).
Writes learning.json, learning.md and learning_curves.png into --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from node.config import ModelConfig, SwarmConfig, TrainingConfig
from scripts.bench import harness as B
from scripts.bench.output import publish

LABELS = {"swarm_trimmed": "swarm (trimmed mean)", "swarm_mean": "swarm (mean)", "swarm_median": "swarm (median)",
          "pooled": "pooled", "local": "local only"}
# The node defaults every arm trains with (the heart swarm: `--dataset heart`, no settings file)
DEFAULTS = (f"{ModelConfig.kind} (hidden {ModelConfig.hidden}), local {TrainingConfig.optimizer.upper()} lr "
            f"{TrainingConfig.lr}, batch {TrainingConfig.batch_size}")


def run_setting(base: B.SwarmPlan, seeds: list[int], merges: list[str], label: str) -> dict:
    """Swarm (each merge rule) and both baselines for every seed; per-seed tables and their summary."""
    per_seed = []
    for seed in seeds:
        row: dict = {"seed": seed}
        plan = B.plan_with(base, seed=seed)
        for merge in merges:
            p = B.plan_with(plan, merge=merge, out=base.out / f"{label}-{merge}-s{seed}")
            run = B.run_swarm(p, f"{label} {merge} seed {seed}", read_chain=False)
            preds = B.swarm_predictions(run)
            table = preds.table()
            row[f"swarm_{merge}"] = table
            row[f"swarm_{merge}_curves"] = {n: [m["test_accuracy"] for m in ms] for n, ms in run.metrics.items()}
            row[f"swarm_{merge}_seconds"] = run.seconds
            row[f"swarm_{merge}_audit_ok"] = run.report.get("audit_ok")
            row[f"swarm_{merge}_heard"] = sum(m["heard"] for ms in run.metrics.values() for m in ms)
            row[f"swarm_{merge}_expected"] = sum(m["expected"] for ms in run.metrics.values() for m in ms)
            # the final models we re-evaluate must be the ones the nodes reported on
            row[f"swarm_{merge}_max_diff_vs_node_summary"] = max(
                (abs(table[n]["accuracy"] - s["test_accuracy"]) for n, s in run.summaries.items()
                 if s and n in table), default=None)
            B.say(f"{label} {merge} seed {seed}: swarm acc {table['pooled_test']['accuracy']:.3f} "
                  f"auc {table['pooled_test']['auc']:.3f} (all test rows), {run.seconds:.0f}s")
        base_preds = B.baselines(plan)
        for name, preds in base_preds.items():
            row[name] = preds.table()
        summaries = run.summaries if merges else {}
        # our local-only arm must reproduce what each node computed for itself (Learner.local_only)
        row["local_max_diff_vs_node_summary"] = max(
            (abs(row["local"][n]["accuracy"] - s["local_only_accuracy"]) for n, s in summaries.items()
             if s and n in row["local"]), default=None)
        B.say(f"{label} seed {seed}: pooled acc {row['pooled']['pooled_test']['accuracy']:.3f}, "
              f"local-only acc {row['local']['pooled_test']['accuracy']:.3f}")
        per_seed.append(row)
    methods = [f"swarm_{m}" for m in merges] + ["pooled", "local"]
    nodes = [k for k in per_seed[0]["pooled"] if k not in ("pooled_test", "node_mean")]
    summary = {m: {where: {metric: B.mean_std([r[m].get(where, {}).get(metric) for r in per_seed])
                           for metric in ("accuracy", "auc")}
                   for where in nodes + ["pooled_test", "node_mean"]}
               for m in methods}
    return {"nodes": nodes, "methods": methods, "seeds": seeds, "per_seed": per_seed, "summary": summary}


def gap(result: dict, a: str, b: str, where: str = "pooled_test") -> float | None:
    x, y = result["summary"][a][where]["accuracy"]["mean"], result["summary"][b][where]["accuracy"]["mean"]
    return None if x is None or y is None else 100 * (x - y)


def targets(results: dict) -> list[dict]:
    """Each aim of the benchmark issue, for every merge rule the setting ran."""
    out = []
    for key, res in results.items():
        for method in (m for m in res["methods"] if m.startswith("swarm_")):
            if key == "heart" or key.startswith("bc_iid"):
                g = gap(res, method, "pooled")
                out.append({"target": f"{key}: {LABELS[method]} accuracy within 1 point of pooled (all test rows)",
                            "gap_points": g, "met": g is not None and g >= -1.0})
            elif key.startswith("bc_dirichlet"):
                g = gap(res, method, "local", "node_mean")
                out.append({"target": f"{key}: {LABELS[method]} clearly above mean local-only accuracy "
                                      "(per-node mean)", "gap_points": g, "met": g is not None and g >= 2.0})
    return out


def markdown(results: dict, tgts: list[dict], meta: dict) -> str:
    lines = ["# Learning quality", "",
             f"Command: `{meta['command']}`; {meta['seconds']:.0f} s on {meta['machine']['cpus']} CPUs. "
             "Mean ± std over seeds, in percent. \"all test rows\" pools every node's held-out rows "
             "(each node's final model predicts its own rows); \"node mean\" averages the nodes' accuracies.", ""]
    for key, res in results.items():
        s = res["summary"]
        lines += [f"## {res['title']}", "",
                  f"{len(res['seeds'])} seed(s); {res['setting']}", "",
                  "| method | acc, all test rows | AUC, all test rows | acc, node mean | "
                  + " | ".join(f"acc {n}" for n in res["nodes"]) + " |",
                  "|---|---|---|---|" + "---|" * len(res["nodes"])]
        for m in res["methods"]:
            lines.append(f"| {LABELS[m]} | {B.fmt_ms(s[m]['pooled_test']['accuracy'])} | "
                         f"{B.fmt_ms(s[m]['pooled_test']['auc'])} | {B.fmt_ms(s[m]['node_mean']['accuracy'])} | "
                         + " | ".join(B.fmt_ms(s[m][n]["accuracy"]) for n in res["nodes"]) + " |")
        lines.append("")
    lines += ["## Targets", "", "| target | gap (points) | met |", "|---|---|---|"]
    for t in tgts:
        g = "-" if t["gap_points"] is None else f"{t['gap_points']:+.1f}"
        lines.append(f"| {t['target']} | {g} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "![accuracy per round](learning_curves.png)", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.8), dpi=110, squeeze=False)
    for ax, key in zip(axes[0], keys):
        res = results[key]
        first = res["per_seed"][0]
        shown = next(m for m in ("swarm_trimmed", "swarm_median", "swarm_mean") if f"{m}_curves" in first)
        curves = first[f"{shown}_curves"]
        for i, (name, curve) in enumerate(curves.items()):
            colour = f"C{i % 10}"
            ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=2.5, lw=1.2, color=colour, label=name)
            local = first["local"].get(name, {}).get("accuracy")
            if local is not None:
                ax.axhline(local, color=colour, ls=":", lw=0.9, alpha=0.8)
        pooled = first["pooled"]["pooled_test"]["accuracy"]
        ax.axhline(pooled, color="black", ls="--", lw=1.2, label="pooled (all test rows)")
        ax.set_title(f"{res['title']}\n{LABELS[shown]}, seed {first['seed']}", fontsize=9)
        ax.set_xlabel("round")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="lower right", ncol=2)
    axes[0][0].set_ylabel("test accuracy, node's own rows")
    fig.suptitle(f"Swarm per node per round (the default {SwarmConfig.merge} merge);\ndotted: that node alone; "
                 "dashed: pooled", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/learning", "seconds-long smoke run: 2 heart nodes, 2 rounds, 1 seed")
    ap.add_argument("--heart-seeds", type=int, default=5)
    ap.add_argument("--bc-seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--skip-bc", action="store_true", help="heart only")
    args = ap.parse_args(argv)
    B.quiet()
    started = time.monotonic()
    out, runs = Path(args.out), Path(args.runs)
    results: dict = {}
    if args.quick:
        base = B.SwarmPlan(nodes=2, rounds=2, dataset="heart", in_process=True, round_timeout=20.0, out=runs)
        results["heart"] = run_setting(base, [0], ["mean"], "heart")
        results["heart"].update(title="UCI heart, 2 hospitals (quick)", setting="2 rounds, in-process")
    else:
        base = B.SwarmPlan(nodes=4, rounds=args.rounds, dataset="heart", in_process=True, out=runs)
        merges = list(dict.fromkeys([SwarmConfig.merge, "mean", "median"]))  # the default first
        results["heart"] = run_setting(base, list(range(args.heart_seeds)), merges, "heart")
        results["heart"].update(
            title="UCI heart disease, 4 real hospitals",
            setting=f"{DEFAULTS}, {args.rounds} rounds x 1 local epoch; "
                    "swarm in one process (real libp2p hosts, eth-tester chain)")
        if not args.skip_bc:
            for partition, alpha, key in (("iid", 0.5, "bc_iid"), ("dirichlet", 0.5, "bc_dirichlet_0.5"),
                                          ("dirichlet", 0.1, "bc_dirichlet_0.1")):
                # 8 nodes run as 8 processes on anvil: the in-process eth-tester chain slows down with
                # its length and stalls an 8-node swarm (see the report)
                bc = B.SwarmPlan(nodes=8, rounds=args.rounds, dataset="breast_cancer", partition=partition,
                                 alpha=alpha, in_process=False, out=runs)
                results[key] = run_setting(bc, list(range(args.bc_seeds)), [SwarmConfig.merge, "mean"], key)
                results[key].update(
                    title=f"Breast cancer, 8 nodes, {partition}" + (f" alpha {alpha}" if partition != "iid" else ""),
                    setting=f"{DEFAULTS}, {args.rounds} rounds x 1 local epoch; 8 node processes on anvil")
    tgts = targets(results)
    seconds = time.monotonic() - started
    meta = {"command": "python -m scripts.bench.learning" + (" --quick" if args.quick else ""),
            "seconds": seconds, "machine": B.machine()}
    publish(out, "learning", {"meta": meta, "results": results, "targets": tgts}, markdown(results, tgts, meta),
              lambda folder: plot(results, folder / "learning_curves.png"))
    for t in tgts:
        B.say(f"target: {t['target']}: gap {t['gap_points']} points, met={t['met']}")
    B.say(f"learning benchmark done in {seconds:.0f}s: {out}/learning.json, learning.md, learning_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
