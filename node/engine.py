"""The round engine: one hospital's part in the swarm, round after round.

For each round r it trains locally (in a worker thread, so the event loop keeps serving peers),
passes the update through the outgoing pipeline, commits its digest on chain and shares it,
collects its peers' updates through the incoming pipeline until the awaited ones are in or the
round's chain deadline passes, merges them with the configured rule, computes the round's checkable
score vector from exactly the updates it merged (`node.contribution`: every honest node gets the
same integers, flagged near-copies and free riders marked FLAGGED), hands that vote and its
model's attestation to the chain duties, and checkpoints. With `swarm.groups` > 1 the members are
grouped by round 1's updates alike on every node (into that many groups, or as many as the updates
show with `swarm.group_count` "silhouette"), and from round 2 every node merges each group's
updates into that group's model (`node.grouping`): it trains on its own group's model, while the
state it attests holds every group's, so the chain's consensus works as for one model, and the
score vector still covers every committed update. Before round 1 the swarm agrees on input scaling from shared sums and counts; a
node that starts late or restarts adopts the newest model a majority attested on chain. The
pieces live next door: `pipeline`, `exchange`, `chainduties`, `consensus`, `records`, `rundir`.

Above `swarm.exchange_all_up_to` training members the swarm is sampled (`node.sampled`): each
node collects and merges only its chain-drawn partners' updates, publishes its partners' scores,
votes the vector every node assembles from those sheets, and attests no model (models differ per
node, so there is no swarm model to rejoin).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import trio

from incentive.ledger import Ledger, Member
from p2p.announce import Announcement
from p2p.codec import CodecError, digest, encode_update
from p2p.host import SwarmHost

from .attacks import Context, behaviour_by_name
from .bundle import (BUNDLE_MAX_ABS, bundle_shapes, model_bundle, optimizer_state, selection_state, split_bundle,
                     stats_shapes)
from .chainduties import FLAGGED, ChainDuties, on_trio_clock
from .chainwriter import ChainWriter
from .commitbook import CommitmentBook
from .checkpoint import Checkpoint, StaleCheckpoint
from .config import NodeConfig
from .consensus import MergeRecord, ModelConsensus
from .contribution import contribution_by_name
from .dp import BudgetExhausted, privacy_conflict
from .evaluation import EvaluationLayer, ValidationMismatch
from .exchange import Exchange
from .grouping import GROUP_COUNTS, GroupModels, Grouping
from .inbox import Inbox
from .learner import Learner, Tensors
from .logs import node_logger
from .merge import Update, reweighted, rule_by_name
from .pipeline import COMPRESSION, PRIVACY, BlobIntake, Outgoing, Rejected, UpdatePipeline, stage_by_name
from .preprocess import STATISTICS, STATS_MAX_ABS, FeatureStats
from .records import PhaseTimer, Recorder
from .selection import REPORT_SHAPES, decode_report, encode_report, final_model_by_name, pooled_loss
from .swarmopt import optimizer_by_name
from .terms import exchange_conflict, exchange_terms
from .referee import load_validation, referee_rounds
from .reveal import REREAD_SECONDS, RevealRule
from .rundir import RunFolder
from .sampled import SCORES, PartnerDraws, assemble, encode_sheet, sampled_fanout, sheet_intake
from .scenarios import PublishedSet

GROUPING_ROUND = 1  # swarm.groups > 1: the members are grouped by this round's updates
JOIN_WAIT_SECONDS = 4.0  # how long a restarted node listens for the swarm's current round
SETTLE_SECONDS = 5.0  # after the last round's deadline, how long to wait for peers' final models
ATTESTATION_POLL_SECONDS = 0.5
# Before round 1, the share of `swarm.stats_timeout` given to members not yet heard from or
# connected: the node processes of one launch come up seconds apart on a loaded machine, and
# one that misses the statistics pools a different scaling until the first round's consensus.
STARTUP_SHARE = 0.25
# How long a node waits at most for a missing validation report of a member it merged
# (node.selection): a node that pools without one holds another bundle than the rest and must then
# adopt the majority's. Collection ends as soon as every report is in: reports of round r are
# pooled at round r+1's merge, a round after they were sent; only the last round's are awaited.
REPORT_WAIT_SHARE = 0.5
# Sampled swarm: how long after the round's deadline to wait for the committers' score sheets
# (each comes right after its author's merge; the author's collection ends by the deadline).
SHEET_WAIT_SHARE = 0.25


class NodeError(RuntimeError):
    """The node cannot take part: not registered, wrong chain, unusable checkpoint."""


class SwarmNode:
    """Runs the round protocol for one node; `run()` returns the node's summary."""

    def __init__(self, config: NodeConfig, learner: Learner, host: SwarmHost, ledger: Ledger,
                 writer: ChainWriter) -> None:
        self.config = config
        self.learner = learner
        self.host = host
        self.ledger = ledger
        self.log = node_logger(__name__, config.name)
        self.task = config.chain.task_id
        self._task_key = f"{ledger.address}/{self.task}"
        self.run_folder = RunFolder(Path(config.output_dir))
        self.evaluation = EvaluationLayer.for_node(config, learner)
        self.rule = self.evaluation.rule
        self.contribution = contribution_by_name(config.swarm.contribution)
        self.score_rule = rule_by_name(config.swarm.merge)  # round r-1's merged update, as the scores' basis
        self.inbox = Inbox()
        self.members: dict[str, Member] = {}
        self.referee: str | None = None  # the task's referee (lower-case address): votes, never trains
        self.validation: PublishedSet | None = None  # the referee's: the sponsor's set, deciding splits
        self._reputation: dict[str, int] = {}  # peer id -> on-chain reputation (bps) when merges weigh by it
        self.round_duration, self.quorum = 0, 0  # read from the task on chain
        self.round = 0
        self.stats: FeatureStats | None = None
        self.weights: Tensors = learner.weights()
        model_shapes: dict[str, tuple[int, ...]] = dict(learner.shapes)
        if config.swarm.groups > 1:
            self.weights = GroupModels(config.swarm.groups).replicate(self.weights)
            model_shapes = GroupModels(config.swarm.groups).shapes(learner.shapes)
        self._last_heard: dict[str, int] = {}  # peer id -> last round whose update of it was merged
        self._first_round = 1  # the first round this process runs (later after a restart or a late start)
        self._merged: MergeRecord | None = None
        self._previous: MergeRecord | None = None  # the merge before `_merged`, the scores' basis
        self._flagged: dict[int, set[str]] = {}  # the last two scored rounds -> the senders flagged
        self._swarm_ahead = False  # a model past round 0 is attested on chain: catch up, do not pool
        self.fanout: int | None = None  # partners per node in a sampled swarm (None: all-to-all)
        self.draws = PartnerDraws(lambda r: self.duties.read(
            f"read round {r}'s opening block", partial(ledger.round_opening_block, self.task, r)), self.task)
        self.grouping: Grouping | None = None  # swarm.groups > 1: the groups, from round GROUPING_ROUND's updates
        # swarm.groups > 1: the state is every group's model (node.grouping), `weights` all of them
        self.group_models = GroupModels(config.swarm.groups) if config.swarm.groups > 1 else None
        self.duties = ChainDuties(ledger, writer, self.task, lambda: self.members, self.run_folder, self.log)
        n = learner.data.n_features
        # how the merged update moves the model; its state travels in the model bundle
        self.swarm_opt = optimizer_by_name(config.swarm.optimizer, model_shapes, config.swarm.server_lr)
        self._opt_before: Tensors = self.swarm_opt.state()  # the state before the latest merge's step
        # which model the run ends with (node.selection); its state travels in the bundle too
        self.final = final_model_by_name(config.swarm.final_model, model_shapes)
        self._final_before: Tensors = self.final.state()  # ... before the latest merge's choice
        self._choosing = self.final.needs_reports  # False in a swarm without one swarm model (_load_members)
        self._reported: dict[int, tuple[float, int]] = {}  # round -> this node's validation report as sent
        self._bundle_shapes = bundle_shapes(model_shapes, n, self.swarm_opt.state_shapes(), self.final.state_shapes())
        raw = 4 * sum(int(np.prod(s)) for s in self._bundle_shapes.values())
        max_blob = 2 * raw + 64 * 1024 + 64 * len(self._bundle_shapes)
        self.commitments = CommitmentBook(lambda r: self.duties.read(
            f"read round {r} commitments", partial(ledger.commitments, self.task, r)))
        # The reveal rule re-reads a round at most every REREAD_SECONDS: a read the node made for
        # itself that recently serves it too.
        self.reveal = RevealRule(partial(self.duties.recent_round_state, max_age=REREAD_SECONDS), lambda: self.members,
                                 self.log, lambda: self.referee, drew=self._drew)
        self.exchange = Exchange(host, self.inbox, config.p2p.swarm, self._trainers, self.log, max_blob,
                                 release_for=lambda kind, r, author: self.reveal.for_round(r, author)
                                 if kind == "update" else None, source_seconds=config.p2p.fetch_try)
        swarm = config.swarm
        self.pipeline = UpdatePipeline(learner.shapes, max_blob, swarm.codec, self._committed,
                                       privacy=stage_by_name(PRIVACY, swarm.privacy),
                                       compression=stage_by_name(COMPRESSION, swarm.compression,
                                                                 fraction=swarm.compression_fraction))
        self.stats_intake = BlobIntake(stats_shapes(n), max_blob, lambda ann, t: FeatureStats.from_tensors(t),
                                       max_abs=STATS_MAX_ABS)
        self.sheets: BlobIntake[dict[str, int]] | None = None  # a sampled swarm's score sheets
        self.val_reports: BlobIntake[tuple[float, int]] = BlobIntake(REPORT_SHAPES, max_blob,
                                                                     lambda ann, t: decode_report(t))
        model_intake: BlobIntake[Tensors] = BlobIntake(self._bundle_shapes, max_blob, lambda ann, t: t,
                                                       max_abs=BUNDLE_MAX_ABS)
        self.behaviour = behaviour_by_name(swarm.attack, swarm.attack_factor)
        self.recorder = Recorder(self.run_folder, learner, self.exchange, host, self.duties, self._name)
        self.consensus = ModelConsensus(self.inbox, self.exchange, self.duties, model_intake, self.pipeline,
                                        lambda: self.quorum, lambda: self.peers, self.log)

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> dict[str, Any]:
        self.run_folder.create()
        await self._load_members()
        async with self.host.run():
            self.log.info("peer %s listening on %s", self.host.peer_id, ", ".join(self.host.listen_addrs))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._listen)
                nursery.start_soon(self.exchange.reannounce_forever)
                try:
                    if self.is_referee:
                        await referee_rounds(self)
                        await self.duties.finish(self.round, 2 * self.round_duration)
                        return self._referee_summary()
                    await self.behaviour.each_round(0, self._attack_context())
                    await self._start()
                    self._first_round = self.round + 1
                    while self.round < self.config.swarm.rounds:
                        if self.inbox.latest_round("model") > self.round + 1:  # we fell behind
                            await self._catch_up()
                        await self._run_round(self.round + 1)
                    await self._settle()
                    await self.duties.finish(self.round, 2 * self.round_duration)
                finally:
                    nursery.cancel_scope.cancel()
        return self._summary()

    async def _load_members(self) -> None:
        self.members, task = await self.duties.join(self.host.peer_id)
        self.host.set_allowlist(self.members)
        self.round_duration, self.quorum = task.round_duration, task.quorum
        try:
            self.evaluation.check(task.validation_digest)
        except ValidationMismatch as exc:
            raise NodeError(str(exc)) from None
        self.referee = task.referee.lower() if task.referee else None
        if self.is_referee:
            try:
                self.validation = load_validation(self, task.validation_digest)
            except ValidationMismatch as exc:
                raise NodeError(str(exc)) from None
        if self.config.swarm.reputation_weight:
            await self._read_reputations()
        if self.referee:
            referee = next((m.name for m in self.members.values() if m.address.lower() == self.referee), self.referee)
            self.log.info("the task's referee is %s%s", referee, " (this node)" if self.is_referee else "")
        self.log.info("%d registered members; task %d: %s, quorum %d, rounds end %ds after the first commit; "
                      "updates: %s", len(self.members), self.task, task.model_id, task.quorum,
                      task.round_duration, self.pipeline.describe())
        if (conflict := privacy_conflict(task.privacy, self.learner.dp)) is not None:
            raise NodeError(f"task {self.task}: {conflict}")
        if (conflict := exchange_conflict(task.exchange, exchange_terms(self.config.swarm))) is not None:
            raise NodeError(f"task {self.task}: {conflict}")
        trainers = len(self._trainers())
        self.fanout = sampled_fanout(trainers, task.exchange.exchange_all_up_to, task.exchange.partners)
        if self.fanout is not None and self.config.swarm.groups > 1:
            raise NodeError(f"task {self.task}: a sampled swarm ({trainers} members) cannot also form groups "
                            f"(swarm.groups = {self.config.swarm.groups}): no node sees every member's update")
        if self.final.needs_reports and (self.fanout is not None or self.group_models is not None):
            self._choosing = False
            self.log.info("swarm.final_model %r: this swarm has no one swarm model to choose among (%s); the "
                          "run ends on its last round's model", self.final.name,
                          "sampled" if self.fanout is not None else "grouped")
        if self.fanout is not None and self.referee:
            raise NodeError(f"task {self.task}: a sampled swarm ({trainers} members, all-to-all up to "
                            f"{task.exchange.exchange_all_up_to}) cannot have a referee: it sees no one set of updates")
        if self.fanout is not None:
            self.sheets = sheet_intake(self._addresses(), self._sheet_from_committer)
            self.log.info("sampled exchange: %d training members (all-to-all up to %d): each merges with %d "
                          "chain-drawn partners a round", trainers, task.exchange.exchange_all_up_to, self.fanout)
        if (dp := self.learner.dp) is not None:
            mine = self.ledger.account.address
            reported = await self.duties.read("read this node's epsilon", partial(self.ledger.epsilon_of, self.task, mine))
            if dp.resume(reported):
                self.log.info("DP-SGD: %d round(s) already spent on chain (epsilon %.3f)", dp.rounds_trained, reported)
            p = dp.plan
            self.log.info("DP-SGD: budget epsilon %g at delta %.3g (%s), noise multiplier %.3f, clip %g, "
                          "sampling rate %.3f, %d steps a round", p.epsilon_budget, p.delta, p.accountant,
                          p.noise_multiplier, p.max_grad_norm, p.sample_rate, p.steps_per_round)

    async def _read_reputations(self) -> None:
        """Every member's on-chain reputation as the task began (the same for every node,
        whenever it joins), for `_merge`."""
        block = await self.duties.read("find the task's creation block", partial(self.ledger.task_created_block, self.task))
        for pid, member in self.members.items():
            rep = await self.duties.read("read a reputation", partial(self.ledger.reputation, member.address, block))
            self._reputation[pid] = rep.score
        self.log.info("merge weights scaled by reputation at block %d: %s", block, ", ".join(
            f"{m.name} {self._reputation[p] / 10000:.2f}" for p, m in sorted(self.members.items(), key=lambda kv: kv[1].name)))

    def _merge(self, start: Tensors, updates: list[Update]) -> Tensors:
        """The task's merge rule over `updates` to a round that started from `start` (the `best`
        rule judges start + update); with `swarm.reputation_weight`, each sender's sample count
        (the weight of weighted rules such as mean) is scaled by its reputation (10000 = 1)."""
        if self._reputation:
            updates = reweighted(updates, {p: score / 10000 for p, score in self._reputation.items()})
        models = self.group_models
        if models is None:
            return self.rule.at(start).merge(updates)
        if self.grouping is None:  # before the groups form: one merge, and every group's model takes it
            return models.replicate(self.rule.at(models.copy(start, 0)).merge(updates))
        merged = []
        for i in range(models.count):
            base = models.copy(start, i)
            group = self.grouping.groups[i] if i < len(self.grouping.groups) else ()
            mine = [u for u in updates if u.sender in group]
            merged.append(self.rule.at(base).merge(mine) if mine else {k: np.zeros_like(v) for k, v in base.items()})
        return models.join(merged)

    # ------------------------------------------------------------------ grouping of similar sites

    def _own(self, weights: Tensors) -> Tensors:
        """The model this node trains and tests: the swarm's, or its own group's in a grouped swarm."""
        if self.group_models is None:
            return weights
        return self.group_models.copy(weights, self._group_index())

    def _group_index(self) -> int:
        """This node's group; the first one when the grouping round had no update of its own (it
        missed round 1): it follows that group's model and its updates join no group's merge."""
        if self.grouping is None:
            return 0
        return next((i for i, g in enumerate(self.grouping.groups) if self.host.peer_id in g), 0)

    def _form_groups(self, r: int) -> None:
        """Before round GROUPING_ROUND + 1's merge: group the members by the updates merged in the
        grouping round (after any late ones were merged in), the same way on every node."""
        groups = self.config.swarm.groups
        record = self._merged
        if groups <= 1 or self.grouping is not None or r != GROUPING_ROUND + 1:
            return
        if record is None or record.round != GROUPING_ROUND or not record.updates:
            self.log.warning("round %d: no round-%d updates to group by: no groups, every group's model "
                             "stays where round %d left it", r, GROUPING_ROUND, GROUPING_ROUND)
            self.grouping = Grouping(())
        else:
            self.grouping = GROUP_COUNTS[self.config.swarm.group_count](record.updates, groups)
        self.run_folder.write_grouping(self._task_key, self.grouping.to_lists(), self._group_index())
        self.log.info("%d group(s) from round %d's updates (%s count, at most %d): %s", len(self.grouping.groups),
                      GROUPING_ROUND, self.config.swarm.group_count, groups, " | ".join(
                          ", ".join(self._name(p) for p in g) for g in self.grouping.groups))


    @property
    def peers(self) -> dict[str, Member]:
        return self.exchange.peers

    @property
    def is_referee(self) -> bool:
        return self.referee is not None and self.referee == self.ledger.account.address.lower()

    def _trainers(self) -> dict[str, Member]:
        """The members that train and exchange updates: all but the task's referee."""
        return {pid: m for pid, m in self.members.items() if m.address.lower() != self.referee}

    async def _listen(self) -> None:
        async for ann in self.host.announcements():
            if ann.swarm != self.config.p2p.swarm or ann.sender not in self.peers:
                continue
            self.inbox.add(ann)

    # ------------------------------------------------------------------ start: scaling or catch-up

    async def _start(self) -> None:
        try:
            ckpt = self.run_folder.load_checkpoint(self._bundle_shapes, self._task_key, BUNDLE_MAX_ABS)
        except StaleCheckpoint as exc:
            self.log.warning("%s; starting afresh", exc)
            ckpt = None
        if ckpt is not None:
            if (saved := self.run_folder.read_grouping(self._task_key)) is not None:
                self.grouping = Grouping.from_lists(saved[0])
            self._adopt(ckpt.round, ckpt.tensors)
            self.log.info("resumed from checkpoint at round %d", ckpt.round)
            await self.duties.reconcile_scores_log(ckpt.round)
            await self.inbox.wait_until(lambda: self.inbox.latest_round("model") > self.round,
                                        trio.current_time() + JOIN_WAIT_SECONDS)
            await self._catch_up()
            return
        await self._agree_scaling()
        if self.stats is None:
            await self._catch_up()

    def _adopt(self, round_no: int, bundle: Tensors) -> None:
        weights, stats = split_bundle(bundle)
        self.swarm_opt.load(optimizer_state(bundle))
        self.final.load(selection_state(bundle))
        self.learner.set_scaling(stats)
        self.weights, self.stats, self.round = weights, stats, round_no
        self.learner.set_weights(self._own(weights))

    async def _catch_up(self) -> None:
        """If the swarm is ahead of us, adopt its newest model that a majority attested on chain."""
        found = await self.consensus.newest_attested(self.round)
        if found is not None:
            r, model, bundle = found
            self._adopt(r, bundle)
            self._checkpoint()
            self.log.info("caught up: adopted round %d model %s (attested on chain by a majority)", r, model[:10])
        elif self.stats is None:
            raise NodeError("the swarm is past round 0 but no announced model is attested on chain by a majority")

    async def _watch_for_swarm_ahead(self) -> None:
        await self.consensus.wait_for_swarm_ahead()
        self._swarm_ahead = True
        self.inbox.poke()

    async def _agree_scaling(self) -> None:
        blob = encode_update(self.learner.local_stats().to_tensors(), "f32", max_abs=STATS_MAX_ABS)
        # Combine our own statistics as peers receive them (float32 pairs), not the exact float64
        # ones, so that every node computes bit-identical scaling (and identical model bundles).
        own = FeatureStats.from_tensors(self.stats_intake.decode(blob))
        deadline = trio.current_time() + self.config.swarm.stats_timeout
        await self.exchange.announce("stats", 0, blob, self.learner.announced_samples, "f32", until=deadline)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_for_swarm_ahead)
            collected = await self.exchange.collect(
                "stats", 0, self.stats_intake, deadline, self._alive,
                grace=STARTUP_SHARE * self.config.swarm.stats_timeout, stop=lambda: self._swarm_ahead)
            nursery.cancel_scope.cancel()
        if self._swarm_ahead:
            self.log.info("the swarm is already past round 1: catching up instead of pooling statistics")
            return
        parts = [own] + [collected[k] for k in sorted(collected)]
        self.stats = STATISTICS[self.config.swarm.statistics](parts)
        self.learner.set_scaling(self.stats)
        self.log.info("input scaling agreed from %d nodes' sums and counts (%s)", len(parts),
                      self.config.swarm.statistics)

    def _alive(self) -> set[str]:
        """Members heard from (any announcement) or connected to this node now.

        The statistics phase waits for these: for every member until all are in, otherwise for
        the live ones, and at least STARTUP_SHARE x `stats_timeout` from its start for nodes still
        coming up; a registered member whose node never started does not cost the whole
        `stats_timeout` (the never-heard rule of `_awaited`, before round 1)."""
        return self.inbox.senders() | set(self.host.peers())

    # ------------------------------------------------------------------ names

    def _name(self, peer_id: str) -> str:
        return self.exchange.name(peer_id)

    async def _committed(self, ann: Announcement) -> str | None:
        """What the announcing member committed on chain for the announced round (which also
        tells the reveal rule that it may have this round's updates)."""
        address = self.members[ann.sender].address
        on_chain = await self.commitments.digest(ann.round, address)
        if on_chain is not None:
            self.reveal.note_committed(ann.round, address)
        return on_chain

    # ------------------------------------------------------------------ the sampled swarm (node.sampled)

    def _addresses(self) -> list[str]:
        """The training members' addresses (lower case, sorted): who is drawn, and a sheet's lanes."""
        return sorted(m.address.lower() for m in self._trainers().values())

    def _peer_of(self) -> dict[str, str]:
        return {m.address.lower(): pid for pid, m in self.members.items()}

    async def _drawn(self, r: int, of: str = "", by: str = "") -> set[str]:
        """Peer ids: the partners member `of` (address) merges in round r, or the members that
        drew member `by`; empty while round r is not open."""
        draw = await self.draws.draw(r, self._addresses(), self.fanout or 0)
        if draw is None:
            return set()
        peer = self._peer_of()
        chosen = draw.partners.get(of, ()) if of else draw.receivers(by)
        return {peer[a] for a in chosen if a in peer}

    async def _drew(self, r: int, asker: str, author: str) -> bool:
        """Whether `asker` merges `author`'s round-r update (always, in an all-to-all swarm)."""
        if self.fanout is None:
            return True
        asking = self.members.get(asker)
        return asking is not None and author in await self._drawn(r, of=asking.address.lower())

    async def _sheet_from_committer(self, ann: Announcement) -> None:
        """Only a member that committed the round may report on its partners."""
        if await self.commitments.digest(ann.round, self.members[ann.sender].address) is None:
            raise Rejected(f"a round {ann.round} score sheet from a member without a round {ann.round} commitment")

    async def _sampled_vote(self, r: int, local: dict[str, int], deadline: float) -> dict[str, int]:
        """Publish this node's partners' lanes of `local` and return the vector assembled from every
        committer's sheet (peer id -> score or FLAGGED)."""
        assert self.sheets is not None
        me = self.ledger.account.address.lower()
        partners = await self._drawn(r, of=me)
        address = {pid: m.address.lower() for pid, m in self.members.items()}
        mine = {address[p]: v for p, v in local.items() if p in partners}
        until = deadline + SHEET_WAIT_SHARE * self.round_duration
        await self.exchange.announce(SCORES, r, encode_sheet(mine, self._addresses()), 0, "f32", until=until)
        # Every member still taking part is waited for, not only those that committed so far: a
        # slower one may commit after this node's collection began, and its sheet counts too.
        sheets = await self.exchange.collect(SCORES, r, self.sheets, until, self._awaited(r, quiet=True))
        committers = {a.lower() for a in (await self.duties.round_state(r)).committers}
        peer = self._peer_of()
        draw = await self.draws.draw(r, self._addresses(), self.fanout or 0)
        assert draw is not None  # this node committed: the round is open
        vector = assemble(draw, {address[p]: s for p, s in sheets.items()} | {me: mine}, committers)
        return {peer[a]: v for a, v in vector.items() if a in peer}

    # ------------------------------------------------------------------ one round

    async def _run_round(self, r: int) -> None:
        cfg = self.config.swarm
        timer = PhaseTimer()
        with timer("train"):
            delta = await self._train(r)
        await self.behaviour.each_round(r, self._attack_context())
        out = await self._own_update(r, delta)
        # Most peers announced another round r-1 model than ours: a late update or the majority's
        # model may yet change our vote on r-1, so it goes alone after the rejoin below rather
        # than with this commit (where it would make this node a deviant of r-1).
        hold = await self._model_disputed(r - 1)
        with timer("commit"):
            epsilon = self.learner.epsilon_spent  # cumulative, this round's training included
            committed = (out is not None and self.behaviour.commits
                         and await self.duties.commit(r, out.digest, epsilon, with_vote=not hold))
        deadline = await self.duties.round_deadline(r, self.round_duration)
        me = self.ledger.account.address.lower()
        sampled = self.fanout is not None
        if out is not None and (committed or not self.behaviour.commits):
            with timer("share"):
                # In a sampled swarm only the members that drew this node fetch its update.
                wanted = frozenset(await self._drawn(r, by=me)) if sampled else None
                await self.exchange.announce("update", r, out.blob, out.update.samples, self.pipeline.codec,
                                             until=deadline, wanted_by=wanted, blob_digest=out.digest)
            if not self.behaviour.serves:
                self.host.unserve(out.digest)
        with timer("collect"):
            # Peers release round-r updates only to members that committed round r (node.reveal).
            # Without a commit of its own this node could get them only once the window has
            # closed: it collects nothing now, and the next round's rejoin (missed updates, or
            # the model a majority attested) brings it back to the swarm's model.
            received = {}
            partners = await self._drawn(r, of=me) if sampled else None
            if committed:
                awaited = self._awaited(r) if partners is None else self._awaited(r) & partners
                received = await self.exchange.collect("update", r, self.pipeline, deadline, awaited,
                                                       grace=cfg.absent_wait * self.round_duration, senders=partners)
        self._last_heard.update({p: r for p in received})
        if sampled:  # a member this node did not draw is alive when it announced its update
            self._last_heard.update({p: r for p in self.inbox.get("update", r) if p in self.peers})
        updates = ([out.update] if committed else []) + [received[k] for k in sorted(received)]
        if len(updates) < self.quorum and not sampled:
            self.log.warning("round %d: %d update(s), below the task's quorum of %d: merged anyway, "
                             "but the chain credits nobody for this round", r, len(updates), self.quorum)
        with timer("merge"):
            await self._rejoin_consensus(r - 1)
            if hold:
                self.duties.flush()
            self._form_groups(r)
            start = self.weights
            self._opt_before = self.swarm_opt.state()
            # round r-1's model, what this round merges onto: its reports came a round ago
            if self._merged is not None and self._merged.round == r - 1:
                await self._choose(r - 1, start, self._merged.updates)
            merged = None
            if updates:
                merged = self._merge(start, updates)
                self.weights = self.swarm_opt.step(start, merged)
            self.learner.set_weights(self._own(self.weights))
            await self._report(r, updates, deadline)
            self._final_before = self.final.state()
            if r == cfg.rounds:  # no round r+1 pools the last round's reports: this one waits for them
                await self._choose(r, self.weights, updates,
                                   max(deadline, trio.current_time() + REPORT_WAIT_SHARE * self.round_duration))
        plain = not self._reputation and self.group_models is None and self.rule.at(start) is self.rule
        self._previous, self._merged = self._merged, MergeRecord(r, start, updates, merged if plain else None)
        with timer("score"):
            scores = await trio.to_thread.run_sync(self._vote, self._merged)
            if sampled and committed:
                scores = await self._sampled_vote(r, scores, deadline)
        self.round = r
        with timer("checkpoint"):
            bundle_blob = self._checkpoint()
            bundle_digest = digest(bundle_blob)
            # a sampled swarm has no one model to attest: each node's differs (zero attestation)
            self.duties.round_done(r, committed, scores, None if sampled else bundle_digest)
            if r == cfg.rounds:  # no next commit will carry the attestation: the settling needs it now
                self.duties.flush()
            await self.exchange.announce("model", r, bundle_blob, self.learner.announced_samples, "f32",
                                         blob_digest=bundle_digest)
        report = self.recorder.round(r, self._own(self.weights), committed, received,
                                     len(self.peers) if partners is None else len(partners), scores, timer)
        self.log.info(report.line(cfg.rounds))

    async def _report(self, r: int, updates: list[Update], deadline: float) -> None:
        """Announce this node's validation loss on its round-r merged model (node.selection), for
        the members whose updates it merged; without waiting for theirs."""
        me = self.host.peer_id
        if not self._choosing or me not in {u.sender for u in updates}:
            return
        own = await trio.to_thread.run_sync(self.learner.evaluate, self._own(self.weights), self.learner.val)
        self._reported = {r: decode_report(encode_report(own.loss, own.n))}  # as the peers decode it
        peers = frozenset(u.sender for u in updates) - {me}  # re-announced only while one of them lacks it
        await self.exchange.announce("val", r, encode_update(encode_report(own.loss, own.n), "f32"),
                                     self.learner.announced_samples, "f32", until=deadline + self.round_duration,
                                     wanted_by=peers)

    async def _choose(self, r: int, model: Tensors, updates: list[Update], until: float | None = None) -> None:
        """Offer round r's swarm model (`model`) to the final-model rule with the validation loss
        pooled from the reports of the members whose round-r updates were merged into it, each as
        it was sent (its own included), so every node that merged the same updates pools the same
        numbers. Called at round r+1's merge, when the reports have long arrived (waiting at most
        `REPORT_WAIT_SHARE` of a round for a missing one), and for the last round right after its
        merge, waiting until `until` for reports still on their way."""
        if not self._choosing or not updates:
            return
        me = self.host.peer_id
        senders = {u.sender for u in updates}
        peers = senders - {me}
        wait = REPORT_WAIT_SHARE * self.round_duration
        until = until if until is not None else trio.current_time() + wait
        # A member that announced its next report already is "ahead" to `collect`, which would then
        # stop without its (older) report: the grace keeps the fetches going until all are in.
        reports = await self.exchange.collect("val", r, self.val_reports, until, set(peers), grace=wait,
                                              senders=peers)
        if me in senders and r in self._reported:
            reports[me] = self._reported[r]
        if not reports:
            return
        loss = pooled_loss(reports)
        if self.final.observe(r, self._own(model), loss):
            self.log.info("round %d: pooled validation loss %.4f over %d member(s): the best so far, now the "
                          "final model", r, loss, len(reports))
        else:
            self.log.info("round %d: pooled validation loss %.4f over %d member(s) (best: round %d)",
                          r, loss, len(reports), self.final.chosen_round)

    def _awaited(self, r: int, quiet: bool = False) -> set[str]:
        """Peers waited for in round r: those heard from within the last `absent_after` rounds.

        A member that died, never started or commits without serving would otherwise hold every
        round until its deadline; absent ones get `absent_wait` of the round's duration instead.
        One that comes back in that time is merged, and is waited for again from then on. A
        member that has announced nothing at all since this node started (no statistics, no
        update, no model) is absent from round 1: a registered hospital whose node never came
        up must not cost the others a full deadline for `absent_after` rounds.
        """
        window = self.config.swarm.absent_after
        alive = self.inbox.senders() | set(self._last_heard)
        awaited = {p for p in self.peers
                   if p in alive and r - self._last_heard.get(p, self._first_round - 1) <= window}
        gone = sorted(set(self.peers) - awaited)
        if gone and not quiet:
            self.log.info("round %d: not waiting for %s (no update merged for %d rounds, or never heard from)",
                          r, ", ".join(map(self._name, gone)), window)
        return awaited

    async def _rejoin_consensus(self, r: int, until: float = -math.inf) -> None:
        """Make this node's round-r model the swarm's (see `node.consensus`).

        Nothing to do while every peer announces our model. Otherwise first redo the merge with
        any update committed on chain for round r that this node missed but can still fetch from
        a peer; then, if a majority of r's committers attested a different model on chain, adopt
        that one. Attestations still on their way are polled for until `until`. A sampled swarm
        has no swarm model: nothing to do.
        """
        if self.fanout is not None:
            return
        ours = self.exchange.latest_offer("model")
        if r < 1 or ours is None or ours.round != r:
            return
        if self._peers_agree(r, ours.digest):
            return
        if await self._merge_missed(r):
            ours = self.exchange.latest_offer("model")
            if self._peers_agree(r, ours.digest):
                return
        while (choice := await self.consensus.attested(r, ours.digest)) is None and trio.current_time() < until:
            await trio.sleep(ATTESTATION_POLL_SECONDS)
        if choice is None:
            self.log.warning("round %d: merged models differ and none is attested by a majority; keeping ours", r)
        elif choice != ours.digest.lower() and (bundle := await self.consensus.fetch(r, choice)) is not None:
            self._adopt(r, bundle)
            self._checkpoint()
            self.log.warning("round %d: a majority attested model %s, not ours: continuing from theirs", r, choice[:10])
            if self.duties.reattest(r, choice):  # our vote, not sent yet, vouches for the model we now hold
                self.log.info("round %d: vote attests the adopted model", r)

    async def _model_disputed(self, r: int) -> bool:
        """More peers announced one other round-r model than hold ours (this node included): ours
        is likely the odd one out, to be re-merged or replaced by the majority's. Waits a little
        (`absent_wait` of the round) for the models of the peers whose round-r updates it merged.
        Never in a sampled swarm: every node's model is its own."""
        ours = self.exchange.latest_offer("model")
        if self.fanout is not None or r < 1 or ours is None or ours.round != r or self._merged is None:
            return False
        merged_from = {u.sender for u in self._merged.updates} - {self.host.peer_id}
        await self.inbox.wait_until(lambda: merged_from <= set(self.inbox.get("model", r)),
                                    trio.current_time() + self.config.swarm.absent_wait * self.round_duration)
        counts = Counter(a.digest.lower() for a in self.inbox.get("model", r).values())
        agree = 1 + counts.pop(ours.digest.lower(), 0)
        return max(counts.values(), default=0) > agree

    def _peers_agree(self, r: int, ours: str) -> bool:
        """Every peer heard from announced `ours` as its round-r model."""
        return {a.digest for a in self.inbox.get("model", r).values()} <= {ours}

    async def _merge_missed(self, r: int) -> bool:
        """Redo round r's merge with committed updates that reached peers but not this node."""
        record = self._merged
        if record is None or record.round != r or not (late := await self.consensus.missed_updates(record)):
            return False
        self._merged = MergeRecord(r, record.start, record.updates + late)
        self.swarm_opt.load(self._opt_before)
        self.weights = self.swarm_opt.step(record.start, self._merge(record.start, self._merged.updates))
        self.learner.set_weights(self._own(self.weights))
        if r == self.config.swarm.rounds:  # the last round's choice came from this merge: redo it
            self.final.load(self._final_before)
            await self._choose(r, self.weights, self._merged.updates)
        blob = self._checkpoint()
        # The vote follows the merge: if it has not gone out yet, it covers the late updates too.
        scores = await trio.to_thread.run_sync(self._vote, self._merged)
        if self.duties.revise(r, scores, digest(blob)):
            self.log.info("round %d: vote recomputed with the late update(s)", r)
        await self.exchange.announce("model", r, blob, self.learner.announced_samples, "f32")
        self.log.warning("round %d: merged again with %s's committed update(s), which arrived late", r,
                         ", ".join(self._name(u.sender) for u in late))
        return True

    async def _settle(self) -> None:
        """After the last round, wait for the peers' final models and join the swarm's choice.

        Without this, a node whose last merge differed from the others' (a fetch that failed on
        it alone) would end on its own model, since no next round corrects it. It waits for every
        peer that committed the last round, at most until SETTLE_SECONDS after the round's chain
        deadline (a peer still collecting finishes by then). While some peer announced a final
        model other than ours, it keeps serving ours a little longer: that peer may need it.
        """
        if self.fanout is not None:  # no swarm model to join (node.sampled)
            return
        r = self.round
        state = await self.duties.round_state(r)
        committers = {a.lower() for a in state.committers}
        expected = {pid for pid, m in self.peers.items() if m.address.lower() in committers}
        until = on_trio_clock(state.deadline) + SETTLE_SECONDS
        await self.inbox.wait_until(lambda: expected <= set(self.inbox.get("model", r)), until)
        await self._rejoin_consensus(r, until)
        ours = self.exchange.latest_offer("model")
        if ours is not None and not self._peers_agree(r, ours.digest):
            await trio.sleep_until(min(until, trio.current_time() + SETTLE_SECONDS))

    async def _train(self, r: int) -> Tensors | None:
        """This round's local update; None once training would exceed the node's DP budget."""
        try:
            return await trio.to_thread.run_sync(self.learner.train_update, r)
        except BudgetExhausted as exc:
            self.log.warning("round %d: privacy budget reached (%s; spent %.3f): no more training, this node "
                             "now only follows the swarm's model", r, exc, self.learner.epsilon_spent)
            return None

    async def _own_update(self, r: int, delta: Tensors | None) -> Outgoing | None:
        """This round's bytes and the update as peers will decode them; None when the update
        cannot be sent (training diverged to values the codec refuses, or the DP budget is
        spent): the node sits it out."""
        if delta is None:
            return None
        samples = self.learner.announced_samples
        try:
            blob = await self.behaviour.update_blob(r, delta, self._attack_context())
        except CodecError as exc:
            self.log.error("round %d: own update not sendable (%s); sitting this round out", r, exc)
            return None
        try:
            update = self.pipeline.own_update(blob, samples, self.host.peer_id)
        except Rejected:  # only a hostile behaviour sends what it cannot decode itself
            update = Update(delta, samples, self.host.peer_id)
        return Outgoing(blob, digest(blob), update)

    def _attack_context(self) -> Context:
        swarm = self.config.swarm
        return Context(self.inbox, self.host, self.exchange, self.pipeline.prepare, self._bundle_shapes,
                       swarm.rounds, swarm.seed, self.round_duration, self.log,
                       previous=lambda: self._merged.updates if self._merged else (), partners=swarm.attack_partners)

    def score_basis(self, record: MergeRecord) -> tuple[list[Update], Tensors | None]:
        """What round `record.round`'s updates are scored against: round r-1's updates less the
        ones that round flagged, and their merge by the task's rule (none in round 1)."""
        prev = self._previous
        # Round r-1's flagged updates (near-copies, free riders) are no basis: a stale copy
        # would add an old direction that honest round-r work is then judged against.
        struck = self._flagged.get(record.round - 1, set())
        previous = ([u for u in prev.updates if u.sender not in struck]
                    if prev is not None and prev.round == record.round - 1 else [])
        previous_merged = None
        if previous:  # the rule's merge of r-1's updates, unless that round's merge differed
            same = prev.merged is not None and len(previous) == len(prev.updates)
            previous_merged = prev.merged if same else self.score_rule.merge(previous)
        return previous, previous_merged

    def starts_of(self, record: MergeRecord) -> list[Tensors]:
        """The models round `record.round` trained from: the swarm's, or every group's."""
        models = self.group_models
        if models is None:
            return [record.start]
        return [models.copy(record.start, i) for i in range(models.count)]

    def _vote(self, record: MergeRecord) -> dict[str, int]:
        """The round's score vector this node votes for (peer id -> score or FLAGGED, own included).

        Computed by the task's contribution rule from exactly the updates merged in `record`
        and in the round before (and that round's merged update), so every honest node that
        merged the same sets votes the same integers. A committer whose update this node did
        not get is left out (its lane stays 0). The behaviour may rewrite the vote (attacks).
        """
        vector: dict[str, int] = {}
        if record.updates:
            try:
                report = self.contribution(record.updates, *self.score_basis(record), starts=self.starts_of(record))
            except ValueError as exc:
                self.log.warning("round %d: no score vector (%s)", record.round, exc)
            else:
                vector = {s: (FLAGGED if s in report.flags else v) for s, v in report.scores.items()}
                self._flagged = {r: f for r, f in self._flagged.items() if r >= record.round - 1}
                self._flagged[record.round] = set(report.flags)
                for sender, reason in sorted(report.flags.items()):
                    self.log.info("round %d: %s flagged (%s)", record.round, self._name(sender), reason)
        return self.behaviour.vote(vector, self._attack_context())

    # ------------------------------------------------------------------ records

    def _checkpoint(self) -> bytes:
        assert self.stats is not None
        bundle = Checkpoint(self.round, model_bundle(self.weights, self.stats, self.swarm_opt.state(),
                                                     self.final.state()), max_abs=BUNDLE_MAX_ABS)
        return self.run_folder.save_checkpoint(bundle, self._task_key)

    def _referee_summary(self) -> dict[str, Any]:
        summary = {"name": self.config.name, "role": "referee", "peer_id": self.host.peer_id,
                   "address": self.ledger.account.address, "rounds": self.round,
                   "chain": dataclasses.asdict(self.duties.status())}
        self.run_folder.write_summary(summary)
        self.log.info("done: refereed %d rounds", self.round)
        return summary

    def _summary(self) -> dict[str, Any]:
        grouped = {}
        if self.grouping is not None and self.grouping.groups:
            grouped = {"group": sorted(self._name(p) for p in self.grouping.groups[self._group_index()])}
        final = self.final.final(self._own(self.weights))
        summary = self.recorder.summary(final, self.round, self.config.training.epochs * self.config.swarm.rounds,
                                        name=self.config.name, peer_id=self.host.peer_id,
                                        address=self.ledger.account.address, final_model=self.final.name,
                                        final_round=self.final.chosen_round or self.round, **grouped)
        self.log.info("done: %d rounds, final model of round %d (%s), swarm test accuracy %.3f (local only %.3f), "
                      "model %s", self.round, summary["final_round"], self.final.name, summary["test_accuracy"],
                      summary["local_only_accuracy"], summary["model_digest"][:12])
        return summary
