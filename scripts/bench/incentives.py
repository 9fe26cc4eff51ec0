"""Incentives: what dishonest members earn, and what honest members keep, per behaviour.

    .venv/bin/python -m scripts.bench.incentives [--quick] [--seeds 3] [--rounds 6] [--scenarios NAME...]
        [--round-seconds 10] [--out reports/bench]

Each scenario runs a real swarm in one process (libp2p hosts on sockets, the compiled ledger on
eth-tester) and its honest twin: the same nodes, data and seed with everybody behaving. The
dishonest members are fewer than half (1 of 4, 2 of 5, 3 of 8) except in "collude 2 of 4",
where exactly half collude and the round votes split. Per scenario and seed it records every
member's payout, and from those:

- the highest dishonest payout and the lowest honest payout (the rule holds when the first is
  below the second);
- each honest member's payout against its payout in the honest twin run: the largest loss in
  percent (the target is at most 10 %);
- whether the audit agreed with the chain.

Scenarios (heart: the four UCI hospitals, "sybil" adds a second identity holding VA Long
Beach's rows; breast cancer: 8 IID nodes):
copy (a peer's previous update + noise 1e-6), scaledcopy (x 1e-3), noisycopy (+ noise 0.5, |cos|
about 0.9; by VA Long Beach, by Hungary, by Switzerland and by Cleveland), noise (a random vector of the median
length; by VA Long Beach and by Switzerland), zero, signflip (its own work x -1; by VA Long
Beach and by Hungary), scale (its own work x 100), noserve, liar (votes 0
for everyone else), sybil (VA Long Beach and its twin, which sends its partner's update + noise;
both vote for each other), collude 3 of 8, collude 2 of 4 (a split), collude 2 of 4 again
with stake (1 ETH, slash 0.25 ETH) and the sponsor's referee node, whose vote decides, and collude
2 of 4 with the referee holding the sponsor's published validation set (the hospitals' validation
rows pooled), which picks the vector it votes among the members' in each split round.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.scenarios import write_published_set
from scripts.bench import harness as B
from scripts.bench.output import publish

WEI_PER_ETH = 10**18


@dataclass(frozen=True)
class Scenario:
    """A swarm set-up and who misbehaves in it."""

    dataset: str
    nodes: int
    attacks: dict[int, str]
    twins: dict[int, int] = field(default_factory=dict)
    referee: bool = False  # the sponsor's referee node votes too (its vote decides)
    stake_eth: float = 0.0  # each member bonds this; a slash is a quarter of it
    validation: bool = False  # the referee holds the sponsor's published validation set (pooled rows)
    overrides: tuple[str, ...] = ()  # node config values for this scenario (SECTION.KEY=VALUE)

    @property
    def dishonest(self) -> set[int]:
        return set(self.attacks) | set(self.twins)


HEART4 = ("heart", 4)
SCENARIOS: dict[str, Scenario] = {
    "copy": Scenario(*HEART4, {3: "copy"}),
    "scaledcopy": Scenario(*HEART4, {3: "scaledcopy"}),
    "noisycopy": Scenario(*HEART4, {3: "noisycopy"}),
    "noisycopy by hungary": Scenario(*HEART4, {1: "noisycopy"}),
    "noisycopy by switzerland": Scenario(*HEART4, {2: "noisycopy"}),
    "noisycopy by cleveland": Scenario(*HEART4, {0: "noisycopy"}),
    "noise": Scenario(*HEART4, {3: "noise"}),
    "noise by switzerland": Scenario(*HEART4, {2: "noise"}),
    "zero": Scenario(*HEART4, {3: "zero"}),
    "signflip": Scenario(*HEART4, {3: "signflip"}, overrides=("swarm.attack_factor=1",)),
    "signflip by hungary": Scenario(*HEART4, {1: "signflip"}, overrides=("swarm.attack_factor=1",)),
    "scale": Scenario(*HEART4, {3: "scale"}),
    "noserve": Scenario(*HEART4, {3: "noserve"}),
    "liar": Scenario(*HEART4, {3: "liar"}),
    "sybil 2 of 5": Scenario("heart", 5, {3: "collude", 4: "collude"}, twins={4: 3}),
    "collude 3 of 8": Scenario("breast_cancer", 8, {5: "collude", 6: "collude", 7: "collude"}),
    "collude 2 of 4": Scenario(*HEART4, {2: "collude", 3: "collude"}),
    "collude 2 of 4, referee, staked": Scenario(*HEART4, {2: "collude", 3: "collude"}, referee=True, stake_eth=1.0),
    "collude 2 of 4, referee with validation": Scenario(*HEART4, {2: "collude", 3: "collude"}, referee=True,
                                                        validation=True),
}
QUICK = ("copy", "liar")


def honest_twin(s: Scenario) -> Scenario:
    """The same nodes and data, everyone behaving (a sybil twin still trains on its partner's rows)."""
    return Scenario(s.dataset, s.nodes, {}, s.twins)


def run(base: B.SwarmPlan, s: Scenario, seed: int, label: str) -> dict[str, Any]:
    # In-process nodes share one interpreter: eight need a longer window than four to all commit
    # round 1 before its clock runs out on a loaded machine.
    plan = B.plan_with(base, dataset=s.dataset, nodes=s.nodes, attacks=s.attacks, twins=s.twins, seed=seed,
                       referee=s.referee, stake_eth=s.stake_eth, slash_eth=s.stake_eth / 4,
                       round_timeout=max(base.round_timeout, 2.5 * s.nodes),
                       node_overrides=base.node_overrides + s.overrides,
                       out=base.out / f"{label.replace(' ', '-').replace(',', '')}-s{seed}")
    if s.validation:  # the sponsor publishes the pooled validation rows; the referee decides splits with them
        write_published_set(plan.out / "validation.npz", B.pooled_validation_set(plan))
        plan = B.plan_with(plan, validation=plan.out / "validation.npz")
    result = B.run_swarm(plan, f"{label} seed {seed}", read_chain=False)
    rows = result.report["nodes"]
    heard = sum(m["heard"] for ms in result.metrics.values() for m in ms)
    expected = sum(m["expected"] for ms in result.metrics.values() for m in ms)
    return {"payout_eth": {r["name"]: r["payout_wei"] / WEI_PER_ETH for r in rows},
            "names": [r["name"] for r in rows], "audit_ok": result.report["audit_ok"], "seconds": result.seconds,
            "heard": heard, "expected": expected}


def measure(s: Scenario, attacked: dict[str, Any], honest: dict[str, Any]) -> dict[str, Any]:
    names = attacked["names"]
    bad = [names[i] for i in sorted(s.dishonest)]
    good = [n for i, n in enumerate(names) if i not in s.dishonest]
    pay, base = attacked["payout_eth"], honest["payout_eth"]
    losses = [100.0 * (base[n] - pay[n]) / base[n] for n in good if base[n] > 0]
    return {"dishonest": bad, "dishonest_max_eth": max(pay[n] for n in bad),
            "honest_min_eth": min(pay[n] for n in good), "honest_max_loss_pct": max(losses, default=0.0),
            "dishonest_below_honest": max(pay[n] for n in bad) < min(pay[n] for n in good),
            "payout_eth": pay, "honest_run_payout_eth": base,
            # a twin that missed updates (a loaded machine) is no baseline: its losses measure the load
            "twin_complete": honest["heard"] == honest["expected"],
            "audit_ok": attacked["audit_ok"] and honest["audit_ok"]}


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = ["| behaviour | dishonest | highest dishonest payout (ETH) | lowest honest payout (ETH) | "
             "largest honest loss vs honest run (%) | dishonest below every honest | audit | "
             "honest run heard every update |",
             "|---|---|---|---|---|---|---|---|"]
    for name, s in summary.items():
        lines.append(" | ".join([
            f"| {name}", ", ".join(s["dishonest"]), B.fmt_ms(s["dishonest_max_eth"], scale=1, digits=3),
            B.fmt_ms(s["honest_min_eth"], scale=1, digits=3), B.fmt_ms(s["honest_max_loss_pct"], scale=1),
            f"{s['below']}/{s['runs']}", "ok" if s["audit_ok"] else "MISMATCH",
            f"{s['twins_complete']}/{s['runs']}"]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/incentives", "a short run: 2 rounds, copy and liar, one seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--scenarios", nargs="+", choices=tuple(SCENARIOS), metavar="NAME",
                    help=f"run only these (default: all): {', '.join(SCENARIOS)}")
    ap.add_argument("--round-seconds", type=float, default=10.0,
                    help="the task's round window (default 10 s; 2.5 s per node at least). On a loaded machine "
                         "in-process nodes miss a short window and the runs measure the load, not the rule")
    args = ap.parse_args(argv)
    B.quiet()
    started = time.monotonic()
    names, rounds, seeds = ((QUICK, 2, [0]) if args.quick else
                            (tuple(args.scenarios or SCENARIOS), args.rounds, list(range(args.seeds))))
    base = B.SwarmPlan(rounds=rounds, merge="median", in_process=True, round_timeout=args.round_seconds,
                       out=Path(args.runs))
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    honest_runs: dict[tuple, dict[str, Any]] = {}
    for seed in seeds:
        for name in names:
            s = SCENARIOS[name]
            twin = honest_twin(s)
            key = (twin.dataset, twin.nodes, tuple(sorted(twin.twins.items())), seed)
            if key not in honest_runs:
                honest_runs[key] = run(base, twin, seed, f"honest-{twin.dataset}-{twin.nodes}")
            row = {"seed": seed, **measure(s, run(base, s, seed, name), honest_runs[key])}
            B.say(f"{name} seed {seed}: dishonest max {row['dishonest_max_eth']:.3f} ETH, honest min "
                  f"{row['honest_min_eth']:.3f} ETH, honest loss <= {row['honest_max_loss_pct']:.1f}%"
                  + ("" if row["twin_complete"] else " (its honest run missed updates: load, not the rule)"))
            results[name].append(row)
    summary = {name: {"dishonest": rows[0]["dishonest"], "runs": len(rows),
                      "below": sum(r["dishonest_below_honest"] for r in rows),
                      "audit_ok": all(r["audit_ok"] for r in rows),
                      "twins_complete": sum(r["twin_complete"] for r in rows),
                      **{k: B.mean_std([r[k] for r in rows])
                         for k in ("dishonest_max_eth", "honest_min_eth", "honest_max_loss_pct")}}
               for name, rows in results.items()}
    command = " --quick" if args.quick else f" --seeds {args.seeds}" + (
        f" --scenarios {' '.join(repr(n) for n in args.scenarios)}" if args.scenarios else "") + (
        f" --round-seconds {args.round_seconds:g}" if args.round_seconds != 10.0 else "")
    meta = {"command": "python -m scripts.bench.incentives" + command,
            "seconds": time.monotonic() - started, "machine": B.machine(), "seeds": seeds,
            "setting": f"median merge, {rounds} rounds, pool {base.pool_eth:g} ETH, rounds of "
                       f"{base.round_timeout:g} s, in process on eth-tester"}
    markdown = "\n".join(["# Incentives", "", f"Command: `{meta['command']}`; {meta['seconds']:.0f} s. "
                          f"{meta['setting']}; mean ± std over {len(seeds)} seed(s).", "", table(summary), ""])
    publish(Path(args.out), "incentives", {"meta": meta, "summary": summary, "runs": results}, markdown)
    print(table(summary))
    B.say(f"incentives benchmark done in {meta['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
