"""Compressed updates: bytes per round against accuracy, on three models.

    .venv/bin/python -m scripts.bench.compression [--quick] [--out reports/bench]

For each setting (heart, its 4 hospitals, mlp; breast cancer over 8 nodes, mlp; breast cancer
over 8 nodes, a wide mlp of about 1M parameters) the swarm runs in one process
(`scripts.bench.inprocess`: real learners, each node's own pipeline and error-feedback residual,
the checkable contribution scores) once per compression stage: none (float32), q8, topk and
ternary (each tensor's top 1% per round), under the coordinate-wise median and under the
geometric median. Reported per codec and merge rule:

- bytes per round: one node's update on the wire (header included), the mean over nodes and
  rounds; each peer that merges it fetches these bytes once;
- ratio: float32 bytes over these bytes;
- the float32 run of the same merge rule is the reference for the next two;
- final accuracy: the merged model on every node's test rows, the mean of the last 3 rounds
  (the test sets have 150-300 rows: one round's accuracy moves by a point from one row);
- rounds to target: the first round whose accuracy reaches the float32 run's final accuracy
  minus 1 point;
- flags: honest updates the contribution rule flagged (free rider, near-copy), and the closest
  any honest update came to those thresholds (largest |cos|, smallest norm / median norm).

Writes compression.json and compression.md into --out (`--name` to change; `--fraction` for
another top-k share, `--skip-wide` for the two small models only, `--rounds` for their rounds,
`--codecs none,ternary` for some codecs only).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from node.contribution import COPY_COS, FREE_RIDER_NORM
from node.launcher import SwarmPlan
from scripts.bench import harness as B
from scripts.bench.inprocess import InProcessSwarm
from scripts.bench.output import publish

CODECS = ("none", "q8", "topk", "ternary")
# The coordinate-wise median (the default rule) keeps a coordinate only where most nodes sent it;
# top-k supports differ from node to node, so it drops most of a sparse update. The geometric
# median (also robust) works on whole vectors and keeps them: both are measured.
MERGES = ("median", "geomedian")
FINAL_WINDOW = 3
TOLERANCE = 0.01  # accuracy points (as a fraction) the target allows below float32


@dataclass(frozen=True)
class Setting:
    label: str
    plan: SwarmPlan
    rounds: int
    overrides: tuple[str, ...] = ()


def settings(quick: bool, out: Path, rounds: int | None = None) -> list[Setting]:
    """The three models; `quick` keeps the shapes of the run but not its size (a smoke test);
    `rounds` replaces the two small models' 30 rounds."""
    small, wide_rounds, wide = (2, 2, 64) if quick else (30, 15, 1000)
    rounds = rounds or small
    return [
        Setting("heart mlp (4 hospitals)", SwarmPlan(nodes=4, dataset="heart", model="mlp", out=out / "heart"), rounds),
        Setting("breast cancer mlp (8 nodes)", SwarmPlan(nodes=8, dataset="breast_cancer", model="mlp",
                                                         out=out / "breast"), rounds),
        Setting(f"breast cancer wide mlp, hidden {wide} (8 nodes)",
                SwarmPlan(nodes=8, dataset="breast_cancer", model="mlp", lr=0.001, out=out / "wide"),
                wide_rounds, (f"model.hidden={wide}",)),
    ]


def run_codec(setting: Setting, codec: str, merge: str, fraction: float) -> dict:
    overrides = setting.overrides + (f"swarm.compression={codec}", f"swarm.compression_fraction={fraction}")
    # A node's config refuses sparse stages under coordinate-wise rules (what this measures):
    # the configs are built with geomedian and the rule swapped in afterwards.
    plan = B.plan_with(setting.plan, merge="geomedian", node_overrides=overrides)
    swarm = InProcessSwarm(plan, merge=merge)
    t0 = time.perf_counter()
    records = swarm.run(setting.rounds)
    flags: Counter[str] = Counter()
    for rec in records:
        flags.update(rec.flags)
    closest = {k: (max if k.endswith("cos") else min)(rec.closest[k] for rec in records) for k in records[0].closest}
    return {"codec": codec, "merge": merge, "parameters": swarm.parameters, "seconds": time.perf_counter() - t0,
            "bytes_per_round": float(np.mean([b for rec in records for b in rec.blob_bytes])),
            "curve": [rec.accuracy for rec in records],
            "final_accuracy": float(np.mean([rec.accuracy for rec in records[-FINAL_WINDOW:]])),
            "flags": dict(flags), "closest": closest}


def summarise(results: dict) -> None:
    """Ratios against float32 and rounds to the float32 run's final accuracy minus 1 point."""
    for runs in results.values():
        for run in runs.values():
            dense = runs[f"none/{run['merge']}"]
            target = dense["final_accuracy"] - TOLERANCE
            run["ratio"] = dense["bytes_per_round"] / run["bytes_per_round"]
            run["target"] = target
            run["rounds_to_target"] = next((i + 1 for i, a in enumerate(run["curve"]) if a >= target), None)
            run["accuracy_loss_points"] = 100 * (dense["final_accuracy"] - run["final_accuracy"])


def markdown(results: dict, meta: dict) -> str:
    lines = ["# Compressed updates", "",
             f"In-process swarm (real learners, pipelines, contribution scores); "
             f"compression fraction {meta['fraction']}; final accuracy = mean of the last {FINAL_WINDOW} rounds; "
             f"target = float32 final accuracy - 1 point. Load average at start: {meta['load']}.", ""]
    for label, runs in results.items():
        n = runs["none/median"]["parameters"]
        lines += [f"## {label}: {n:,} parameters, {meta['rounds'][label]} rounds", "",
                  "| codec | merge | bytes per round | ratio | rounds to target | final accuracy | "
                  "honest updates flagged | max concurrent cos | min norm / median |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for run in runs.values():
            reached = run["rounds_to_target"] if run["rounds_to_target"] is not None else "not reached"
            lines.append(f"| {run['codec']} | {run['merge']} | {run['bytes_per_round']:,.0f} | {run['ratio']:.1f}x | {reached} | "
                         f"{run['final_accuracy']:.3f} | {sum(run['flags'].values())} | "
                         f"{run['closest'].get('concurrent_cos', 0):.3f} | {run['closest'].get('norm_ratio', 0):.3f} |")
        lines.append("")
    lines += [f"Flag thresholds: near-copy at |cos| >= {COPY_COS}, free rider at norm <= {FREE_RIDER_NORM} x median.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench-compression", "2 rounds per setting, a 64-wide mlp for the wide one")
    ap.add_argument("--fraction", type=float, default=0.01, help="share of each tensor's entries topk/ternary send")
    ap.add_argument("--skip-wide", action="store_true", help="only the two small models")
    ap.add_argument("--rounds", type=int, help="rounds of the two small models (default 30)")
    ap.add_argument("--codecs", default=",".join(CODECS), help="which of them to run, comma-separated")
    ap.add_argument("--name", default="compression", help="report name (compression.json, .md)")
    args = ap.parse_args(argv)
    B.quiet()
    load = round(os.getloadavg()[0], 2)
    results: dict = {}
    chosen = settings(args.quick, Path(args.runs), args.rounds)[: 2 if args.skip_wide else 3]
    codecs = [c for c in args.codecs.split(",") if c]
    if "none" not in codecs or set(codecs) - set(CODECS):
        ap.error(f"--codecs: choose from {', '.join(CODECS)}, with none (the float32 reference)")
    for setting in chosen:
        results[setting.label] = {}
        for merge in MERGES:
            for codec in codecs:
                run = run_codec(setting, codec, merge, args.fraction)
                results[setting.label][f"{codec}/{merge}"] = run
                B.say(f"{setting.label} {codec} {merge}: {run['bytes_per_round']:,.0f} B/round, final acc "
                      f"{run['final_accuracy']:.3f}, flags {run['flags']}, {run['seconds']:.0f}s")
    summarise(results)
    meta = {"machine": B.machine(), "load": load, "fraction": args.fraction, "rounds": {s.label: s.rounds for s in chosen}}
    publish(Path(args.out), args.name, {"meta": meta, "results": results}, markdown(results, meta))
    print(markdown(results, meta))
    B.say(f"compression benchmark done: {args.out}/{args.name}.json, {args.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
