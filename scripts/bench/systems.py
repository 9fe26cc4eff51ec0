"""Systems cost of a round: phases, bytes, gas, chain transactions, peak memory.

    .venv/bin/python -m scripts.bench.systems [--quick] [--out reports/bench]

Every run is a real swarm from the one launcher in process mode (anvil + one OS process per
node), breast cancer shards (IID), a few rounds. Two sweeps:
- scale: N = 2, 4, 8, 16 nodes with the default model (mlp, hidden 32): time per round split
  by phase, gas per node per round, chain transactions per round, time waiting on the chain,
  peak RSS per node process;
- model size: mlp hidden sizes giving ~10k, ~1M, ~10M parameters at N = 4, plus ~1M at N = 8
  (the round-overhead target): bytes sent/received per node per round against the raw model.

Round 1 pays one-off costs (first torch call, connection set-up), so time and bytes are
averaged over rounds 2.. ("steady"); gas is shown both per steady round and amortised over the
whole run (all node transactions / (N x rounds)). Writes systems.json, systems.md and
systems_phases.png into --out.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from scripts.bench import harness as B
from scripts.bench.output import publish

N_FEATURES = 30  # breast cancer
SIZES = {"10k": 85, "1M": 983, "10M": 3145}  # mlp hidden width -> ~parameters for 30 inputs


def params_for(hidden: int, n_features: int = N_FEATURES, n_classes: int = 2) -> int:
    from node.models import build_model, parameter_count

    return parameter_count(build_model("mlp", n_features, n_classes, hidden=hidden))


def analyse(run: B.SwarmRun, hidden: int, params: int | None = None) -> dict:
    """Per-round costs of one run, averaged over nodes and steady rounds (2..R, or 1 if R == 1);
    `params` defaults to the mlp of width `hidden`."""
    n, rounds = run.plan.nodes, run.plan.rounds
    steady = set(range(2, rounds + 1)) or {1}
    rows = []  # (round, node, phases with per-round chain busy time, bytes)
    for name, ms in run.metrics.items():
        chain_before = 0.0
        for m in ms:
            ph = dict(m["phases"])
            busy = ph.pop("chain", 0.0)  # the writer's cumulative busy time: take differences
            ph["chain_writer_busy"] = max(0.0, busy - chain_before)
            chain_before = busy
            rows.append((m["round"], name, ph, m.get("bytes_in"), m.get("bytes_out"), m["heard"], m["expected"]))
    st = [r for r in rows if r[0] in steady]
    phase_mean = {p: statistics.fmean(r[2].get(p, 0.0) for r in st) for p in B.PHASES + ("chain_writer_busy",)}
    wall = [sum(r[2].get(p, 0.0) for p in B.PHASES) for r in st]
    non_train = [w - r[2].get("train", 0.0) for w, r in zip(wall, st)]
    # swarm-level: a round lasts as long as its slowest node; overhead = that minus the longest training
    per_round = {}
    for r in st:
        per_round.setdefault(r[0], []).append(r)
    swarm_round = [max(sum(x[2].get(p, 0.0) for p in B.PHASES) for x in rs) for rs in per_round.values()]
    swarm_over = [max(sum(x[2].get(p, 0.0) for p in B.PHASES) for x in rs) - max(x[2].get("train", 0.0) for x in rs)
                  for rs in per_round.values()]
    bytes_in = [r[3] for r in st if r[3] is not None]
    bytes_out = [r[4] for r in st if r[4] is not None]
    params = params or params_for(hidden)
    raw = 4 * params
    node_txs = run.txs
    gas_total = sum(t.gas for t in node_txs)
    steady_gas = [t.gas for t in node_txs if t.round in steady and t.round != rounds] or \
                 [t.gas for t in node_txs if t.round in steady]
    steady_rounds = len({t.round for t in node_txs if t.round in steady and t.round != rounds}) or len(steady)
    by_fn = Counter(t.function for t in node_txs)
    gas_by_fn = {fn: statistics.fmean(t.gas for t in node_txs if t.function == fn) for fn in by_fn}
    return {
        "nodes": n, "rounds": rounds, "hidden": hidden, "params": params, "raw_model_bytes": raw,
        "seconds": run.seconds, "steady_rounds": sorted(steady),
        "heard": sum(r[5] for r in rows), "expected": sum(r[6] for r in rows),
        "phase_mean_s": phase_mean,
        "node_round_s": statistics.fmean(wall), "node_non_train_s": statistics.fmean(non_train),
        "node_non_train_max_s": max(non_train),
        "swarm_round_s": statistics.fmean(swarm_round), "swarm_non_train_s": statistics.fmean(swarm_over),
        "bytes_in_per_node_round": statistics.fmean(bytes_in) if bytes_in else None,
        "bytes_out_per_node_round": statistics.fmean(bytes_out) if bytes_out else None,
        "bytes_in_over_raw": statistics.fmean(bytes_in) / raw if bytes_in else None,
        "bytes_out_over_raw": statistics.fmean(bytes_out) / raw if bytes_out else None,
        "chain_txs": len(node_txs), "chain_txs_per_round": len(node_txs) / rounds,
        "txs_by_function": dict(by_fn), "gas_by_function": gas_by_fn,
        "gas_per_node_round_amortised": gas_total / (n * rounds) if node_txs else None,
        "gas_per_node_round_steady": sum(steady_gas) / (n * steady_rounds) if steady_gas else None,
        "commit_wait_s": phase_mean["commit"],
        "peak_rss_mb": {k: v / 2**20 for k, v in sorted(run.peak_rss.items())},
        "peak_rss_mb_max": max(run.peak_rss.values()) / 2**20 if run.peak_rss else None,
        "peak_rss_mb_mean": statistics.fmean(run.peak_rss.values()) / 2**20 if run.peak_rss else None,
        "vmhwm_mb_max": max(run.vmhwm.values()) / 2**20 if run.vmhwm else None,
        "exit_codes": run.exit_codes,
        "cpu_per_node_round": _steady_cpu(run),
    }


def _steady_cpu(run: B.SwarmRun) -> float | None:
    """CPU-seconds (user + system) per node per round after round 1, training included."""
    steady = run.plan.rounds - 1
    cpu = [run.cpu_seconds[n] - run.cpu_at_round1[n] for n in run.names
           if n in run.cpu_seconds and n in run.cpu_at_round1]
    return statistics.fmean(cpu) / steady if cpu and steady > 0 else None


def one(nodes: int, hidden: int, rounds: int, runs: Path, in_process: bool, label: str,
        extra: tuple[str, ...] = ()) -> dict:
    overrides = (() if hidden == 32 else (f"model.hidden={hidden}",)) + extra
    plan = B.SwarmPlan(nodes=nodes, rounds=rounds, dataset="breast_cancer", partition="iid",
                       in_process=in_process, out=runs / label, node_overrides=overrides, round_timeout=60.0)
    run = B.run_swarm(plan, label)
    res = analyse(run, hidden)
    res["label"], res["overrides"] = label, list(extra)
    cpu = res["cpu_per_node_round"]
    B.say(f"{label}: {res['params']:,} params | node round {res['node_round_s']:.2f}s, non-train "
          f"{res['node_non_train_s']:.2f}s | CPU {'-' if cpu is None else f'{cpu:.2f}'} s per node-round | in {_mb(res['bytes_in_per_node_round'])} out "
          f"{_mb(res['bytes_out_per_node_round'])} per node-round | gas/node/round "
          f"{res['gas_per_node_round_amortised'] or 0:,.0f} | peak RSS {res['peak_rss_mb_max'] or 0:.0f} MB")
    return res


def _mb(v) -> str:
    return "-" if v is None else f"{v / 1e6:.2f} MB"


def _f(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(scale: list[dict], sizes: list[dict], tgts: list[dict], meta: dict) -> str:
    lines = ["# Systems cost", "",
             f"Command: `{meta['command']}`; {meta['seconds']:.0f} s on {meta['machine']['cpus']} CPUs "
             "(all node processes share them). Process mode: anvil + one OS process per node, loopback, "
             "breast cancer IID shards. Times are means over nodes and steady rounds (2..R), in seconds.", "",
             "## Time per round by phase (mlp hidden 32)", "",
             "| nodes | params | train | commit | share | collect | merge | score | checkpoint | node round "
             "| non-train (node) | non-train (swarm) | chain writer busy |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in scale:
        p = r["phase_mean_s"]
        lines.append(f"| {r['nodes']} | {r['params']:,} | " + " | ".join(f"{p[k]:.2f}" for k in B.PHASES)
                     + f" | {r['node_round_s']:.2f} | {r['node_non_train_s']:.2f} | {r['swarm_non_train_s']:.2f}"
                     f" | {p['chain_writer_busy']:.2f} |")
    lines += ["", "non-train (node): a node's round minus its own training; non-train (swarm): the slowest "
              "node's round minus the longest training. `collect` includes waiting for slower peers to "
              "finish training and reading their commitments from the chain.", "",
              "## Chain: gas, transactions, waiting", "",
              "| nodes | gas / node / round (amortised) | gas / node / round (steady) | node txs / round "
              "| txs by function | mean gas by function | commit wait (s) | peak RSS / node (MB, max) |",
              "|---|---|---|---|---|---|---|---|"]
    for r in scale:
        fns = ", ".join(f"{k} {v}" for k, v in sorted(r["txs_by_function"].items()))
        gas = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(r["gas_by_function"].items()))
        lines.append(f"| {r['nodes']} | {_f(r['gas_per_node_round_amortised'], '{:,.0f}')} | "
                     f"{_f(r['gas_per_node_round_steady'], '{:,.0f}')} | {r['chain_txs_per_round']:.1f} | {fns} | "
                     f"{gas} | {r['commit_wait_s']:.2f} | {_f(r['peak_rss_mb_max'], '{:.0f}')} |")
    lines += ["", "Amortised: every node transaction of the run (commits, scores, finalizations) / (N x rounds). "
              "Steady: rounds 2..R-1 (round 1 commits without scores; the last round's scores go alone). "
              "Commit wait: the round blocks until its commit is mined. Peak RSS: the kernel's high-water "
              "mark of each node process (wait4 rusage).", "",
              "## Bytes per node per round vs model size", "",
              "| nodes | hidden | params | raw model (MB) | in / node / round (MB) | out / node / round (MB) "
              "| in / raw | out / raw | node round (s) | train (s) | non-train (s) | CPU / node / round (s) "
              "| peak RSS (MB) |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sizes:
        lines.append(f"| {r['nodes']} | {r['hidden']} | {r['params']:,} | {r['raw_model_bytes'] / 1e6:.2f} | "
                     f"{_f(r['bytes_in_per_node_round'] and r['bytes_in_per_node_round'] / 1e6)} | "
                     f"{_f(r['bytes_out_per_node_round'] and r['bytes_out_per_node_round'] / 1e6)} | "
                     f"{_f(r['bytes_in_over_raw'], '{:.1f}x')} | {_f(r['bytes_out_over_raw'], '{:.1f}x')} | "
                     f"{r['node_round_s']:.2f} | {r['phase_mean_s']['train']:.2f} | {r['node_non_train_s']:.2f} | "
                     f"{_f(r['cpu_per_node_round'])} | {_f(r['peak_rss_mb_max'], '{:.0f}')} |")
    lines += ["", "A node receives N-1 updates per round (plus merged-model bundles a peer fetches only to "
              "catch up), so in/raw near N-1 is the floor for full-model exchange. CPU / node / round: "
              "user + system CPU of a node process after round 1, per round, training included.", "",
              "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for t in tgts:
        lines.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else 'no'} |")
    lines += ["", "![phases](systems_phases.png)", ""]
    return "\n".join(lines)


def targets(scale: list[dict], sizes: list[dict]) -> list[dict]:
    out = []
    m8 = [r for r in sizes if r["nodes"] == 8 and r["hidden"] == SIZES["1M"]]
    if m8:
        r = m8[0]
        out.append({"target": "non-training part of a round < 1 s, ~1M params, 8 nodes (swarm-level)",
                    "measured": f"{r['swarm_non_train_s']:.2f} s (node mean {r['node_non_train_s']:.2f} s)",
                    "value": r["swarm_non_train_s"], "met": r["swarm_non_train_s"] < 1.0})
    g8 = [r for r in scale if r["nodes"] == 8]
    if g8 and g8[0]["gas_per_node_round_amortised"]:
        r = g8[0]
        value = r["gas_per_node_round_steady"] or r["gas_per_node_round_amortised"]
        out.append({"target": "<= 100k gas per node per round at N = 8 (steady rounds)",
                    "measured": f"{r['gas_per_node_round_steady'] or 0:,.0f} steady, "
                                f"{r['gas_per_node_round_amortised']:,.0f} amortised over a {r['rounds']}-round run",
                    "value": value, "met": value <= 100_000})
    return out


def plot(scale: list[dict], sizes: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    runs = scale + [r for r in sizes if r not in scale]
    labels = [f"N={r['nodes']}\nh={r['hidden']}" for r in runs]
    bottom = [0.0] * len(runs)
    for i, p in enumerate(B.PHASES):
        vals = [r["phase_mean_s"][p] for r in runs]
        a.bar(labels, vals, bottom=bottom, label=p, color=f"C{i}")
        bottom = [x + y for x, y in zip(bottom, vals)]
    a.set_ylabel("seconds per round (node mean)")
    a.set_title("Round time by phase", fontsize=9)
    a.tick_params(axis="x", labelsize=7)
    a.legend(fontsize=7)
    ns = [r["nodes"] for r in scale if r["gas_per_node_round_amortised"]]
    b.plot(ns, [r["gas_per_node_round_amortised"] for r in scale if r["gas_per_node_round_amortised"]],
           marker="o", label="gas / node / round (amortised)")
    b.axhline(100_000, color="grey", ls="--", lw=1, label="target 100k")
    b.set_xlabel("nodes")
    if ns:  # no scale sweep (`--nodes ""`): nothing to put on a log axis
        b.set_xscale("log", base=2)
    b.set_title("Gas per node per round", fontsize=9)
    b.legend(fontsize=7)
    b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/systems", "seconds-long smoke run: 2 nodes in one process, 2 rounds")
    ap.add_argument("--nodes", default="2,4,8,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default="10k,1M,10M", help="model sizes for the bytes sweep at N=4")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a node config override for every run, e.g. swarm.compression=q8 (repeatable)")
    args = ap.parse_args(argv)
    extra = tuple(args.set)
    B.quiet()
    started = time.monotonic()
    out, runs = Path(args.out), Path(args.runs)
    scale, sizes = [], []
    if args.quick:
        scale.append(one(2, 32, 2, runs, True, "quick-n2"))
        sizes.append(one(2, SIZES["10k"], 2, runs, True, "quick-n2-10k"))
    else:
        for n in [int(x) for x in args.nodes.split(",") if x]:
            scale.append(one(n, 32, args.rounds, runs, False, f"scale-n{n}", extra))
        for size in [s for s in args.sizes.split(",") if s]:
            sizes.append(one(4, SIZES[size], args.rounds, runs, False, f"size-n4-{size}", extra))
        sizes.append(one(8, SIZES["1M"], args.rounds, runs, False, "size-n8-1M", extra))
    tgts = targets(scale, sizes)
    seconds = time.monotonic() - started
    command = " ".join(["python -m scripts.bench.systems"] + (["--quick"] if args.quick else [])
                       + [f"--set {x}" for x in extra])
    meta = {"command": command, "overrides": list(extra), "seconds": seconds,
            "machine": B.machine(), "mode": "in-process (eth-tester)" if args.quick else "process mode (anvil)"}
    publish(out, "systems", {"meta": meta, "scale": scale, "model_size": sizes, "targets": tgts},
              markdown(scale, sizes, tgts, meta), lambda folder: plot(scale, sizes, folder / "systems_phases.png"))
    for t in tgts:
        B.say(f"target: {t['target']}: {t['measured']}, met={t['met']}")
    B.say(f"systems benchmark done in {seconds:.0f}s: {out}/systems.json, systems.md, systems_phases.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
