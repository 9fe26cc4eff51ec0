"""Shared parts of the MedSwarm benchmarks: run a swarm through the one launcher and measure it.

`run_swarm(plan)` runs `node.launcher.LocalSwarm` unchanged and adds only what a benchmark
needs on top of it (a subclass, no copy of the launcher):
- peak memory per node process, taken from the kernel when the process is reaped
  (`os.wait4` rusage `ru_maxrss`: the exact high-water mark of that process), with
  `/proc/<pid>/status` VmHWM sampled while it runs as a cross-check;
- every transaction the nodes sent to the ledger during the run (function, round, gas from its
  receipt, block), read from the chain before the launcher shuts it down;
- each node's metrics rows and summary (read through `node.rundir.RunFolder`).

The baselines (`baselines`) train the same model with the same settings the swarm's nodes use
(built from the same `SwarmPlan.node_config`), on the same fitting rows, with node.learner,
node.training and node.preprocess directly: pooled (all nodes' fitting rows, scaled by their
combined statistics) and local-only (each node alone, scaled by its own statistics).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from node.launcher import LocalSwarm, Provisioned, SwarmPlan
from node.starter import StartedNode
from node.rundir import RunFolder
from node.scenarios import PublishedSet

NODE_TX_FUNCTIONS = ("commit", "vote", "commitAndVote", "finalize")
PHASES = ("train", "commit", "share", "collect", "merge", "score", "checkpoint")

_T0 = time.monotonic()


# --------------------------------------------------------------------------- output


def say(line: str) -> None:
    """A progress line with the time since the benchmark started."""
    print(f"[{time.monotonic() - _T0:7.1f}s] {line}", flush=True)


def quiet() -> None:
    """Keep the terminal to progress lines: no ResourceWarnings, libp2p's noise only when fatal."""
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.ERROR)
    for name in ("libp2p", "p2p", "node", "incentive", "web3", "multiaddr", "async_service"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def bench_arguments(doc: str | None, runs: str, quick: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: where reports and runs go, and the smoke-run switch."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="reports/bench", help="where the JSON, markdown and plots go")
    ap.add_argument("--runs", default=runs, help="where the swarm runs keep their node folders")
    ap.add_argument("--quick", action="store_true", help=quick)
    return ap


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform()}


def mean_std(values: Sequence[float | None]) -> dict[str, float | int | None]:
    present = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not present:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": statistics.fmean(present), "std": statistics.stdev(present) if len(present) > 1 else 0.0,
            "n": len(present)}


def fmt_ms(stat: dict[str, Any], scale: float = 100.0, digits: int = 1) -> str:
    """'84.8 ± 1.2' from a mean_std dict (percent by default)."""
    if not stat or stat.get("mean") is None:
        return "-"
    return f"{stat['mean'] * scale:.{digits}f} ± {stat['std'] * scale:.{digits}f}"


# --------------------------------------------------------------------------- a measured swarm run


@dataclass
class ChainTx:
    node: str
    function: str
    round: int | None
    gas: int
    block: int


@dataclass
class SwarmRun:
    """What one launcher run left behind, plus what the benchmark measured around it."""

    plan: SwarmPlan
    seconds: float
    report: dict[str, Any]
    names: list[str]
    metrics: dict[str, list[dict[str, Any]]]
    summaries: dict[str, dict[str, Any] | None]
    txs: list[ChainTx] = field(default_factory=list)
    peak_rss: dict[str, int] = field(default_factory=dict)  # bytes: wait4's peak RSS, or peak PSS of a forked node
    vmhwm: dict[str, int] = field(default_factory=dict)  # bytes, last VmHWM seen while alive
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)  # user + system: wait4's, or the last /proc reading
    cpu_at_round1: dict[str, float] = field(default_factory=dict)  # the same when round 1's metrics line appeared
    starter_cpu_seconds: float = 0.0  # the node starter's (node.starter): the imports every forked node shares


class MeasuredSwarm(LocalSwarm):
    """LocalSwarm plus reaping with rusage (peak RSS, CPU time) and a read of the ledger's transactions."""

    WAIT_LIMIT = 900.0

    def __init__(self, plan: SwarmPlan, say: Callable[[str], None] = say, read_chain: bool = True) -> None:
        super().__init__(plan, say)
        self.read_chain = read_chain
        self.peak_rss: dict[str, int] = {}
        self.vmhwm: dict[str, int] = {}
        self.exit_codes: dict[str, int | None] = {}
        self.cpu_seconds: dict[str, float] = {}
        self.cpu_at_round1: dict[str, float] = {}  # start-up, statistics and round 1: taken out of the steady cost
        self.starter_cpu_seconds = 0.0
        self.txs: list[ChainTx] = []

    def stop_processes(self, grace: float = 10.0) -> None:
        pid = self.starter.pid
        if pid is not None:
            self.starter_cpu_seconds = read_cpu_seconds(pid) or self.starter_cpu_seconds
        super().stop_processes(grace)

    def wait_for_nodes(self, configs, timeout: float | None = None) -> None:
        # A node started cold is this process's child: reaped here with wait4, the kernel gives back
        # its peak RSS and CPU time. A node forked by the starter (node.starter) is the starter's
        # child: its CPU time is the last reading of /proc before it ended (every 0.2 s) and its
        # memory the peak proportional set size (shared pages divided among the processes sharing
        # them: the nodes share the starter's imported code). Then the launcher's own wait sees them
        # finished and reports failures as usual.
        deadline = time.monotonic() + (timeout or self.WAIT_LIMIT)
        live = self.processes()
        shown = 0
        while live and time.monotonic() < deadline:
            by_name = {c.name: c for c in configs}
            for name, proc in list(live.items()):
                cpu = read_cpu_seconds(proc.pid)
                if name not in self.cpu_at_round1 and name in by_name and self.metrics(by_name[name]):
                    if cpu is not None:
                        self.cpu_at_round1[name] = cpu
                hwm = read_vmhwm(proc.pid)
                if hwm:
                    self.vmhwm[name] = max(self.vmhwm.get(name, 0), hwm)
                if isinstance(proc, StartedNode):
                    pss = read_pss(proc.pid)
                    if pss:
                        self.peak_rss[name] = max(self.peak_rss.get(name, 0), pss)
                    if cpu is not None:
                        self.cpu_seconds[name] = cpu
                    if proc.poll() is not None:
                        self.exit_codes[name] = proc.returncode
                        del live[name]
                    continue
                try:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                except ChildProcessError:
                    pid, status, usage = proc.pid, 0, None
                if pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    self.exit_codes[name] = proc.returncode
                    if usage is not None:
                        self.peak_rss[name] = usage.ru_maxrss * 1024  # KiB on Linux
                        self.cpu_seconds[name] = usage.ru_utime + usage.ru_stime
                    del live[name]
            shown = self._progress_line(configs, shown)
            time.sleep(0.2)
        for name in live:
            self.exit_codes[name] = None
            self.say(f"node {name} still running after {timeout or self.WAIT_LIMIT:.0f}s; stopping it")
        for name, code in self.exit_codes.items():
            if code:
                self.say(f"node {name} exited with status {code}; see {RunFolder(self.run_dir / name).log}")

    def finish(self, w3, prov: Provisioned, configs, summaries, seconds):
        report = super().finish(w3, prov, configs, summaries, seconds)
        if self.read_chain:
            self.txs = ledger_transactions(w3, prov)
        return report


def read_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a live process used so far; None once it has exited."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime: fields 14, 15


def read_pss(pid: int) -> int | None:
    """Proportional set size of a live process in bytes (each shared page divided among its
    sharers); None once it has exited."""
    return _proc_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def read_vmhwm(pid: int) -> int | None:
    """VmHWM (peak resident set) of a live process in bytes; None once it has exited."""
    return _proc_kib(f"/proc/{pid}/status", "VmHWM:")


def _proc_kib(path: str, key: str) -> int | None:
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def ledger_transactions(w3, prov: Provisioned) -> list[ChainTx]:
    """Every transaction a node account sent to the ledger, with its gas from the receipt."""
    from incentive.artifacts import ledger_artifact

    contract = w3.eth.contract(address=prov.contract, abi=ledger_artifact().abi)
    who = {a.lower(): n for a, n in zip(prov.addresses, prov.names)}
    out: list[ChainTx] = []
    for number in range(0, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            sender = str(tx["from"]).lower()
            if sender not in who or not tx.get("to") or str(tx["to"]).lower() != prov.contract.lower():
                continue
            fn, args = contract.decode_function_input(tx.get("input") or tx.get("data"))
            if fn.fn_name not in NODE_TX_FUNCTIONS:
                continue
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            if receipt["status"] != 1:
                continue
            # commitAndVote's cost belongs to the round it commits; finalize's to the round it closes
            out.append(ChainTx(who[sender], fn.fn_name, int(args.get("round", 0)) or None,
                               int(receipt["gasUsed"]), number))
    return out


def run_swarm(plan: SwarmPlan, label: str = "", read_chain: bool = True) -> SwarmRun:
    """Run one swarm through the launcher, measured; progress lines are prefixed with `label`."""
    prefix = f"{label}: " if label else ""
    swarm = MeasuredSwarm(plan, say=lambda line: say(prefix + line), read_chain=read_chain)
    started = time.monotonic()
    report = swarm.run()
    seconds = time.monotonic() - started
    names = [plan.node_name(i) for i in range(plan.nodes)]
    metrics, summaries = {}, {}
    for name in names:
        folder = RunFolder(plan.out / name)
        metrics[name] = folder.read_metrics()
        summaries[name] = folder.read_summary()
    return SwarmRun(plan, seconds, report.to_json(), names, metrics, summaries, swarm.txs,
                    dict(swarm.peak_rss), dict(swarm.vmhwm), dict(swarm.exit_codes), dict(swarm.cpu_seconds),
                    dict(swarm.cpu_at_round1), swarm.starter_cpu_seconds)


# --------------------------------------------------------------------------- models, data, baselines


@dataclass
class NodeSetup:
    """One node's learner (data, fitting/validation rows, model settings) as the swarm builds it."""

    name: str
    config: Any
    learner: Any


def node_setups(plan: SwarmPlan) -> list[NodeSetup]:
    """The learners the swarm's nodes build for `plan` (same config path as the launcher)."""
    from node.datasets import load_node_data
    from node.learner import Learner

    setups = []
    for i in range(plan.nodes):
        config = plan.node_config(i, plan.out / plan.node_name(i), "", "http://127.0.0.1:1", 1,
                                  "/ip4/127.0.0.1/tcp/0", ())
        data = load_node_data(config.data)
        setups.append(NodeSetup(config.name, config, Learner(config, data)))
    return setups


def pooled_validation_set(plan: SwarmPlan) -> PublishedSet:
    """Every node's validation rows pooled, unscaled: what a sponsor's published validation set
    stands for in the benchmarks and tests (the sponsor holds no patients of its own here)."""
    setups = node_setups(plan)
    return PublishedSet(np.concatenate([s.learner.val_rows.x for s in setups]),
                        np.concatenate([s.learner.val_rows.y for s in setups]))


def local_updates(setups: list[NodeSetup], weights: dict[str, np.ndarray], round_no: int) -> list:
    """One round of local training on every node from `weights`: their updates, as the swarm sends them."""
    from node.merge import Update

    updates = []
    for s in setups:
        s.learner.set_weights(weights)
        updates.append(Update(s.learner.train_update(round_no), len(s.learner.fit), s.name))
    return updates


def _margins(model, x: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
    return (logits[:, 1] - logits[:, 0]).double().numpy()


@dataclass
class Predictions:
    """Margins (logit of class 1 minus class 0) on each node's test rows, and the labels."""

    margins: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]

    def node(self, name: str) -> dict[str, float]:
        return _metrics(self.margins[name], self.labels[name])

    def pooled(self) -> dict[str, float]:
        names = sorted(self.margins)
        return _metrics(np.concatenate([self.margins[n] for n in names]),
                        np.concatenate([self.labels[n] for n in names]))

    def table(self) -> dict[str, dict[str, float]]:
        out = {n: self.node(n) for n in self.margins}
        out["pooled_test"] = self.pooled()
        out["node_mean"] = {k: float(np.mean([out[n][k] for n in self.margins if out[n][k] is not None
                                              and math.isfinite(out[n][k])] or [math.nan]))
                            for k in ("accuracy", "auc")}
        return out


def _metrics(margin: np.ndarray, y: np.ndarray) -> dict[str, float]:
    from node.training import roc_auc

    return {"accuracy": float(np.mean((margin > 0).astype(np.int64) == y)) if len(y) else math.nan,
            "auc": roc_auc(y, margin), "n": int(len(y))}


def _train(setup: NodeSetup, x: np.ndarray, y: np.ndarray, epochs: int):
    from node.models import build_model
    from node.training import train_local

    c = setup.config
    model = build_model(c.model.kind, setup.learner.data.n_features, max(2, setup.learner.data.n_classes),
                        hidden=c.model.hidden, seed=c.swarm.seed)
    t = c.training
    train_local(model, x, y, epochs=epochs, batch_size=t.batch_size, lr=t.lr, seed=t.seed,
                optimizer=t.optimizer, weight_decay=t.weight_decay)
    return model


def baselines(plan: SwarmPlan) -> dict[str, Predictions]:
    """Pooled and local-only training of the swarm's model, same total epochs (rounds x epochs)."""
    import torch

    from node.preprocess import FeatureStats, Scaler

    torch.set_num_threads(1)
    setups = node_setups(plan)
    epochs = plan.rounds * setups[0].config.training.epochs
    labels = {s.name: s.learner.data.test.y for s in setups}
    # pooled: every node's fitting rows, scaled by the combined statistics (the swarm's own rule)
    fit_x = np.concatenate([s.learner.fit_rows.x for s in setups])
    fit_y = np.concatenate([s.learner.fit_rows.y for s in setups])
    scaler = Scaler.from_stats(FeatureStats.of(fit_x))
    pooled = _train(setups[0], scaler.transform(fit_x), fit_y, epochs)
    pooled_margins = {s.name: _margins(pooled, scaler.transform(s.learner.data.test.x)) for s in setups}
    # local-only: each node alone, scaled by its own statistics (as Learner.local_only does)
    local_margins = {}
    for s in setups:
        own = Scaler.from_stats(FeatureStats.of(s.learner.fit_rows.x))
        model = _train(s, own.transform(s.learner.fit_rows.x), s.learner.fit_rows.y, epochs)
        local_margins[s.name] = _margins(model, own.transform(s.learner.data.test.x))
    return {"pooled": Predictions(pooled_margins, labels), "local": Predictions(local_margins, labels)}


def swarm_predictions(run: SwarmRun) -> Predictions:
    """Each node's final model (from its last checkpoint, as `medswarm evaluate` reads it: the
    run's choice of final model, node.selection) on its own test rows."""
    from node.models import load_numpy_state
    from node.trained import TrainedModel

    margins, labels = {}, {}
    for s in node_setups(run.plan):
        folder = run.plan.out / s.name
        if not RunFolder(folder).checkpoint_meta.exists():
            continue
        model = TrainedModel.from_run(folder)
        load_numpy_state(s.learner.model, model.weights)
        margins[s.name] = _margins(s.learner.model, model.scaler.transform(s.learner.data.test.x))
        labels[s.name] = s.learner.data.test.y
    return Predictions(margins, labels)


def plan_with(plan: SwarmPlan, **changes: Any) -> SwarmPlan:
    return replace(plan, **changes)
