"""How a round's cost grows with the swarm: N = 4, 8, 16, 32 node processes on anvil, and 64, 128
simulated in one process.

    nice -n 5 .venv/bin/python -m scripts.bench.growth [--nodes 4,8,16,32] [--simulate 64,128]
        [--rounds 4] [--quick] [--out reports/bench]

Process runs: the launcher in process mode (anvil + one OS process per node), a tiny model
(logreg on breast cancer, IID shards, 30 inputs, 62 parameters), the default exchange terms: every
node merges every update up to 16 training members; above that each merges with ceil(log2 N)
partners drawn from the chain (`node.sampled`). Per N:
- round time: the slowest node's round (train .. checkpoint), mean over steady rounds 2..R;
- CPU-seconds per round: all node processes' user + system time after their round-1 metrics line
  (start-up, statistics and round 1 excluded; the final settling included), over R - 1 rounds;
  start-up CPU (everything up to round 1, plus the node starter's imports, which the nodes forked
  from it share: node.starter) separately;
- bytes fetched per node per round (updates, score sheets, models and statistics), steady rounds;
- gossip messages per node per round (first copies checked by the node's validator, and its own
  publishes) and blob fetches it started, steady rounds: where a swarm's size shows first;
- the slowest node's slowest round, against the round's deadline;
- summed peak memory of the node processes (anvil excluded): proportional set size, since the
  forked nodes share the starter's pages;
- gas per node per round, every node transaction of the run over N x R;
- rounds complete: every node recorded every round, committed, and exited 0; missed updates (a
  node merging fewer than it expected) and credited rounds on chain.
The load average is read before and after each run (other programs share the machine).

Simulated runs (`scripts.bench.inprocess.SampledSwarm`: the nodes' real learners and pipelines in
one process, no sockets, no chain) give bytes per node per round and the process's CPU-seconds and
memory per round for 64 and 128 nodes with ceil(log2 N) partners; their time is one process
running every node in turn, not a round of a deployed swarm.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

from scripts.bench import harness as B
from scripts.bench.output import publish
from scripts.bench.systems import analyse

MODEL = "logreg"
PARAMS = 62  # logreg on breast cancer: 30 inputs x 2 classes + 2 biases
STARTUP_WAIT = 300  # seconds the nodes wait for each other's statistics before round 1
# With 32 node processes on 2 cores a node's event loop lags so far that opening a transfer stream
# takes longer than the default 5 s a source gets: no partner's update was ever fetched.
SLOW_LOOP_FETCH_TRY = 15.0


def load() -> float:
    return round(os.getloadavg()[0], 2)


def process_run(nodes: int, rounds: int, runs: Path, timeout: float) -> dict:
    label = f"growth-n{nodes}"
    plan = B.SwarmPlan(nodes=nodes, rounds=rounds, dataset="breast_cancer", partition="iid", model=MODEL,
                       out=runs / label, round_timeout=timeout,
                       # 32 processes importing torch on 2 busy cores take a while to come up
                       node_overrides=(f"swarm.stats_timeout={STARTUP_WAIT}",
                                       *((f"p2p.fetch_try={SLOW_LOOP_FETCH_TRY}",) if nodes >= 32 else ())))
    before = load()
    run = B.run_swarm(plan, label)
    after = load()
    base = analyse(run, hidden=0, params=PARAMS)
    steady_cpu = [run.cpu_seconds[n] - run.cpu_at_round1[n] for n in run.names
                  if n in run.cpu_seconds and n in run.cpu_at_round1]
    complete = all(len(ms) == rounds and all(m["committed"] for m in ms) for ms in run.metrics.values())
    missed = sum(max(0, m["expected"] - m["heard"]) for ms in run.metrics.values() for m in ms)
    credited = run.report.get("rounds", {}).get("credited", [])
    steady = [m for ms in run.metrics.values() for m in ms if m["round"] >= 2] or \
             [m for ms in run.metrics.values() for m in ms]
    slowest = max((sum(m["phases"].get(p, 0.0) for p in B.PHASES) for m in steady), default=None)
    by_round = [[m for ms in run.metrics.values() for m in ms if m["round"] == r] for r in range(1, rounds + 1)]
    res = {
        "nodes": nodes, "rounds": rounds, "mode": "processes on anvil",
        # per round: updates merged of those expected, and the fewest peers a node's own gossip reached
        "heard_per_round": [[sum(m["heard"] for m in ms), sum(m["expected"] for m in ms)] for ms in by_round],
        "topic_peers_min_per_round": [min((m.get("topic_peers", 0) for m in ms), default=None) for ms in by_round],
        "pubsub_peers_min_per_round": [min((m.get("pubsub_peers", 0) for m in ms), default=None) for ms in by_round], "round_timeout_s": timeout,
        "partners": run.metrics[run.names[0]][-1]["expected"] if run.metrics[run.names[0]] else None,
        "swarm_round_s": base["swarm_round_s"], "node_round_s": base["node_round_s"],
        "phase_mean_s": base["phase_mean_s"], "slowest_node_round_s": slowest,
        "gossip_in_per_node_round": _mean(steady, "gossip_in"), "gossip_out_per_node_round": _mean(steady, "gossip_out"),
        "fetches_per_node_round": _mean(steady, "fetches"),
        "cpu_s_per_round": sum(steady_cpu) / max(1, rounds - 1) if len(steady_cpu) == nodes else None,
        "startup_cpu_s": sum(run.cpu_at_round1.values()) + run.starter_cpu_seconds,
        "bytes_in_per_node_round": base["bytes_in_per_node_round"],
        "summed_peak_rss_mb": sum(run.peak_rss.values()) / 2**20 if run.peak_rss else None,
        "gas_per_node_round": base["gas_per_node_round_amortised"],
        # complete: every node recorded and committed every round, exited 0 and merged every update it expected
        "every_round_complete": complete and missed == 0 and all(c == 0 for c in run.exit_codes.values()),
        "missed_updates": missed, "credited_rounds": credited,
        "exit_codes": run.exit_codes, "load_before": before, "load_after": after, "seconds": run.seconds,
    }
    B.say(f"{label}: round {res['swarm_round_s']:.2f}s (slowest {slowest or 0:.2f}s) | cpu/round "
          f"{res['cpu_s_per_round'] or 0:.1f}s | in/node/round {res['bytes_in_per_node_round'] or 0:,.0f} B | gossip "
          f"in/out/fetches per node/round {res['gossip_in_per_node_round'] or 0:.0f}/"
          f"{res['gossip_out_per_node_round'] or 0:.1f}/{res['fetches_per_node_round'] or 0:.1f} | memory "
          f"{res['summed_peak_rss_mb'] or 0:.0f} MB"
          f" | gas/node/round {res['gas_per_node_round'] or 0:,.0f} | complete {res['every_round_complete']}"
          f" | credited {credited} | load {before} -> {after}")
    B.say(f"{label}: per round, updates heard/expected {res['heard_per_round']}, fewest topic peers of a node "
          f"{res['topic_peers_min_per_round']} and gossip streams {res['pubsub_peers_min_per_round']} (of {nodes - 1})")
    return res


def simulated_run(nodes: int, rounds: int, runs: Path) -> dict:
    from Crypto.Hash import keccak

    from node.launcher import SwarmPlan
    from node.sampling import fanout
    from scripts.bench.inprocess import SampledSwarm

    s = fanout(nodes, 16)
    plan = SwarmPlan(nodes=nodes, rounds=rounds, dataset="breast_cancer", model=MODEL, out=runs / f"sim-n{nodes}")
    seed = keccak.new(digest_bits=256, data=f"growth bench n{nodes}".encode()).digest()
    before = load()
    swarm = SampledSwarm(plan, s, seed)
    cpu0, t0 = time.process_time(), time.perf_counter()
    records = swarm.run(rounds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
    res = {"nodes": nodes, "rounds": rounds, "mode": "simulated in one process", "partners": s,
           "swarm_round_s": wall / rounds, "cpu_s_per_round": cpu / rounds,
           "bytes_in_per_node_round": s * records[-1].blob_bytes[0],
           "summed_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "gas_per_node_round": None, "final_accuracy": records[-1].accuracy,
           "load_before": before, "load_after": load()}
    B.say(f"sim-n{nodes}: {wall / rounds:.2f}s and {cpu / rounds:.2f} CPU-s per round (one process), "
          f"{res['bytes_in_per_node_round']:,} B per node per round, accuracy {res['final_accuracy']:.3f}")
    return res


def _mean(rows: list[dict], key: str) -> float | None:
    values = [m[key] for m in rows if key in m]
    return sum(values) / len(values) if values else None


def _f(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def markdown(results: list[dict], meta: dict) -> str:
    lines = ["# Cost growth with the swarm's size", "",
             f"Command: `{meta['command']}` ({meta['seconds']:.0f} s, {meta['machine']['cpus']} CPUs shared with "
             f"other programs; load average {meta['load_start']} at the start, {meta['load_end']} at the end). "
             f"logreg on breast cancer IID shards; all-to-all up to 16 members, then ceil(log2 N) chain-drawn "
             f"partners.", "",
             "| N | mode | partners | round (s) | CPU-s / round | bytes in / node / round | summed memory (MB) "
             "| gas / node / round | gossip in / out / fetches per node per round | slowest node round (s) "
             "| every round complete | credited rounds | load before -> after |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r['nodes']} | {r['mode']} | {r['partners']} | {r['swarm_round_s']:.2f} | "
            f"{_f(r['cpu_s_per_round'], '{:.1f}')} | {_f(r['bytes_in_per_node_round'], '{:,.0f}')} | "
            f"{_f(r['summed_peak_rss_mb'], '{:,.0f}')} | {_f(r['gas_per_node_round'], '{:,.0f}')} | "
            f"{_f(r.get('gossip_in_per_node_round'), '{:.0f}')} / {_f(r.get('gossip_out_per_node_round'), '{:.1f}')}"
            f" / {_f(r.get('fetches_per_node_round'), '{:.1f}')} | {_f(r.get('slowest_node_round_s'), '{:.2f}')} | "
            f"{r.get('every_round_complete', '-')} | {len(r.get('credited_rounds', [])) or '-'} | "
            f"{r['load_before']} -> {r['load_after']} |")
    lines += ["", "Process runs: round = the slowest node's round, steady rounds 2..R; CPU-s = all node processes "
              "after round 1 (start-up excluded; start-up CPU in the JSON), over R - 1 rounds; memory = sum of "
              "the node processes' peak proportional set size (forked nodes share the starter's pages). Simulated runs: one process runs every node's training and merge "
              "in turn (no sockets, no chain): time and CPU are for the whole swarm, memory is that one "
              "process's peak.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/growth", "seconds-long smoke run: 4 processes, 2 rounds, no simulation")
    ap.add_argument("--nodes", default="4,8,16,32", help="process-mode swarm sizes")
    ap.add_argument("--simulate", default="64,128", help="in-process simulated sizes")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--round-timeout", type=float, default=60.0)
    args = ap.parse_args(argv)
    B.quiet()
    started, load_start = time.monotonic(), load()
    runs = Path(args.runs)
    sizes = [4] if args.quick else [int(x) for x in args.nodes.split(",") if x]
    rounds = 2 if args.quick else args.rounds
    results = [process_run(n, rounds, runs, args.round_timeout) for n in sizes]
    if not args.quick:
        results += [simulated_run(n, rounds, runs) for n in (int(x) for x in args.simulate.split(",") if x)]
    meta = {"command": "python -m scripts.bench.growth " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seconds": time.monotonic() - started, "machine": B.machine(), "load_start": load_start,
            "load_end": load(), "cpu_growth": _growth(results)}
    publish(Path(args.out), "growth", {"meta": meta, "results": results}, markdown(results, meta))
    B.say(f"growth benchmark done in {meta['seconds']:.0f}s: {args.out}/growth.json, growth.md")
    return 0


def _growth(results: list[dict]) -> dict[str, float]:
    """CPU-seconds per round relative to the smallest process run."""
    procs = [r for r in results if r["mode"].startswith("processes") and r["cpu_s_per_round"]]
    if not procs:
        return {}
    base = procs[0]["cpu_s_per_round"]
    return {str(r["nodes"]): round(r["cpu_s_per_round"] / base, 2) for r in procs} if base else {}


if __name__ == "__main__":
    sys.exit(main())
