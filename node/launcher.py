"""A whole swarm on one machine: chain, contract, N hospital nodes, rounds, payouts, audit, report.

`LocalSwarm` is the one launcher used by `scripts/swarm.py`, `medswarm swarm` and the end-to-end
tests. In process mode it starts anvil and one OS process per node (`medswarm node --config`),
exactly as hospitals would run them; in in-process mode every node runs as a task in one trio
loop against an in-process eth-tester chain, for fast experiments and tests.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import trio
from eth_account import Account
from web3 import Web3

from incentive.anvil import Anvil, free_port
from incentive.audit import audit
from incentive.chain import connect, dev_keys, send_value
from incentive.deploy import NewMember, TaskPlan, deploy_ledger
from incentive.keys import load_key, write_key
from incentive.ledger import Ledger, PrivacyTerms
from p2p.identity import peer_id_for_key_file

from .config import (DataConfig, DpConfig, NodeConfig, SwarmConfig, TrainingConfig, config_from_mapping,
                     dump_config)
from .datadir import DataDir
from .datasets import HEART_HOSPITALS, SPLITTABLE, DataError, load_node_data
from .grouping import AUTO_GROUPS
from .terms import exchange_terms
from .report import SwarmReport, write_report
from .rundir import RunFolder
from .scenarios import published_set, read_published_set
from .starter import NodeStarter, StartedNode

WEI_PER_ETH = 10**18
GAS_ALLOWANCE_WEI = 10**18  # each node account gets 1 ETH for gas from the admin
POLL_SECONDS = 0.5
REFEREE = "referee"  # the referee node's name and folder
MOST_AUTO_GROUPS = 8  # ...then at most min(nodes // 2, this): the swarm's state holds that many models


class SwarmFailed(RuntimeError):
    """The swarm could not run to the end; the message says where to look."""


@dataclass(frozen=True)
class SwarmPlan:
    """What to run. Node-level settings are a NodeConfig template, overridden per node."""

    nodes: int = 4
    rounds: int = 10
    dataset: str = "heart"  # heart | breast_cancer
    partition: str = "iid"
    alpha: float = 0.5
    model: str = "mlp"
    merge: str = SwarmConfig.merge
    epochs: int = 1
    lr: float = TrainingConfig.lr
    codec: str = "f32"
    round_timeout: float = 30.0  # the task's round duration: how long a round waits for stragglers
    pool_eth: float = 10.0
    stake_eth: float = 0.0  # what each member bonds for the task (0: no stake)
    slash_eth: float = 0.0  # taken from a bond per proven offence (at most the stake)
    referee: bool = False  # the sponsor runs a referee node, whose vote decides split rounds
    # the sponsor's published validation set (.npz of x and y) for the referee: its digest goes on
    # chain and the set decides the rounds the members split (node.arbitration)
    validation: Path | None = None
    # > 1: group similar sites from round 1's updates into this many, one model per group
    # (node.grouping); AUTO_GROUPS: as many groups as the updates show (swarm.group_count silhouette)
    groups: int | str = 1
    seed: int = 0
    attacks: dict[int, str] = field(default_factory=dict)  # node index -> attack kind
    # node index -> the node whose data it holds too: a second identity of one institution (a sybil)
    twins: dict[int, int] = field(default_factory=dict)
    out: Path = Path("runs/swarm")
    state_file: Path | None = None
    in_process: bool = False
    node_overrides: tuple[str, ...] = ()
    data: DataDir | None = None  # each node's own CSV files (`--data DIR`); then `dataset` is unused

    def validate(self) -> None:
        if self.nodes < 2:
            raise ValueError("a swarm needs at least 2 nodes")
        if self.data is not None:
            if self.nodes != len(self.data.hospitals) or self.twins:
                raise ValueError(f"--data gives {len(self.data.hospitals)} hospitals: one node each, no twins")
        elif self.dataset not in SPLITTABLE:
            raise ValueError(f"the launcher splits {', '.join(SPLITTABLE)}; got {self.dataset!r}")
        if any(not (0 <= j < self.nodes) or j in self.twins or i == j for i, j in self.twins.items()):
            raise ValueError(f"twins must map nodes to other, original nodes of the swarm; got {self.twins}")
        if self.dataset == "heart" and self.parts > len(HEART_HOSPITALS):
            raise ValueError(f"the heart data set has {len(HEART_HOSPITALS)} hospitals; asked for {self.parts} "
                             f"nodes with data of their own")
        if not (self.groups == AUTO_GROUPS or (isinstance(self.groups, int) and self.groups >= 1)):
            raise ValueError(f"groups must be a count of at least 1 or {AUTO_GROUPS!r}, got {self.groups!r}")
        if self.groups != 1 and self.referee:
            raise ValueError("a grouped swarm has no referee (the referee attests one model for all members)")
        if self.validation is not None:
            if not self.referee:
                raise ValueError("a validation set is the referee's: run the sponsor's referee too (--referee)")
            read_published_set(Path(self.validation))  # a clear error now rather than in the referee
        if self.rounds < 1 or self.pool_eth <= 0 or self.round_timeout <= 0:
            raise ValueError("rounds, pool and round timeout must be positive")
        if self.data is not None:  # CSV files: cheap to read twice
            for i in range(self.nodes):
                self.check_data(i)
        if not 0 <= self.slash_eth <= self.stake_eth:
            raise ValueError(f"the slash must lie between 0 and the stake ({self.stake_eth:g} ETH); "
                             f"got {self.slash_eth:g} ETH")

    def check_data(self, i: int) -> None:
        """Load node i's data as its node will, so that files and data settings that do not fit
        (a settings file naming a column these files lack) stop the launcher with one line before
        any chain is set up, not every node after it."""
        config = config_from_mapping({"name": self.node_name(i), "data": self._data_section(i)}, self.node_overrides)
        told = logging.getLogger("node.datasets")
        level = told.level
        told.setLevel(logging.ERROR)  # what the rows hold (one class only, ...): the node says it when it loads them
        try:
            load_node_data(config.data)
        except (DataError, ValueError, OSError) as exc:
            raise ValueError(f"{self.node_name(i)}'s data: {exc}") from None
        finally:
            told.setLevel(level)

    def grouping_settings(self) -> dict[str, Any]:
        """`swarm.groups` and `swarm.group_count` for the nodes: a fixed count, or with AUTO_GROUPS
        room for min(nodes // 2, MOST_AUTO_GROUPS) models and the silhouette choice of how many."""
        if self.groups == AUTO_GROUPS:
            return {"groups": max(2, min(self.nodes // 2, MOST_AUTO_GROUPS)), "group_count": "silhouette"}
        return {"groups": self.groups, "group_count": "fixed"}

    @property
    def parts(self) -> int:
        """How many distinct shares the data set is split into (twins hold a copy of another's)."""
        return self.nodes - len(self.twins)

    def _part(self, i: int) -> int:
        """Which share of the data node i holds: originals are numbered in order, twins copy theirs."""
        if i in self.twins:
            return self._part(self.twins[i])
        return i - sum(1 for t in self.twins if t < i)

    def node_name(self, i: int) -> str:
        if self.data is not None:
            return self.data.names[i]
        base = HEART_HOSPITALS[self._part(i)].lower().replace(" ", "-") if self.dataset == "heart" else f"node{i}"
        return f"{base}-twin" if i in self.twins and self.dataset == "heart" else base

    def referee_config(self, folder: Path, contract: str, chain_url: str, task_id: int, listen: str,
                       bootstrap: tuple[str, ...]) -> NodeConfig:
        """The referee's node: it trains nothing, but sizes its models like node 0's."""
        config = self.node_config(0, folder, contract, chain_url, task_id, listen, bootstrap)
        validation = "" if self.validation is None else str(Path(self.validation).resolve())
        return dataclasses.replace(config, name=REFEREE, swarm=dataclasses.replace(
            config.swarm, attack="none", attack_partners=()), chain=dataclasses.replace(
            config.chain, validation_file=validation))

    def node_config(self, i: int, folder: Path, contract: str, chain_url: str, task_id: int,
                    listen: str, bootstrap: tuple[str, ...]) -> NodeConfig:
        values: dict[str, Any] = {
            "name": self.node_name(i),
            "output_dir": str(folder),
            "data": self._data_section(i),
            "model": {"kind": self.model},
            "training": {"epochs": self.epochs, "lr": self.lr, "seed": self.seed},
            "swarm": {"rounds": self.rounds, "merge": self.merge, "codec": self.codec, **self.grouping_settings(),
                      "seed": self.seed, "attack": self.attacks.get(i, "none"),
                      "attack_partners": [self.node_name(j) for j, kind in sorted(self.attacks.items())
                                          if kind == self.attacks.get(i) and j != i]},
            "p2p": {"key_file": str(RunFolder(folder).p2p_key), "listen": listen, "bootstrap": list(bootstrap)},
            "chain": {"url": chain_url, "contract": contract, "task_id": task_id,
                      "key_file": str(RunFolder(folder).eth_key)},
        }
        return config_from_mapping(values, self.node_overrides)

    def _data_section(self, i: int) -> dict[str, Any]:
        if self.data is not None:
            files = self.data.hospitals[i]
            return {"dataset": "csv", "seed": self.seed, "csv_path": str(files.train.resolve()),
                    "test_csv": str(files.test.resolve()) if files.test else "",
                    "label_column": self.data.label_column, "feature_columns": list(self.data.feature_columns),
                    "categorical_columns": list(self.data.categorical_columns)}
        return {"dataset": self.dataset, "seed": self.seed, "n_nodes": self.parts, "node_index": self._part(i),
                "partition": self.partition, "alpha": self.alpha,
                **({"hospital": HEART_HOSPITALS[self._part(i)]} if self.dataset == "heart" else {})}


@dataclass(frozen=True)
class Seat:
    """One node's place in the swarm: its name, folder, libp2p peer id and account."""

    name: str
    folder: Path
    peer_id: str
    address: str


@dataclass(frozen=True)
class Provisioned:
    """The chain side of a swarm once deployed: who is who, and where the contract is."""

    contract: str
    task_id: int
    quorum: int
    admin_key: str
    names: tuple[str, ...]
    node_dirs: tuple[Path, ...]
    peer_ids: tuple[str, ...]
    addresses: tuple[str, ...]
    referee: Seat | None = None  # the sponsor's referee node, if the task has one

    def folders(self) -> tuple[RunFolder, ...]:
        return tuple(RunFolder(d) for d in self.node_dirs)


def privacy_terms(dp: DpConfig) -> PrivacyTerms | None:
    """The task's on-chain privacy terms from the nodes' `[dp]` settings (None: DP off)."""
    if dp.epsilon <= 0:
        return None
    return PrivacyTerms(dp.epsilon, dp.delta, dp.noise_multiplier, dp.max_grad_norm, dp.accountant)


def _seat(w3: Web3, admin: Any, run_dir: Path, name: str, wei: int) -> Seat:
    """A node's folder and keys (kept from an earlier run), its account funded with `wei`."""
    folder = RunFolder(run_dir / name).create()
    folder.clear_run_files()  # a new chain: what an earlier run left here no longer applies
    account = load_key(folder.eth_key) if folder.eth_key.exists() else write_key(
        folder.eth_key, "0x" + os.urandom(32).hex())
    send_value(w3, admin, account.address, wei)
    return Seat(name, folder.path, peer_id_for_key_file(folder.p2p_key), account.address)


def provision(w3: Web3, plan: SwarmPlan, run_dir: Path, say: Callable[[str], None]) -> Provisioned:
    """Create node keys, deploy the ledger, register the members, open and fund the task."""
    admin_key, sponsor_key = dev_keys(w3, 2)
    admin, sponsor = Account.from_key(admin_key), Account.from_key(sponsor_key)
    stake = int(plan.stake_eth * WEI_PER_ETH)
    seats = [_seat(w3, admin, run_dir, plan.node_name(i), GAS_ALLOWANCE_WEI + stake) for i in range(plan.nodes)]
    referee = _seat(w3, admin, run_dir, REFEREE, GAS_ALLOWANCE_WEI) if plan.referee else None
    quorum = max(2, plan.nodes // 2 + 1)
    dataset = "csv" if plan.data is not None else plan.dataset
    published = published_set(DataConfig(dataset=plan.dataset))
    if plan.validation is not None:
        sponsors = read_published_set(Path(plan.validation))
        if published is not None and published.digest != sponsors.digest:
            raise ValueError(f"{plan.dataset} comes with its own published validation set ({published.digest}); "
                             f"{plan.validation} hashes to {sponsors.digest}: the task names one set")
        published = sponsors
    first = plan.node_config(0, run_dir, "", "", 1, "", ())  # the task's terms follow the nodes' settings
    task = TaskPlan(quorum=quorum, model_id=f"{dataset}/{plan.model}",
                    round_duration=max(1, round(plan.round_timeout)), fund=int(plan.pool_eth * WEI_PER_ETH),
                    stake=stake, slash=int(plan.slash_eth * WEI_PER_ETH),
                    referee=referee.address if referee else None,
                    validation_digest=None if published is None else published.digest,
                    privacy=privacy_terms(first.dp), exchange=exchange_terms(first.swarm))
    members = [NewMember(s.address, s.peer_id, s.name) for s in seats + ([referee] if referee else [])]
    deployed = deploy_ledger(w3, admin, members, task, sponsor=sponsor)
    say(f"ledger deployed at {deployed.address}")
    terms = "".join([f"; stake {plan.stake_eth:g} ETH, slash {plan.slash_eth:g} ETH" if stake else "",
                     "; the sponsor's referee decides split rounds" if referee else "",
                     f" with validation set {published.digest[:10]}" if referee and published else ""])
    say(f"task {deployed.task_id} opened with a pool of {plan.pool_eth:g} ETH; {plan.nodes} members registered{terms}")
    return Provisioned(deployed.address, deployed.task_id, quorum, admin_key, tuple(s.name for s in seats),
                       tuple(s.folder for s in seats), tuple(s.peer_id for s in seats),
                       tuple(s.address for s in seats), referee)


def expectations_from_logs(prov: Provisioned) -> dict[str, Any]:
    """What the nodes' own logs say the chain must hold, for the audit to check.

    Each node logs the score vector the chain accepted as its vote on a round (member name ->
    score, FLAGGED as -1): the chain must hold exactly that vote from it. The credits follow
    from the votes by the contract's rule (winner, deviants, flags), which the audit recomputes.
    """
    address = dict(zip(prov.names, prov.addresses))
    voters = list(zip(prov.names, prov.folders()))
    if prov.referee is not None:
        address[prov.referee.name] = prov.referee.address
        voters.append((prov.referee.name, RunFolder(prov.referee.folder)))
    votes: dict[int, dict[str, dict[str, int]]] = {}
    for name, folder in voters:
        for row in folder.read_scores():
            votes.setdefault(row["round"], {})[address[name]] = {address.get(peer, peer): int(score)
                                                                  for peer, score in row["scores"].items()}
    return {"votes": {prov.task_id: votes}}


class LocalSwarm:
    """Runs a swarm described by a `SwarmPlan` from start to report."""

    def __init__(self, plan: SwarmPlan, say: Callable[[str], None] = print) -> None:
        plan.validate()
        self.plan = plan
        self.say = say
        self.run_dir = plan.out.resolve()  # node configs name absolute paths
        self._procs: dict[str, subprocess.Popen | StartedNode] = {}
        self.starter = NodeStarter()  # forks the node processes (node.starter)
        self.referee_config: NodeConfig | None = None  # set by `prepare` when the plan has a referee

    # ---------------------------------------------------------------- top level

    def run(self) -> SwarmReport:
        """Chain, contract, nodes, rounds, payouts, audit and report, start to finish."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if self.plan.in_process:
            return self._run_on(connect("eth-tester"), "eth-tester", started)
        with Anvil(state_file=self.plan.state_file) as anvil:
            self.say(f"anvil up at {anvil.url}")
            return self._run_on(connect(anvil.url), anvil.url, started)

    def _run_on(self, w3: Web3, chain_url: str, started: float) -> SwarmReport:
        if self.plan.in_process:
            prov, configs = self.prepare(w3, chain_url)
            referee = [self.referee_config] if self.referee_config else []
            summaries = self._run_in_process(configs + referee, w3)[:len(configs)]
        else:
            self.starter.warm()  # its imports overlap the chain set-up
            try:
                prov, configs = self.prepare(w3, chain_url)
                referee = [self.referee_config] if self.referee_config else []
                for config in configs + referee:
                    self.start_node(config)
                self.say(f"{len(configs)} node processes started; logs in {self.run_dir}/<node>/node.log")
                self.wait_for_nodes(configs)
            finally:
                self.stop_processes()
            summaries = [self.summary(c) for c in configs]
        if not any(summaries):
            raise SwarmFailed(f"no node finished; see the node.log files under {self.run_dir}")
        return self.finish(w3, prov, configs, summaries, time.monotonic() - started)

    def prepare(self, w3: Web3, chain_url: str) -> tuple[Provisioned, list[NodeConfig]]:
        """Provision the chain side and write every node's config file."""
        prov = provision(w3, self.plan, self.run_dir, self.say)
        ports = [free_port() for _ in prov.names]
        addrs = [f"/ip4/127.0.0.1/tcp/{p}/p2p/{pid}" for p, pid in zip(ports, prov.peer_ids)]
        configs = []
        for i, folder in enumerate(prov.node_dirs):
            bootstrap = tuple(a for j, a in enumerate(addrs) if j != i)
            config = self.plan.node_config(i, folder, prov.contract, chain_url, prov.task_id,
                                           f"/ip4/127.0.0.1/tcp/{ports[i]}", bootstrap)
            RunFolder(folder).config.write_text(dump_config(config))
            configs.append(config)
        if prov.referee is not None:  # it dials every member; members need not know its address
            self.referee_config = self.plan.referee_config(prov.referee.folder, prov.contract, chain_url, prov.task_id,
                                                           f"/ip4/127.0.0.1/tcp/{free_port()}", tuple(addrs))
            RunFolder(prov.referee.folder).config.write_text(dump_config(self.referee_config))
        return prov, configs

    def finish(self, w3: Web3, prov: Provisioned, configs: list[NodeConfig],
               summaries: list[dict[str, Any] | None], seconds: float) -> SwarmReport:
        """Close the task, let every member withdraw, audit the chain and write the report."""
        payouts = self._close_and_pay(w3, prov)
        metrics = [self.metrics(c) for c in configs]
        checked = audit(w3, prov.contract, expectations=expectations_from_logs(prov))
        report = SwarmReport.build(self.plan, prov, summaries, payouts, checked, metrics, seconds)
        write_report(report, self.run_dir)
        return report

    # ---------------------------------------------------------------- nodes as processes

    def start_node(self, config: NodeConfig, cold: bool = False) -> subprocess.Popen | StartedNode:
        """Start `medswarm node` for one config, as its own process group, logging to its run folder:
        forked from the warm starter process (node.starter), or with `cold` as a fresh interpreter,
        as a hospital starts its one node."""
        folder = RunFolder(Path(config.output_dir))
        proc: subprocess.Popen | StartedNode
        if cold:
            with open(folder.log, "a") as logfile:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "node.cli", "node", "--config", str(folder.config)],
                    stdout=logfile, stderr=subprocess.STDOUT, start_new_session=True,
                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
        else:
            proc = self.starter.start(folder.config.resolve(), folder.log.resolve())
        self._procs[config.name] = proc
        return proc

    def processes(self) -> dict[str, subprocess.Popen | StartedNode]:
        """The node processes started so far, by node name."""
        return dict(self._procs)

    def kill_node(self, name: str) -> None:
        """Kill one node abruptly (SIGKILL), as a crash or power cut would."""
        proc = self._procs[name]
        _signal_group(proc, signal.SIGKILL)
        proc.wait()

    def wait_for_nodes(self, configs: list[NodeConfig], timeout: float | None = None) -> None:
        """Show per-round progress until every node process has exited; report failures."""
        deadline = time.monotonic() + timeout if timeout else math.inf
        self._watch(configs, lambda: all(p.poll() is not None for p in self._procs.values())
                    or time.monotonic() > deadline)
        for config in configs:
            proc = self._procs.get(config.name)
            if proc is not None and proc.returncode not in (0, None):
                self.say(f"node {config.name} exited with status {proc.returncode}; "
                         f"see {RunFolder(Path(config.output_dir)).log}")

    def stop_processes(self, grace: float = 10.0) -> None:
        """Stop every node process still running: SIGTERM to its group, then SIGKILL; then the starter."""
        live = [p for p in self._procs.values() if p.poll() is None]
        for proc in live:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.starter.close()

    # ---------------------------------------------------------------- nodes in this process

    def _run_in_process(self, configs: list[NodeConfig], w3: Web3) -> list[dict[str, Any] | None]:
        from .runtime import StartupError, build_node

        nodes = []
        for config in configs:
            try:
                nodes.append(build_node(config, w3=w3))
            except StartupError as exc:  # what a node process would log as its one line, then exit 2
                raise SwarmFailed(f"node {config.name} cannot start: {exc}") from None
        results: list[dict[str, Any] | None] = [None] * len(nodes)

        async def one(i: int) -> None:
            results[i] = await nodes[i].run()

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                for i in range(len(nodes)):
                    nursery.start_soon(one, i)
                nursery.start_soon(self._watch_async, configs, lambda: all(r is not None for r in results))

        trio.run(main)
        return results

    # ---------------------------------------------------------------- progress

    def _progress_line(self, configs: list[NodeConfig], shown: int) -> int:
        metrics = [self.metrics(c) for c in configs]
        done = min((len(m) for m in metrics), default=0)
        for r in range(shown + 1, done + 1):
            rows = [m[r - 1] for m in metrics]
            acc = sum(x["test_accuracy"] for x in rows) / len(rows)
            heard = sum(x["heard"] for x in rows)
            expected = sum(x["expected"] for x in rows)
            slowest = max(sum(v for k, v in x["phases"].items() if k != "chain") for x in rows)
            self.say(f"[round {r}/{self.plan.rounds}] mean test accuracy {acc:.3f} | updates heard "
                     f"{heard}/{expected} | slowest node {slowest:.2f}s")
        return max(shown, done)

    def _watch(self, configs: list[NodeConfig], finished: Callable[[], bool]) -> None:
        shown = 0
        while not finished():
            shown = self._progress_line(configs, shown)
            time.sleep(POLL_SECONDS)
        self._progress_line(configs, shown)

    async def _watch_async(self, configs: list[NodeConfig], finished: Callable[[], bool]) -> None:
        shown = 0
        while not finished():
            shown = self._progress_line(configs, shown)
            await trio.sleep(POLL_SECONDS)
        self._progress_line(configs, shown)

    @staticmethod
    def metrics(config: NodeConfig) -> list[dict[str, Any]]:
        return RunFolder(Path(config.output_dir)).read_metrics()

    @staticmethod
    def summary(config: NodeConfig) -> dict[str, Any] | None:
        return RunFolder(Path(config.output_dir)).read_summary()

    # ---------------------------------------------------------------- payouts

    def _close_and_pay(self, w3: Web3, prov: Provisioned) -> dict[str, int]:
        admin = Ledger(w3, prov.contract, Account.from_key(prov.admin_key))
        admin.close_task(prov.task_id)
        payouts: dict[str, int] = {}
        returned = 0
        for name, folder in zip(prov.names, prov.folders()):
            member = admin.with_account(load_key(folder.eth_key))
            owed = member.owed(prov.task_id, member.account.address)
            payouts[name] = member.withdraw(prov.task_id) if owed else 0
            if member.stake_of(prov.task_id, member.account.address):
                returned += member.reclaim_stake(prov.task_id)
        self.say("task closed; every member withdrew what it was owed"
                 + (f" and took back {returned / WEI_PER_ETH:g} ETH of unslashed stake" if returned else ""))
        return payouts


def _signal_group(proc: subprocess.Popen | StartedNode, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


__all__ = ["LocalSwarm", "Provisioned", "SwarmFailed", "SwarmPlan", "provision"]
