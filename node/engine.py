"""The round engine: one hospital's part in the swarm, round after round.

For each round r it trains locally (in a worker thread, so the event loop keeps serving peers),
commits the digest of its encoded update on chain, shares the update (a small announcement on
gossip, the bytes on a direct stream), collects its peers' updates (checking bytes = announcement
= on-chain commitment, decoding with strict bounds) until all have arrived or the round's
deadline passes, merges them with the configured rule, scores each peer on its own validation
rows, queues the scores and finalization on chain, and checkpoints. Before round 1 the swarm
agrees on input scaling from shared sums and counts; a node that starts late or restarts catches
up from the merged model its peers announce.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Iterator, TypeVar

import numpy as np
import trio

from incentive.ledger import Ledger, LedgerError, Member
from p2p.announce import Announcement
from p2p.codec import decode_update, digest, encode_update
from p2p.host import FetchError, SwarmHost

from .attacks import apply_attack
from .chainwriter import ChainWriter
from .checkpoint import Checkpoint, StaleCheckpoint, load_checkpoint, save_checkpoint
from .config import NodeConfig
from .consensus import choose_model, rank_models
from .exchange import Exchange
from .inbox import Inbox
from .learner import Learner, Tensors, add
from .logs import node_logger
from .merge import Update, rule_by_name
from .preprocess import STATS_MAX_ABS, STATS_TENSOR_NAMES, FeatureStats
from .scoring import default_scorer, scorer_by_name

T = TypeVar("T")

JOIN_WAIT_SECONDS = 4.0  # how long a restarted node listens for the swarm's current round
SETTLE_SECONDS = 5.0  # after the last round's deadline, how long to wait for peers' final models
MAX_SAMPLES = 10_000_000  # an announcement claiming more rows than this is a lie
WEIGHT_PREFIX, STATS_PREFIX = "w/", "s/"
# The codec's bound on values in a model bundle (merged weights plus the swarm's statistics): the
# combined statistics of up to a million members of STATS_MAX_ABS each; merged weights move by at
# most the codec's default bound per round, so they stay far below it too.
BUNDLE_MAX_ABS = 1e36
SCORES_LOG = "scores.jsonl"  # scores this node got onto the chain, one line per round


class NodeError(RuntimeError):
    """The node cannot take part: not registered, wrong chain, unusable checkpoint."""


@dataclass(frozen=True)
class RoundReport:
    round: int
    val_loss: float
    val_accuracy: float
    test_accuracy: float
    test_auc: float
    heard: int  # peers whose valid update was merged
    expected: int  # registered peers
    bytes_in: int  # blob bytes fetched from peers this round (updates, models, statistics)
    bytes_out: int  # blob bytes served to peers this round
    committed: bool
    model_digest: str
    scores: dict[str, int]
    dropped: dict[str, str]
    phases: dict[str, float]
    chain: str

    def line(self, rounds: int) -> str:
        phases = " ".join(f"{k} {v:.2f}s" for k, v in self.phases.items())
        return (f"round {self.round}/{rounds} | val loss {self.val_loss:.3f} acc {self.val_accuracy:.3f}"
                f" | peers {self.heard}/{self.expected} | {phases} | {self.chain}")


@dataclass
class PhaseTimer:
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started


async def wait_future(future: "Future[T]") -> T:
    """Await a chain-writer Future from trio without blocking the event loop."""
    return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)


def model_bundle(weights: Tensors, stats: FeatureStats) -> Tensors:
    """What a node checkpoints and offers late joiners: merged weights plus swarm statistics."""
    bundle = {WEIGHT_PREFIX + k: v for k, v in weights.items()}
    bundle.update({STATS_PREFIX + k: v for k, v in stats.to_tensors().items()})
    return bundle


def split_bundle(bundle: Tensors) -> tuple[Tensors, FeatureStats]:
    weights = {k[len(WEIGHT_PREFIX):]: v for k, v in bundle.items() if k.startswith(WEIGHT_PREFIX)}
    stats = {k[len(STATS_PREFIX):]: v for k, v in bundle.items() if k.startswith(STATS_PREFIX)}
    return weights, FeatureStats.from_tensors(stats)


class SwarmNode:
    """Runs the round protocol for one node; `run()` returns the node's summary."""

    def __init__(self, config: NodeConfig, learner: Learner, host: SwarmHost, ledger: Ledger,
                 chain: ChainWriter) -> None:
        self.config = config
        self.learner = learner
        self.host = host
        self.ledger = ledger
        self.chain = chain
        self.log = node_logger(__name__, config.name)
        self.task = config.chain.task_id
        self._task_key = f"{ledger.address}/{self.task}"
        self.out = Path(config.output_dir)
        self.rule = rule_by_name(config.swarm.merge)
        self.scorer = default_scorer() if config.swarm.scorer == "default" else scorer_by_name(config.swarm.scorer)
        self.inbox = Inbox()
        self.members: dict[str, Member] = {}
        self.round_duration, self.quorum = 0, 0  # read from the task on chain
        self.round = 0
        self.stats: FeatureStats | None = None
        self.weights: Tensors = learner.weights()
        self._pending_scores: tuple[int, dict[str, int]] | None = None
        self._bytes_mark = (0, 0)  # byte counters when the last round was reported
        n = learner.data.n_features
        self._update_shapes = learner.shapes
        self._stats_shapes = {k: (n,) for k in STATS_TENSOR_NAMES}
        self._bundle_shapes = {WEIGHT_PREFIX + k: s for k, s in learner.shapes.items()}
        self._bundle_shapes.update({STATS_PREFIX + k: s for k, s in self._stats_shapes.items()})
        raw = 4 * sum(int(np.prod(s)) for s in self._bundle_shapes.values())
        self.exchange = Exchange(host, self.inbox, config.p2p.swarm, lambda: self.members, self.log,
                                 max_blob=2 * raw + 64 * 1024 + 64 * len(self._bundle_shapes),
                                 max_abs={"stats": STATS_MAX_ABS, "model": BUNDLE_MAX_ABS})

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        await self._load_members()
        async with self.host.run():
            self.log.info("peer %s listening on %s", self.host.peer_id, ", ".join(self.host.listen_addrs))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen)
                nursery.start_soon(self.exchange.reannounce_forever)
                try:
                    await self._start()
                    while self.round < self.config.swarm.rounds:
                        await self._run_round(self.round + 1)
                    await self._settle()
                    await self._finish_chain_work()
                finally:
                    nursery.cancel_scope.cancel()
        return self._summary()

    async def _load_members(self) -> None:
        members = await trio.to_thread.run_sync(self.ledger.members)
        self.members = {m.peer_id: m for m in members if m.active}
        me = self.members.get(self.host.peer_id)
        account = self.ledger.account.address
        if me is None or me.address.lower() != account.lower():
            raise NodeError(f"this node (peer {self.host.peer_id}, account {account}) is not a registered "
                            f"member of the ledger at {self.ledger.address}")
        self.host.set_allowlist(self.members)
        task = await trio.to_thread.run_sync(self.ledger.task, self.task)
        if task.closed:
            raise NodeError(f"task {self.task} on the ledger at {self.ledger.address} is closed")
        self.round_duration, self.quorum = task.round_duration, task.quorum
        self.log.info("%d registered members; task %d: %s, quorum %d, rounds end %ds after the first commit",
                      len(self.members), self.task, task.model_id, task.quorum, task.round_duration)

    @property
    def peers(self) -> dict[str, Member]:
        return self.exchange.peers

    async def _listen(self) -> None:
        async for ann in self.host.announcements():
            if ann.swarm != self.config.p2p.swarm or ann.sender not in self.peers:
                continue
            self.inbox.add(ann)

    # ------------------------------------------------------------------ start: scaling or catch-up

    async def _start(self) -> None:
        try:
            ckpt = load_checkpoint(self.out, self._bundle_shapes, self._task_key, max_abs=BUNDLE_MAX_ABS)
        except StaleCheckpoint as exc:
            self.log.warning("%s; starting afresh", exc)
            ckpt = None
        if ckpt is not None:
            self._adopt(ckpt.round, ckpt.tensors)
            self.log.info("resumed from checkpoint at round %d", ckpt.round)
            await self.inbox.wait_until(lambda: self.inbox.latest_round("model") > self.round,
                                        trio.current_time() + JOIN_WAIT_SECONDS)
            await self._catch_up()
            return
        await self._agree_scaling()
        if self.stats is None:
            await self._catch_up()

    def _adopt(self, round_no: int, bundle: Tensors) -> None:
        weights, stats = split_bundle(bundle)
        self.learner.set_scaling(stats)
        self.learner.set_weights(weights)
        self.weights, self.stats, self.round = weights, stats, round_no

    async def _adopt_announced(self, round_no: int, anns: dict[str, Announcement], model: str) -> bool:
        """Fetch the merged model `model` announced for `round_no` (from any holder) and adopt it."""
        ann = min((a for a in anns.values() if a.digest == model), key=lambda a: a.sender)
        fetched = await self.exchange.fetch_decoded(ann, self._bundle_shapes)
        if fetched is not None:
            self._adopt(round_no, fetched[1])
        return fetched is not None

    async def _catch_up(self) -> None:
        """Adopt the model most peers announced for the latest round, if the swarm is ahead of us."""
        latest = self.inbox.latest_round("model")
        if latest <= self.round:
            return
        anns = self.inbox.get("model", latest)
        for model, holders in rank_models(a.digest for a in anns.values()):
            if await self._adopt_announced(latest, anns, model):
                self._checkpoint()
                self.log.info("caught up: adopted round %d model %s (announced by %d of the peers heard)",
                              latest, model[:10], holders)
                return
        raise NodeError(f"could not fetch the swarm's round {latest} model from any peer")

    async def _agree_scaling(self) -> None:
        blob = encode_update(self.learner.local_stats().to_tensors(), "f32", max_abs=STATS_MAX_ABS)
        # Combine our own statistics as peers receive them (float32 pairs), not the exact float64
        # ones, so that every node computes bit-identical scaling (and identical model bundles).
        own = FeatureStats.from_tensors(decode_update(blob, max_abs=STATS_MAX_ABS))
        deadline = trio.current_time() + self.config.swarm.stats_timeout
        await self.exchange.announce("stats", 0, blob, len(self.learner.fit), "f32", until=deadline)
        collected = await self.exchange.collect(
            "stats", 0, self._stats_shapes, deadline,
            stop=lambda: self.inbox.latest_round("model") > 0,
            convert=lambda ann, tensors: FeatureStats.from_tensors(tensors))
        if self.inbox.latest_round("model") > 0:
            self.log.info("the swarm is already past round 1: catching up instead of pooling statistics")
            return
        parts = [own] + [collected[k] for k in sorted(collected)]
        self.stats = FeatureStats.combine(parts)
        self.learner.set_scaling(self.stats)
        self.log.info("input scaling agreed from %d nodes' sums and counts", len(parts))

    # ------------------------------------------------------------------ round timing, names

    async def _round_deadline(self, r: int) -> float:
        """The round's end on trio's clock: the chain's deadline (first commit + round duration).

        Every node reads the same deadline from the chain, so they stop waiting for stragglers at
        the same moment and, having heard the same committed updates, merge the same set; a
        commit after the deadline is refused by the contract, so the set cannot grow later.
        """
        state = await trio.to_thread.run_sync(self.ledger.round_state, self.task, r)
        return self._on_trio_clock(state.deadline or time.time() + self.round_duration)

    @staticmethod
    def _on_trio_clock(unix_time: float) -> float:
        return trio.current_time() + max(0.0, unix_time - time.time())

    def _name(self, peer_id: str) -> str:
        return self.exchange.name(peer_id)

    # ------------------------------------------------------------------ one round

    async def _run_round(self, r: int) -> None:
        cfg = self.config.swarm
        timer = PhaseTimer()
        with timer("train"):
            delta = await trio.to_thread.run_sync(self.learner.train_update, r)
        blob = await self._own_update_blob(r, delta)
        own = Update(decode_update(blob, expected=self._update_shapes), len(self.learner.fit), self.host.peer_id)
        own_digest = digest(blob)
        with timer("commit"):
            committed = await self._commit(r, own_digest)
        deadline = await self._round_deadline(r)
        if committed:
            with timer("share"):
                await self.exchange.announce("update", r, blob, own.samples, cfg.codec, until=deadline)
        with timer("collect"):
            received = await self.exchange.collect("update", r, self._update_shapes, deadline,
                                           convert=partial(self._check_commitment, r))
        updates = ([own] if committed else []) + [received[k] for k in sorted(received)]
        if len(updates) < self.quorum:
            self.log.warning("round %d: %d update(s), below the task's quorum of %d: merged anyway, "
                             "but the chain credits nobody for this round", r, len(updates), self.quorum)
        with timer("merge"):
            await self._rejoin_consensus(r - 1)
            start = self.weights
            if updates:
                self.weights = add(self.weights, self.rule.merge(updates))
            self.learner.set_weights(self.weights)
        with timer("score"):
            scores = await trio.to_thread.run_sync(self._score, start, own, updates)
        self._queue_chain_work(r, scores)
        self.round = r
        with timer("checkpoint"):
            bundle_blob = self._checkpoint()
            await self.exchange.announce("model", r, bundle_blob, own.samples, "f32")
        self.log.info(self._report(r, committed, received, scores, timer).line(cfg.rounds))

    async def _rejoin_consensus(self, r: int) -> None:
        """If the swarm's choice of round r's merged model (`choose_model`) is not ours, adopt it.

        Updates are deltas, so the current round's merge can start from the chosen model.
        """
        ours = self.exchange.latest_offer("model")
        if r < 1 or ours is None or ours.round != r:
            return
        anns = self.inbox.get("model", r)
        choice = choose_model(ours.digest, (a.digest for a in anns.values()))
        if choice.digest == ours.digest:
            return
        if await self._adopt_announced(r, anns, choice.digest):
            if choice.is_majority:
                self.log.warning("round %d: %d of %d members hold model %s, not ours: continuing from theirs",
                                 r, choice.votes, choice.voters, choice.digest[:10])
            else:
                self.log.warning("round %d: no majority among %d members' models: continuing from %s "
                                 "(held by %d, the lowest digest among the most held)",
                                 r, choice.voters, choice.digest[:10], choice.votes)

    async def _settle(self) -> None:
        """After the last round, wait for the peers' final models and join the swarm's choice.

        Without this, a node whose last merge differed from the others' (a fetch that failed on
        it alone) would end on its own model, since no next round corrects it. It waits for every
        peer that committed the last round, at most until SETTLE_SECONDS after the round's chain
        deadline (a peer still collecting finishes by then).
        """
        r = self.round
        state = await trio.to_thread.run_sync(self.ledger.round_state, self.task, r)
        committers = {a.lower() for a in state.committers}
        expected = {pid for pid, m in self.peers.items() if m.address.lower() in committers}
        until = self._on_trio_clock(state.deadline) + SETTLE_SECONDS
        await self.inbox.wait_until(lambda: expected <= set(self.inbox.get("model", r)), until)
        before = self.weights
        await self._rejoin_consensus(r)
        if self.weights is not before:
            self._checkpoint()

    async def _own_update_blob(self, r: int, delta: Tensors) -> bytes:
        attack = self.config.swarm.attack
        if attack == "copy":
            # A free rider re-sends the first peer update it can get hold of this round.
            await self.inbox.wait_until(lambda: bool(self.inbox.get("update", r)),
                                        trio.current_time() + self.round_duration)
            for ann in self.inbox.get("update", r).values():
                try:
                    return await self.host.fetch(ann.sender, ann.digest, max_bytes=self.exchange.max_blob)
                except FetchError as exc:
                    self.log.info("copy attack: could not fetch %s's update (%s)", self._name(ann.sender), exc)
        delta = apply_attack(attack, delta, self.config.swarm.attack_factor)
        return encode_update(delta, self.config.swarm.codec)

    async def _commit(self, r: int, update_digest: str) -> bool:
        """Put this round's digest on chain, carrying last round's scores in the same transaction."""
        pending, self._pending_scores = self._pending_scores, None
        future = self.chain.submit(f"commit r{r}", partial(self._send_commit, r, update_digest, pending))
        try:
            await wait_future(future)
            return True
        except LedgerError as exc:
            self.log.warning("round %d: commit refused on chain (%s); update not shared", r, exc.error)
        except Exception as exc:  # the writer already retried transport faults
            self.log.error("round %d: commit failed (%s); update not shared", r, exc)
        return False

    async def _check_commitment(self, r: int, ann: Announcement, tensors: Tensors) -> Update:
        if not 0 < ann.samples <= MAX_SAMPLES:
            raise ValueError(f"implausible sample count {ann.samples}")
        address = self.members[ann.sender].address
        on_chain = await trio.to_thread.run_sync(self.ledger.commitment, self.task, r, address)
        if on_chain is None or on_chain.lower() != ann.digest.lower():
            raise ValueError(f"bytes do not match the on-chain commitment ({on_chain})")
        return Update(tensors, ann.samples, ann.sender)

    def _score(self, start: Tensors, own: Update, updates: list[Update]) -> dict[str, int]:
        """Score each peer's update against the round's starting model on this node's validation rows."""
        peers = [u for u in updates if u.sender != own.sender]
        if not peers:
            return {}
        val = self.learner.val
        report = self.scorer.score(self.learner.model, start, updates, self.rule, val.x, val.y,
                                   peers=[u.sender for u in peers])
        return report.scores

    def _send_commit(self, r: int, update_digest: str, pending: tuple[int, dict[str, int]] | None) -> None:
        """Runs on the chain writer. One transaction per round (about 96k gas at N = 8 instead of
        121k for two); if the scores part is refused, the commit still goes through on its own."""
        if pending is None:
            self.ledger.commit(self.task, r, update_digest)
            return
        score_round, scores = pending
        peers, values = self._score_args(scores)
        try:
            self.ledger.commit_and_score(self.task, r, update_digest, score_round, peers, values)
        except LedgerError as exc:
            self.log.warning("scores for round %d refused (%s); committing round %d alone", score_round, exc, r)
            self.ledger.commit(self.task, r, update_digest)
        else:
            self._record_scores(score_round, scores)

    def _send_scores(self, score_round: int, scores: dict[str, int]) -> None:
        self.ledger.submit_scores(self.task, score_round, *self._score_args(scores))
        self._record_scores(score_round, scores)

    def _record_scores(self, score_round: int, scores: dict[str, int]) -> None:
        """The node's own log of scores the chain accepted from it (the audit checks the chain against it)."""
        line = {"round": score_round, "scores": {self._name(p): v for p, v in scores.items()}}
        with open(self.out / SCORES_LOG, "a") as fh:
            fh.write(json.dumps(line) + "\n")

    def _score_args(self, scores: dict[str, int]) -> tuple[list[str], list[int]]:
        ordered = sorted(scores)
        return [self.members[p].address for p in ordered], [scores[p] for p in ordered]

    def _queue_chain_work(self, r: int, scores: dict[str, int]) -> None:
        """Scores ride on the next round's commit; the round before this one can now be finalized."""
        if scores:
            self._pending_scores = (r, scores)
        if r > 1:
            self.chain.submit(f"finalize r{r - 1}", partial(self._finalize_if_ready, r - 1))

    def _flush_scores(self) -> None:
        """After the last round there is no next commit to carry its scores: send them alone."""
        pending, self._pending_scores = self._pending_scores, None
        if pending is not None:
            score_round, scores = pending
            self.chain.submit(f"scores r{score_round}", partial(self._send_scores, score_round, scores))

    def _finalize_if_ready(self, r: int) -> bool:
        """Finalize round r once every committer has scored or its deadline passed; True when done."""
        state = self.ledger.round_state(self.task, r)
        if state.finalized or not state.committers:
            return True
        if not set(state.committers) <= set(state.scored):
            # Wall-clock time: a dev chain that mines on demand has no newer block to read it from.
            if time.time() < state.deadline:
                return False
        try:
            self.ledger.finalize(self.task, r)
        except LedgerError as exc:
            if exc.error != "AlreadyFinalized":  # another node got there first
                raise
        return True

    async def _finish_chain_work(self) -> None:
        """Wait (bounded) until every round this node took part in is finalized on chain."""
        self._flush_scores()
        deadline = trio.current_time() + 2 * self.round_duration
        pending = list(range(1, self.round + 1))
        while pending and trio.current_time() < deadline:
            still = []
            for r in pending:
                try:
                    done = await wait_future(self.chain.submit(f"finalize r{r}", partial(self._finalize_if_ready, r)))
                except Exception as exc:
                    self.log.warning("finalize r%d: %s", r, exc)
                    done = False
                if not done:
                    still.append(r)
            pending = still
            if pending:
                await trio.sleep(1.0)
        if pending:
            self.log.warning("rounds %s not finalized yet; anyone may finalize them later", pending)
        await trio.to_thread.run_sync(self.chain.stop)

    # ------------------------------------------------------------------ records

    def _checkpoint(self) -> bytes:
        assert self.stats is not None
        ckpt = Checkpoint(self.round, model_bundle(self.weights, self.stats), max_abs=BUNDLE_MAX_ABS)
        save_checkpoint(self.out, ckpt, self._task_key)
        return ckpt.encode()

    def _weights_digest(self) -> str:
        return digest(encode_update(self.weights, "f32", max_abs=BUNDLE_MAX_ABS))

    def _report(self, r: int, committed: bool, received: dict[str, Update], scores: dict[str, int],
                timer: PhaseTimer) -> RoundReport:
        val = self.learner.evaluate(self.weights, self.learner.val)
        test = self.learner.evaluate(self.weights, self.learner.test)
        status = self.chain.status()
        phases = dict(timer.seconds)
        phases["chain"] = status.busy_seconds
        report = RoundReport(
            round=r, val_loss=val.loss, val_accuracy=val.accuracy, test_accuracy=test.accuracy,
            test_auc=test.auc, heard=len(received), expected=len(self.peers), committed=committed,
            bytes_in=self.exchange.bytes_in - self._bytes_mark[0], bytes_out=self.host.bytes_served - self._bytes_mark[1],
            model_digest=self._weights_digest(),
            scores={self._name(p): s for p, s in scores.items()},
            dropped={self._name(p): str(n) for p, n in self.exchange.strikes.items()},
            phases={k: round(v, 4) for k, v in phases.items()}, chain=status.describe())
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(_jsonable(asdict(report))) + "\n")
        self._bytes_mark = (self.exchange.bytes_in, self.host.bytes_served)
        return report

    def _summary(self) -> dict[str, Any]:
        final = self.learner.evaluate(self.weights, self.learner.test)
        epochs = self.config.training.epochs * self.config.swarm.rounds
        local = self.learner.local_only(epochs)
        summary = {
            "name": self.config.name, "peer_id": self.host.peer_id, "address": self.ledger.account.address,
            "rounds": self.round, "model_digest": self._weights_digest(),
            "test_accuracy": final.accuracy, "test_auc": final.auc, "test_rows": final.n,
            "local_only_accuracy": local.accuracy, "local_only_auc": local.auc,
            "strikes": {self._name(p): n for p, n in self.exchange.strikes.items()},
            "chain": asdict(self.chain.status()),
        }
        (self.out / "summary.json").write_text(json.dumps(_jsonable(summary), indent=2))
        self.log.info("done: %d rounds, swarm test accuracy %.3f (local only %.3f), model %s",
                      self.round, final.accuracy, local.accuracy, summary["model_digest"][:12])
        return summary


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
