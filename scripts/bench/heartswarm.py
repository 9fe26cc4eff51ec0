"""The heart hospitals as a real swarm: 4 node processes on anvil vs central training vs each alone.

    .venv/bin/python -m scripts.bench.heartswarm [--seeds 3] [--rounds 10,50] [--generic [--model logreg]] [--quick]
        [--data DIR]

For each round count and seed, `medswarm swarm --data node/data/heart_split --rounds R --seed S`
(exactly what a user types) runs the four hospitals (node/data/heart_split: 486 train / 254 test
rows, the FLamby-style split) as four node processes on an anvil chain with the shipped defaults
plus the folder's own settings file (`swarm.toml`, `quality.SHIPPED_HEART_SETTINGS`; `--generic`: the
defaults alone, `--settings none`), and `medswarm evaluate RUN --csv <each hospital's test file>` scores the swarm's final model on all 254 test rows pooled: those are the
swarm's figures. The per-round curve is the nodes' own test accuracies (their metrics rows),
weighted by their test rows. Central training (one model on every hospital's training rows) and
each hospital alone come from `scripts.bench.quality` (same learners, same rows and inputs, same
settings, trained for rounds x epochs epochs), scored on the same 254 rows.

`--data DIR` runs another copy of the four hospitals instead (e.g. the benchmark's own draw, in
FLamby's encoding): the settings are those `medswarm swarm --data DIR` applies (DIR's own swarm.toml,
else those of the shipped split it is recognised as, node.datadir), and central training and each
hospital alone use DIR's rows with the same settings.

Every run must finish within RUN_SECONDS; one that does not is reported as failed. "run (s)" is the
launcher's own time for the run (chain, deployment, rounds, settling, audit). A run folder that
already holds a finished, evaluated run (run.json) is read back, not run again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from node.cli import settings_file, translated
from node.config import load_settings
from scripts.bench import harness as B
from scripts.bench.output import publish, write_json
from scripts.bench.quality import HEART_SPLIT, central_and_alone, heart_plan

ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 300.0


def _cli(*args: str) -> subprocess.CompletedProcess:
    """`medswarm ARGS`; past RUN_SECONDS it is interrupted like Ctrl-C (the launcher then stops its
    node processes and its chain, which run in sessions of their own), and killed if it lingers."""
    proc = subprocess.Popen([sys.executable, "-m", "node.cli", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=RUN_SECONDS)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        err = f"interrupted after {RUN_SECONDS:.0f} s\n" + err
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def swarm_run(run_dir: Path, rounds: int, seed: int, options: tuple[str, ...],
              folder: Path = HEART_SPLIT) -> dict[str, Any] | None:
    """One `medswarm swarm` of node processes, then `medswarm evaluate` on all test files pooled;
    None if the run failed (said on the terminal; the run's folder keeps its logs). A run whose
    folder already holds a finished, evaluated run is read back instead of run again."""
    if (run_dir / "evaluation" / "evaluation.json").exists() and (run_dir / "run.json").exists():
        B.say(f"{run_dir}: already run, reading it back")
        return json.loads((run_dir / "run.json").read_text())
    done = _cli("swarm", "--data", str(folder), "--rounds", str(rounds), "--seed", str(seed), *options,
                "--out", str(run_dir))
    if done.returncode != 0:
        B.say(f"{run_dir}: medswarm swarm failed ({done.returncode}): {done.stderr.strip()[-500:]}")
        return None
    tests = sorted(folder.glob("*_test.csv"))
    evaluated = _cli("evaluate", str(run_dir), *[a for t in tests for a in ("--csv", str(t))],
                     "--out", str(run_dir / "evaluation"))
    if evaluated.returncode != 0:
        B.say(f"{run_dir}: medswarm evaluate failed ({evaluated.returncode}): {evaluated.stderr.strip()[-500:]}")
        return None
    metrics = json.loads((run_dir / "evaluation" / "evaluation.json").read_text())["metrics"]
    report = json.loads((run_dir / "report.json").read_text())
    result = {"seconds": report["seconds"], "metrics": metrics, "evaluate_output": evaluated.stdout,
              "audit_ok": report.get("audit_ok"), "curve": pooled_curve(run_dir)}
    write_json(run_dir / "run.json", result)
    return result


def pooled_curve(run_dir: Path) -> list[float]:
    """Test accuracy after each round over all nodes' test rows (each node scores its own rows)."""
    from node.rundir import RunFolder

    per_node = []
    for folder in sorted(p for p in run_dir.iterdir() if RunFolder(p).metrics.exists()):
        rows = RunFolder(folder).read_metrics()
        n = RunFolder(folder).read_summary()["test_rows"]
        per_node.append([(r["test_accuracy"] * n, n) for r in rows])
    rounds = min(len(rows) for rows in per_node)
    return [sum(node[r][0] for node in per_node) / sum(node[r][1] for node in per_node) for r in range(rounds)]


def run(rounds_list: list[int], seeds: list[int], model: str, runs: Path, settings: tuple[str, ...],
        options: tuple[str, ...], folder: Path = HEART_SPLIT) -> dict[str, Any]:
    """`options`: what `medswarm swarm` is given besides the folder, rounds and seed; `settings`: the
    same as node settings, for central training and each hospital alone."""
    results: dict[str, Any] = {}
    for rounds in rounds_list:
        cell = results[str(rounds)] = {"swarm": [], "central": [], "alone": []}
        for seed in seeds:
            out = swarm_run(runs / f"{model}-r{rounds}-s{seed}", rounds, seed, options, folder)
            base = central_and_alone(heart_plan(seed, model, settings, folder), rounds)
            cell["central"].append(base["central"])
            cell["alone"].append(base["alone"])
            if out is None:
                cell.setdefault("failed", []).append(seed)
                continue
            cell["swarm"].append(out)
            B.say(f"{rounds} rounds seed {seed}: swarm acc {out['metrics']['accuracy']:.3f} auc "
                  f"{out['metrics']['roc_auc']:.3f} ({out['seconds']:.0f} s); central {base['central']['accuracy']:.3f}")
    return results


def _ms(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    hospitals = sorted(next(iter(results.values()))["alone"][0])
    lines = ["# The heart hospitals as a swarm of node processes", "",
             f"Command: `{meta['command']}`; {meta['seconds']:.0f} s. Model {meta['model']}, settings "
             f"{' '.join(meta['settings']) or 'the shipped defaults'}; {meta['seeds']} seeds, mean ± std, percent, "
             "all 254 test rows pooled.", "",
             "| rounds | swarm acc | swarm AUC | central acc | central AUC | "
             + " | ".join(f"{h} alone acc" for h in hospitals) + " | run (s) |",
             "|---|---|---|---|---|" + "---|" * len(hospitals) + "---|"]
    for rounds, cell in results.items():
        lines.append(
            f"| {rounds} | {_ms([s['metrics']['accuracy'] for s in cell['swarm']])} | "
            f"{_ms([s['metrics']['roc_auc'] for s in cell['swarm']])} | {_ms([c['accuracy'] for c in cell['central']])} | "
            f"{_ms([c['auc'] for c in cell['central']])} | "
            + " | ".join(_ms([a[h]['accuracy'] for a in cell['alone']]) for h in hospitals)
            + f" | {np.mean([s['seconds'] for s in cell['swarm']]):.0f} |"
            + (f" failed: seed(s) {cell['failed']}" if cell.get("failed") else ""))
    first = next(iter(results.values()))["swarm"][0]
    lines += ["", "`medswarm evaluate` of the first run:", "", "```", first["evaluate_output"].strip(), "```"]
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for rounds, cell in results.items():
        curves = np.array([s["curve"] for s in cell["swarm"]])
        x = np.arange(1, curves.shape[1] + 1)
        ax.plot(x, 100 * curves.mean(axis=0), label=f"swarm, {rounds} rounds (mean of {len(curves)} seeds)")
        ax.fill_between(x, 100 * curves.min(axis=0), 100 * curves.max(axis=0), alpha=0.2)
        ax.axhline(100 * np.mean([c["accuracy"] for c in cell["central"]]), ls="--", lw=1, color="grey")
    longest = max(results, key=int)
    alone = np.mean([np.mean([v["accuracy"] for v in a.values()]) for a in results[longest]["alone"]])
    ax.axhline(100 * alone, ls=":", color="black", label=f"a hospital alone ({longest} epochs, mean of 4)")
    ax.plot([], [], ls="--", color="grey", label="central training (same rows, epochs = rounds)")
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy, 254 pooled rows (%)")
    ax.set_title("Heart hospitals: 4 node processes on anvil")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _settings_of(folder: Path) -> tuple[str, ...]:
    """The settings `medswarm swarm --data folder` applies (node.cli.settings_file: its own file, else
    its shipped split's, its column names translated where they differ)."""
    path, names = settings_file(argparse.Namespace(settings=None, data=str(folder), label=None))
    return translated(load_settings(path), names) if path is not None else ()


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "/tmp/heartswarm", "1 seed, 3 rounds")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", default="10,50")
    ap.add_argument("--model", help="the model (default: the settings file's, logreg; with --generic logreg too)")
    ap.add_argument("--generic", action="store_true", help="the shipped defaults only, not the heart folder's own "
                                                          "settings file (quality.SHIPPED_HEART_SETTINGS)")
    ap.add_argument("--data", default=str(HEART_SPLIT), help="the hospitals' folder (default: the heart split)")
    args = ap.parse_args(argv)
    B.quiet()
    import torch

    torch.set_num_threads(1)  # the baselines' small models; more threads only contend with the node processes
    started = time.monotonic()
    rounds_list, seeds = ([3], [0]) if args.quick else ([int(r) for r in args.rounds.split(",")],
                                                        list(range(args.seeds)))
    model = args.model or "logreg"
    folder = Path(args.data)
    settings = () if args.generic else (*_settings_of(folder), *((f'model.kind="{args.model}"',) if args.model else ()))
    options = ("--settings", "none", "--model", model) if args.generic else (
        ("--model", args.model) if args.model else ())
    results = run(rounds_list, seeds, model, Path(args.runs), settings, options, folder)
    meta = {"command": "python -m scripts.bench.heartswarm " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seconds": time.monotonic() - started, "model": model, "seeds": len(seeds), "machine": B.machine(),
            "settings": list(settings)}
    md = markdown(results, meta)
    publish(Path(args.out), "heartswarm", {"meta": meta, "results": results}, md,
            lambda out: plot(results, out / "heartswarm.png"))
    print(md)
    B.say(f"benchmark done: {args.out}/heartswarm.md, {args.out}/heartswarm.json, {args.out}/heartswarm.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
