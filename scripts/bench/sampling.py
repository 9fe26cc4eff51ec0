"""Swarms past all-to-all: each node merges with s = ceil(log2 N) partners drawn from a public seed.

    .venv/bin/python -m scripts.bench.sampling [--quick] [--out reports/bench] [--nodes 32,64,128]

In one process (`scripts.bench.inprocess.SampledSwarm`: the nodes' real learners, pipelines and
merge rule; no sockets, no chain), breast cancer split IID over N nodes, mlp (hidden 32), median
merge, for N in --nodes: all-to-all (every node merges every model: one shared model) against
sampled (`node.sampling.partners`, s = ceil(log2 N), every node its own model). Reported per run:
accuracy of the nodes' models on all test rows (mean over nodes) after the last round, the
models' spread (mean distance from their average over the average's norm), bytes each node
fetches per round (partners x the model's float32 encoding), the merge inputs per node per
round and the seconds the run took. Writes sampling.json and sampling.md into --out.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from Crypto.Hash import keccak

from node.launcher import SwarmPlan
from node.sampling import fanout
from scripts.bench import harness as B
from scripts.bench.inprocess import SampledSwarm
from scripts.bench.output import publish

ALL_UP_TO = 16


def run(nodes: int, s: int, rounds: int, out: Path) -> dict:
    plan = SwarmPlan(nodes=nodes, rounds=rounds, dataset="breast_cancer", model="mlp", out=out / f"n{nodes}-s{s}")
    seed = keccak.new(digest_bits=256, data=f"sampling bench n{nodes}".encode()).digest()
    t0 = time.perf_counter()
    swarm = SampledSwarm(plan, s, seed)
    built = time.perf_counter() - t0
    records = swarm.run(rounds)
    seconds = time.perf_counter() - t0 - built
    blob = records[-1].blob_bytes[0]
    return {"nodes": nodes, "partners": s, "rounds": rounds, "parameters": swarm.parameters,
            "curve": [r.accuracy for r in records], "final_accuracy": records[-1].accuracy,
            "spread": [r.closest["spread"] for r in records], "bytes_per_node_round": s * blob,
            "merge_inputs_per_node": s + 1, "seconds_per_round": seconds / rounds, "setup_seconds": built}


def markdown(results: list[dict], meta: dict) -> str:
    lines = ["# Swarms past all-to-all", "",
             f"In-process, breast cancer IID over N nodes, mlp, median merge, {meta['rounds']} rounds; sampled runs "
             f"merge with s = ceil(log2 N) partners drawn from a public seed (node.sampling). "
             f"Load average at start: {meta['load']}.", "",
             "| nodes | partners | final accuracy (mean over nodes) | model spread | bytes fetched per node per round "
             "| merge inputs per node | seconds per round (whole swarm, one process) |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['nodes']} | {r['partners']} | {r['final_accuracy']:.3f} | {r['spread'][-1]:.4f} | "
                     f"{r['bytes_per_node_round']:,} | {r['merge_inputs_per_node']} | {r['seconds_per_round']:.2f} |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench-sampling", "8 nodes (partners 3 and 7), 2 rounds")
    ap.add_argument("--nodes", default="32,64,128")
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args(argv)
    B.quiet()
    load = os.getloadavg()[0]
    results = []
    if args.quick:
        plans = [(8, 7, 2), (8, 3, 2)]
    else:
        plans = []
        for n in [int(x) for x in args.nodes.split(",") if x]:
            plans += [(n, n - 1, args.rounds), (n, fanout(n, ALL_UP_TO), args.rounds)]
    for nodes, s, rounds in plans:
        result = run(nodes, s, rounds, Path(args.runs))
        results.append(result)
        B.say(f"N={nodes} s={s}: accuracy {result['final_accuracy']:.3f}, spread {result['spread'][-1]:.4f}, "
              f"{result['bytes_per_node_round']:,} B per node per round, {result['seconds_per_round']:.2f} s per round")
    meta = {"machine": B.machine(), "load": round(load, 2), "rounds": plans[0][2]}
    publish(Path(args.out), "sampling", {"meta": meta, "results": results}, markdown(results, meta))
    print(markdown(results, meta))
    B.say(f"sampling benchmark done: {args.out}/sampling.json, sampling.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
