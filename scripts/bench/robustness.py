"""Robustness: one hostile member among four hospitals, for each behaviour of node.attacks.

    .venv/bin/python -m scripts.bench.robustness [--quick] [--out reports/bench] [--seeds N]

UCI heart, its 4 hospitals as 4 nodes, the median merge, 6 rounds, in one process (real libp2p
hosts, an eth-tester chain). VA Long Beach (node 3) misbehaves as `swarm.attack` says; "none" is
the honest baseline and "hijack x2" adds Switzerland (node 2) as a second, colluding hijacker.
Per behaviour and seed it measures what the honest nodes keep and what the attackers get:

- honest accuracy: the honest nodes' mean test accuracy (each on its own test rows), and its
  difference from the baseline's on the same nodes and seed;
- honest rounds lost: per honest node, the rounds whose commit the chain refused or whose scores
  never reached it (a round counts once per node), summed over honest nodes;
- the attackers' payout in ETH and their share of the pool (in the baseline: what VA Long Beach
  earns by behaving), and the strikes honest nodes counted against them (inputs dropped:
  undecodable, not committed, not served);
- honest collect seconds per round (what waiting for the attacker cost) and how many distinct
  final models the honest nodes hold (1 unless the swarm was split).

Writes robustness.json and robustness.md into --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from node.rundir import RunFolder
from scripts.bench import harness as B
from scripts.bench.output import publish

WEI_PER_ETH = 10**18
ATTACKER = 3
SCENARIOS: dict[str, dict[int, str]] = {
    "none": {},
    **{kind: {ATTACKER: kind} for kind in ("scale", "signflip", "zero", "copy", "garbage", "uncommitted",
                                           "noserve", "hijack")},
    "hijack x2": {2: "hijack", ATTACKER: "hijack"},
}
QUICK_SCENARIOS = ("none", "garbage")


def measure(run: B.SwarmRun, attackers: set[int]) -> dict[str, Any]:
    """What the honest nodes kept and what the attackers got in one run; in the baseline (no
    attackers) the pay is the would-be attacker's, what it earns by behaving."""
    rows = run.report["nodes"]
    honest = [i for i in range(len(rows)) if i not in attackers]
    bad = {rows[i]["name"] for i in attackers}
    paid = attackers or {ATTACKER}
    lost = 0
    collect: list[float] = []
    for i in honest:
        name = rows[i]["name"]
        metrics = run.metrics[name]
        refused = {m["round"] for m in metrics if not m["committed"]}
        scored = {s["round"] for s in RunFolder(run.plan.out / name).read_scores()}
        lost += len(refused | (set(range(1, run.plan.rounds + 1)) - scored))
        collect += [m["phases"]["collect"] for m in metrics]
    summaries = [run.summaries[rows[i]["name"]] or {} for i in honest]
    payout = sum(rows[i]["payout_wei"] for i in paid)
    return {
        "honest": [rows[i]["name"] for i in honest],
        "attackers": sorted(bad),
        "honest_accuracy": {rows[i]["name"]: rows[i]["test_accuracy"] for i in honest},
        "honest_rounds_lost": lost,
        "attacker_payout_eth": payout / WEI_PER_ETH,
        "attacker_pool_share": payout / run.report["pool_wei"],
        "honest_strikes_on_attacker": sum(n for s in summaries for who, n in s.get("strikes", {}).items()
                                          if who in bad),
        "honest_collect_s_per_round": sum(collect) / len(collect) if collect else None,
        "honest_models": len({s.get("model_digest") for s in summaries}),
        "audit_ok": run.report["audit_ok"],
        "seconds": run.seconds,
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def run_all(base: B.SwarmPlan, scenarios: tuple[str, ...], seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    """Every scenario for every seed; each result row also carries its accuracy change from the
    baseline ("none", same seed) measured on the same honest nodes."""
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
    for seed in seeds:
        baseline: dict[str, float] = {}
        for name in scenarios:
            attacks = SCENARIOS[name]
            plan = B.plan_with(base, seed=seed, attacks=attacks,
                               out=base.out / f"{name.replace(' ', '-')}-s{seed}")
            row = measure(B.run_swarm(plan, f"{name} seed {seed}", read_chain=False), set(attacks))
            accuracy = row["honest_accuracy"]
            if not attacks:
                baseline = accuracy
            row["seed"] = seed
            row["honest_mean_accuracy"] = _mean(list(accuracy.values()))
            row["accuracy_change"] = (row["honest_mean_accuracy"] - _mean([baseline[n] for n in accuracy])
                                      if baseline else None)
            B.say(f"{name} seed {seed}: honest acc {row['honest_mean_accuracy']:.3f}, rounds lost "
                  f"{row['honest_rounds_lost']}, attacker paid {row['attacker_payout_eth']:.3f} ETH, "
                  f"{row['honest_strikes_on_attacker']} strikes, {row['seconds']:.0f}s")
            results[name].append(row)
    return results


def summarise(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Mean ± std over seeds of each measured quantity, per scenario."""
    keys = ("honest_mean_accuracy", "accuracy_change", "honest_rounds_lost", "attacker_payout_eth",
            "attacker_pool_share", "honest_strikes_on_attacker", "honest_collect_s_per_round", "honest_models")
    return {name: {"attackers": rows[0]["attackers"], "audit_ok": all(r["audit_ok"] for r in rows),
                   **{k: B.mean_std([r[k] for r in rows]) for k in keys}}
            for name, rows in results.items()}


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| behaviour | attacker(s) | honest acc (%) | vs none, same nodes (points) | honest rounds lost | "
             "attacker payout (ETH) | share of pool (%) | honest strikes on it | honest collect (s/round) | "
             "honest models | audit |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        change = "-" if name == "none" else B.fmt_ms(s["accuracy_change"], digits=1)
        lines.append(" | ".join([
            f"| {name}", ", ".join(s["attackers"]) or "-", B.fmt_ms(s["honest_mean_accuracy"]), change,
            B.fmt_ms(s["honest_rounds_lost"], scale=1, digits=1),
            B.fmt_ms(s["attacker_payout_eth"], scale=1, digits=3),
            B.fmt_ms(s["attacker_pool_share"]),
            "-" if name == "none" else B.fmt_ms(s["honest_strikes_on_attacker"], scale=1, digits=1),
            B.fmt_ms(s["honest_collect_s_per_round"], scale=1, digits=1),
            B.fmt_ms(s["honest_models"], scale=1, digits=0),
            "ok" if s["audit_ok"] else "MISMATCH"]) + " |")
    return "\n".join(lines)


def markdown(summary: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    return "\n".join([
        "# Robustness", "",
        f"Command: `{meta['command']}`; {meta['seconds']:.0f} s on {meta['machine']['cpus']} CPUs. "
        f"{meta['setting']}; mean ± std over {len(meta['seeds'])} seed(s).", "",
        table(summary), ""])


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/robustness", "seconds-long smoke run: 2 rounds, baseline and garbage")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args(argv)
    B.quiet()
    started = time.monotonic()
    out = Path(args.out)
    rounds, scenarios = (2, QUICK_SCENARIOS) if args.quick else (args.rounds, tuple(SCENARIOS))
    base = B.SwarmPlan(nodes=4, rounds=rounds, dataset="heart", merge="median", in_process=True,
                       round_timeout=10.0, out=Path(args.runs))
    seeds = list(range(args.seeds))
    results = run_all(base, scenarios, seeds)
    summary = summarise(results)
    meta = {"command": "python -m scripts.bench.robustness" + (" --quick" if args.quick else "")
                       + (f" --seeds {args.seeds}" if args.seeds != 1 else ""),
            "seconds": time.monotonic() - started, "machine": B.machine(), "seeds": seeds,
            "setting": f"UCI heart, 4 hospitals, median merge, {rounds} rounds, in process, "
                       f"round timeout {base.round_timeout:g} s"}
    publish(out, "robustness", {"meta": meta, "summary": summary, "runs": results}, markdown(summary, meta))
    print(table(summary))
    B.say(f"robustness benchmark done in {meta['seconds']:.0f}s: {out}/robustness.json, robustness.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
