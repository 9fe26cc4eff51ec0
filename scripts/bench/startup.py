"""Benchmark a node process's start-up (not a test): process start -> ready -> round 1 done.

Starts anvil and provisions a 2-node heart task with the launcher (the code `medswarm swarm`
runs), then starts both node processes at once, as a swarm start does, both ways: as fresh
`medswarm node` interpreters (how a hospital starts its one node) and forked from the launcher's
warm starter (how `medswarm swarm` starts them: node.starter), and follows their logs:

- ready: the "listening on" line (imports done, data loaded, task joined on chain, host up);
- ready to train: ready, and for a DP node round 1's imports done (node.warmup's line: Opacus's
  optimiser imports torch._dynamo, so before that line its training would wait for the import);
  a node without DP imports nothing more for round 1 (node.optim), so for it this is ready;
- round 1: the node's round-1 report line (its training includes the optimiser's first use).

For each it gives wall seconds since the process started and the CPU seconds (user + sys, from
/proc) the process had used by then: on a loaded machine wall time measures the neighbours
too, CPU time much less so. Repeated ``--repeats`` times on fresh tasks; medians reported.
A ``python -X importtime`` run of the node's imports gives the import time per package.

    .venv/bin/python -m scripts.bench.startup [--quick] [--repeats 3] [--ways cold,forked]
        [--out reports/bench] [--runs runs/bench/startup]

``--quick``: one start of the two nodes each way; ``--ways cold``: fresh interpreters only.
Node logs stay in --runs (a temporary folder if not given).

Writes startup.json and startup.md into --out.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from incentive.anvil import Anvil
from incentive.chain import connect
from node import warmup
from node.launcher import LocalSwarm, SwarmPlan
from node.rundir import RunFolder
from scripts.bench import harness as B
from scripts.bench.output import publish

READY = "listening on"
ROUND_1 = re.compile(r"round 1/")
POLL_S = 0.01
TIMEOUT_S = 120.0
#: What a node process imports before it can build itself (`medswarm node`: the parser and node.runtime).
NODE_IMPORTS = "from node import cli, runtime; cli.build_parser()"


def one_start(anvil: Anvil, folder: Path, cold: bool) -> list[dict[str, Any]]:
    """Provision a fresh 2-node task, start both node processes (`cold`: fresh interpreters; else
    forked from the launcher's warm starter, whose imports are done before the clock starts), time
    each one's milestones."""
    swarm = LocalSwarm(SwarmPlan(nodes=2, rounds=2, out=folder), say=lambda _line: None)
    _, configs = swarm.prepare(connect(anvil.url), anvil.url)
    if not cold:
        swarm.starter.warm(wait=True)
    started = {}
    for config in configs:
        started[config.name] = time.monotonic()
        swarm.start_node(config, cold=cold)
    procs = swarm.processes()
    logs = {c.name: RunFolder(Path(c.output_dir)).log for c in configs}
    rows: dict[str, dict[str, Any]] = {c.name: {"node": c.name} for c in configs}
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline and not all("round1_s" in r for r in rows.values()):
            for name, row in rows.items():
                text = logs[name].read_text() if logs[name].exists() else ""
                now = time.monotonic()
                if "ready_s" not in row and READY in text:
                    row["ready_s"], row["ready_cpu_s"] = now - started[name], B.process_cpu_seconds(procs[name].pid)
                if "warm_s" not in row and warmup.DONE in text:
                    row["warm_s"], row["warm_cpu_s"] = now - started[name], B.process_cpu_seconds(procs[name].pid)
                if "round1_s" not in row and ROUND_1.search(text):
                    row["round1_s"], row["round1_cpu_s"] = now - started[name], B.process_cpu_seconds(procs[name].pid)
                if procs[name].poll() is not None and "round1_s" not in row:
                    raise RuntimeError(f"node {name} exited early; see {logs[name]}")
            time.sleep(POLL_S)
    finally:
        swarm.stop_processes(grace=2.0)
    for config in configs:
        first = next(iter(LocalSwarm.metrics(config)), {})
        row = rows[config.name]
        row["round1_train_s"] = first.get("phases", {}).get("train")
        if "ready_s" in row:  # ready to train: listening and (a DP node) round 1's imports done
            later = "warm" if row.get("warm_s", 0.0) > row["ready_s"] else "ready"
            row["train_ready_s"], row["train_ready_cpu_s"] = row[f"{later}_s"], row[f"{later}_cpu_s"]
    return list(rows.values())


def import_breakdown() -> dict[str, Any]:
    """Wall and CPU seconds of the node's imports, in total, and wall self time per top-level package."""
    started, cpu = time.monotonic(), _children_cpu_s()
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", NODE_IMPORTS], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    total, cpu = time.monotonic() - started, _children_cpu_s() - cpu
    per_package: dict[str, float] = defaultdict(float)
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) != 3 or not parts[0].startswith("import time:") or not parts[1].strip().isdigit():
            continue
        per_package[parts[2].strip().split(".")[0]] += int(parts[0].split(":")[1]) / 1e6
    top = dict(sorted(per_package.items(), key=lambda kv: -kv[1])[:8])
    return {"process_s": total, "process_cpu_s": cpu, "by_package_s": top}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


MODES = {"cold": "fresh interpreter (`medswarm node`, a hospital's one node)",
         "forked": "forked from the warm starter (`medswarm swarm`, node.starter)"}
KEYS = ("ready_s", "ready_cpu_s", "train_ready_s", "train_ready_cpu_s", "round1_s", "round1_cpu_s", "round1_train_s")


def markdown(summary: dict[str, dict[str, Any]], imports: dict[str, Any], meta: dict[str, Any]) -> str:
    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    lines = [f"Node start-up, median of {meta['samples']} node starts per way (2 nodes started together, "
             f"{meta['repeats']} times); load average {meta['load_before']:.2f} before, "
             f"{meta['load_after']:.2f} after, {meta['machine']['cpus']} cores.", "",
             "| started as | ready wall s | ready CPU s | ready to train wall s | ready to train CPU s | "
             "round 1 done wall s | round 1 CPU s | round 1's training s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, m in summary.items():
        text = MODES[mode]
        lines.append(f"| {text} | {s(m['ready_s'])} | {s(m['ready_cpu_s'])} | {s(m['train_ready_s'])} | "
                     f"{s(m['train_ready_cpu_s'])} | {s(m['round1_s'])} | "
                     f"{s(m['round1_cpu_s'])} | {s(m['round1_train_s'])} |")
    lines += ["", "Ready: host listening and task joined. Ready to train: also round 1's imports done "
              f"(for a DP node, node.warmup's \"{warmup.DONE}\" line: torch._dynamo, which Opacus's optimiser imports). CPU: user + system of the node process (a forked "
              "node's count starts at the fork; the starter's imports, paid once per swarm, are the cold "
              "start's imports below).", "",
              f"Imports alone (`python -X importtime -c \"{NODE_IMPORTS}\"`): {imports['process_s']:.2f} s wall, "
              f"{imports['process_cpu_s']:.2f} CPU-s; "
              "self time by package: " + ", ".join(f"{k} {v:.2f} s" for k, v in imports["by_package_s"].items()), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="MedSwarm node start-up benchmark")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="reports/bench")
    ap.add_argument("--runs", help="folder for the node runs (default: a temporary one)")
    ap.add_argument("--quick", action="store_true", help="one start each way")
    ap.add_argument("--ways", default=",".join(MODES), help="which starts to time: cold, forked or both (default)")
    args = ap.parse_args(argv)
    ways = [w for w in args.ways.split(",") if w]
    if not ways or any(w not in MODES for w in ways):
        ap.error(f"--ways: expected a comma-separated subset of {', '.join(MODES)}")
    repeats = 1 if args.quick else args.repeats
    load_before = os.getloadavg()[0]
    rows: dict[str, list[dict[str, Any]]] = {mode: [] for mode in ways}
    with Anvil() as anvil, tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs).resolve() if args.runs else Path(tmp)
        for i in range(repeats):
            for mode in ways:
                rows[mode] += one_start(anvil, runs / f"{mode}{i}", cold=mode == "cold")
                B.say(f"start {i + 1}/{repeats}, {mode}: " + "; ".join(
                    f"{r['node']} ready {r.get('ready_s', float('nan')):.2f} s" for r in rows[mode][-2:]))
    imports = import_breakdown()
    summary = {mode: {k: _median(rows[mode], k) for k in KEYS} for mode in ways}
    meta = {"repeats": repeats, "samples": len(rows[ways[0]]), "load_before": load_before,
            "load_after": os.getloadavg()[0], "machine": B.machine()}
    text = markdown(summary, imports, meta)
    publish(Path(args.out), "startup", {"meta": meta, "summary": summary, "starts": rows, "imports": imports}, text)
    print(text)
    B.say(f"startup benchmark done: {args.out}/startup.json, startup.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
