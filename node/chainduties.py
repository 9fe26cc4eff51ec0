"""This node's duties to the ledger for one task: commit, vote, finalize, and the final flush.

How a round reaches the chain, in one place (ledger protocol v3, docs/ledger.md):
- round r's commit (the digest of this node's update) must be mined before the update is
  shared, so the engine awaits `commit`;
- this node's vote on round r, the whole round's score vector (every committer whose update it
  merged, itself included; FLAGGED for near-copies and free riders), and the digest of the merged
  model it holds after round r (its attestation, which catch-up and consensus read back), wait
  here (`round_done`) and ride on the round r + 1 commit, one transaction per round
  (`commitAndVote`); if that part is refused, the commit still goes through alone;
- the round's last winning vote finalizes it on chain; otherwise (a split, a silent committer)
  this node queues a finalize that goes through once the voting window has passed;
- after the last round there is no next commit, so `flush` sends the pending vote alone, and
  `finish` waits (bounded) until every round this node took part in is finalized.
Every write runs on the `ChainWriter` thread, in order, with retries for transport faults, so
training and networking never block on the chain unless they choose to. Scores the chain
accepted are logged in the run folder (the vector by member name, FLAGGED as -1); the launcher's
audit checks the chain's votes against that log.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import trio

from incentive.ledger import FLAGGED, Ledger, LedgerError, Member, RoundState, TaskInfo

from .chainwriter import ChainOutage, ChainStatus, ChainWriter
from .rundir import RunFolder

__all__ = ["FLAGGED", "ChainDuties", "NotTakingPart", "PendingScores", "is_referee", "on_trio_clock", "wait_future"]

T = TypeVar("T")
FINALIZE_POLL_SECONDS = 1.0
REOPEN_POLL_SECONDS = 1.0
RECENT_ROUNDS = 3  # how many rounds back the newest state reads are kept (`recent_round_state`)


def on_trio_clock(unix_time: float) -> float:
    """A wall-clock (chain) time as a trio deadline."""
    return trio.current_time() + max(0.0, unix_time - time.time())


def is_referee(task: TaskInfo, address: str) -> bool:
    """`address` is the task's referee: the sponsor's scorer, which votes and never trains."""
    return task.referee is not None and task.referee.lower() == address.lower()


class NotTakingPart(RuntimeError):
    """This node's account is not a registered member, or the task is closed."""


async def wait_future(future: "Future[T]") -> T:
    """Await a chain-writer Future from trio without blocking the event loop."""
    return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)


@dataclass(frozen=True)
class PendingScores:
    """What this node votes for one round, not yet on chain: the round's score vector (peer id ->
    0..10000 or FLAGGED, this node included) and the digest of the merged model it holds after it."""

    round: int
    scores: dict[str, int]
    model: str | None


class ChainDuties:
    """Reads the task's rounds and carries out this node's writes to the ledger."""

    def __init__(self, ledger: Ledger, writer: ChainWriter, task: int, members: Callable[[], dict[str, Member]],
                 run: RunFolder, log: logging.LoggerAdapter) -> None:
        self.ledger = ledger
        self.task = task
        self._writer = writer
        self._members = members
        self._run = run
        self._log = log
        self._pending: PendingScores | None = None
        self._unfinalized: set[int] = set()  # past rounds not seen finalized yet (writer thread only)
        self._round_duration = 0  # the task's, known once `join` has read it
        self._deadlines: dict[int, int] = {}  # rounds' chain deadlines: fixed once the first commit is in
        self._recent: dict[int, tuple[float, RoundState]] = {}  # the newest state read of each round

    # ------------------------------------------------------------------ reads

    async def join(self, peer_id: str) -> tuple[dict[str, Member], TaskInfo]:
        """The active members by peer id and the task, once checked that this node may take part."""
        members = await self.read("read the members", self.ledger.members)
        active = {m.peer_id: m for m in members if m.active}
        account = self.ledger.account.address
        me = active.get(peer_id)
        if me is None or me.address.lower() != account.lower():
            raise NotTakingPart(f"this node (peer {peer_id}, account {account}) is not a registered "
                                f"member of the ledger at {self.ledger.address}")
        task = await self.read("read the task", partial(self.ledger.task, self.task))
        if task.closed:
            raise NotTakingPart(f"task {self.task} on the ledger at {self.ledger.address} is closed")
        self._round_duration = task.round_duration
        if task.stake and not is_referee(task, account):
            await self._bond(task.stake)
        return active, task

    async def _bond(self, stake: int) -> None:
        """Bond the task's stake unless this member did already (a restart); commits need it."""
        me = self.ledger.account.address
        if await self.read("read the bond", partial(self.ledger.bonded, self.task, me)):
            return
        try:
            await wait_future(self._writer.submit("bond", partial(self.ledger.bond, self.task)))
        except LedgerError as exc:
            raise NotTakingPart(f"could not bond the task's stake of {stake} wei: {exc}") from None
        self._log.info("bonded the task's stake of %s ETH", f"{stake / 10**18:g}")

    async def read(self, what: str, call: Callable[[], T]) -> T:
        """A chain read off the event loop, retried through outages as patiently as writes are."""
        return await trio.to_thread.run_sync(self._writer.patience.call, what, call, self._log,
                                             abandon_on_cancel=True)

    async def round_state(self, r: int) -> RoundState:
        asked = trio.current_time()
        state = await self.read(f"read round {r}", partial(self.ledger.round_state, self.task, r))
        if state.deadline:
            self._deadlines[r] = state.deadline
        if asked >= self._recent.get(r, (-math.inf, None))[0]:
            self._recent[r] = (asked, state)
            for old in [k for k in self._recent if k < r - RECENT_ROUNDS]:
                del self._recent[old]
        return state

    async def recent_round_state(self, r: int, max_age: float) -> RoundState:
        """Round r's state as read (by any caller) at most `max_age` seconds ago, else read now:
        for a reader that accepts that much delay (node.reveal), the node's other reads are
        enough while the round runs."""
        at, state = self._recent.get(r, (-math.inf, None))
        if state is not None and trio.current_time() - at <= max_age:
            return state
        return await self.round_state(r)

    async def attestations(self, r: int, digests: set[str]) -> dict[str, int]:
        """How many of round r's committers attested each of `digests` as their merged model."""
        return {d: await self.read(f"read round {r} attestations",
                                   partial(self.ledger.model_attestations, self.task, r, d))
                for d in sorted(digests)}

    async def reconcile_scores_log(self, last_round: int) -> None:
        """After a restart: log the votes the chain holds from this node that its log lacks.

        A node killed between its vote being mined and the log line being written would
        otherwise leave a log the audit cannot match with the chain.
        """
        logged = {row["round"] for row in self._run.read_scores()}
        me = self.ledger.account.address.lower()
        names = {m.address.lower(): m.name for m in self._members().values()}
        for r in range(1, last_round + 1):
            if r in logged:
                continue
            votes = await self.read(f"read round {r} votes", partial(self.ledger.votes, self.task, r))
            mine = next((v for v in votes if v.voter.lower() == me), None)
            if mine is None:
                continue
            self._run.append_scores(r, {names.get(a.lower(), a): v for a, v in mine.scores.items()})
            self._log.info("round %d: vote found on chain but not in the log (a restart): logged now", r)

    async def round_deadline(self, r: int, duration: float) -> float:
        """Round r's end on trio's clock: the chain's deadline (first commit + round duration).

        Every node reads the same deadline from the chain, so they stop waiting for stragglers at
        the same moment and, having heard the same committed updates, merge the same set; a
        commit after the deadline is refused by the contract, so the set cannot grow later.
        """
        if r not in self._deadlines:  # never moves once set: read until the round has opened
            await self.round_state(r)
        return on_trio_clock(self._deadlines.get(r) or time.time() + duration)

    async def commitment(self, r: int, address: str) -> str | None:
        """The digest `address` committed for round r, or None."""
        return await self.read(f"read a round {r} commitment", partial(self.ledger.commitment, self.task, r, address))

    def status(self) -> ChainStatus:
        return self._writer.status()

    # ------------------------------------------------------------------ writes

    async def commit(self, r: int, update_digest: str, epsilon: float = 0.0, *, with_vote: bool = True) -> bool:
        """Put round r's digest on chain (with the vote on the previous round unless `with_vote`
        is False, and this node's cumulative DP epsilon, 0 without DP); False if refused. A vote
        held back waits for `flush` (after `revise` or `reattest`).

        Raises ChainOutage when the chain stayed away longer than the node's patience.
        """
        pending, self._pending = (self._pending, None) if with_vote else (None, self._pending)
        reopen_until: float | None = None
        while True:
            future = self._writer.submit(f"commit r{r}", partial(self._send_commit, r, update_digest, pending, epsilon))
            try:
                await wait_future(future)
                return True
            except LedgerError as exc:
                if exc.error == "RoundNotOpen":
                    reopen_until = reopen_until or await self._below_quorum_until(r - 1)
                    if reopen_until and time.time() < reopen_until:
                        pending = None  # sent alone before the commit was refused
                        await trio.sleep(REOPEN_POLL_SECONDS)
                        continue
                self._log.warning("round %d: commit refused on chain (%s); update not shared", r, exc.error)
                return False

    async def _below_quorum_until(self, r: int) -> float:
        """Round r + 1 is not open because round r missed its quorum: the contract opens it once
        round r's deadline has passed on chain (that round earns nothing). Until when (wall clock)
        to keep trying: the deadline plus a round, since a dev chain's clock strays from the wall
        clock (eth-tester's runs ahead; an idle chain's latest block lags). 0 if round r never began."""
        state = await self.round_state(r) if r >= 1 else None
        if state is None or not state.deadline:
            return 0.0
        self._log.warning("round %d has %d committer(s), below the quorum: round %d opens when it ends",
                          r, len(state.committers), r + 1)
        return state.deadline + (state.deadline - state.start)

    def round_done(self, r: int, committed: bool, scores: dict[str, int], model: str | None) -> None:
        """Round r is merged into `model`: the vote (vector and attestation) waits for the next
        commit (the chain takes votes only from the round's committers); round r - 1 may now be
        finalized, if its last vote did not already do it."""
        self._pending = PendingScores(r, dict(scores), model) if committed else None
        if r > 1:
            self._writer.submit(f"finalize r{r - 1}", partial(self._finalize_past, r - 1))

    def revise(self, r: int, scores: dict[str, int], model: str) -> bool:
        """Replace the vote on round r if it has not been sent yet (a late update re-merged);
        True when the new vote will be the one sent."""
        if self._pending is None or self._pending.round != r:
            return False
        self._pending = PendingScores(r, dict(scores), model)
        return True

    def reattest(self, r: int, model: str) -> bool:
        """Attest `model` (the swarm's, just adopted) in the vote on round r if it has not been
        sent yet; the score vector stays. True when the new attestation will be the one sent."""
        if self._pending is None or self._pending.round != r:
            return False
        self._pending = PendingScores(r, self._pending.scores, model)
        return True

    def referee_vote(self, r: int, scores: dict[str, int], model: str | None) -> "Future[None]":
        """The referee's vote on round r and its attestation of `model`, sent now (it commits
        nothing for a vote to ride on)."""
        return self._writer.submit(f"referee vote r{r}", partial(self._send_scores, PendingScores(r, dict(scores), model)))

    def flush(self) -> "Future[None] | None":
        """Send the pending vote and attestation now, when no commit follows to carry them."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        return self._writer.submit(f"vote r{pending.round}", partial(self._send_scores, pending))

    async def finish(self, last_round: int, wait_seconds: float) -> None:
        """Flush, then wait up to `wait_seconds` until rounds 1..last_round are finalized; stops
        the writer."""
        self.flush()
        deadline = trio.current_time() + wait_seconds
        rounds = list(range(1, last_round + 1))
        while rounds and trio.current_time() < deadline:
            rounds = [r for r in rounds if not await self._finalized(r)]
            if rounds:
                await trio.sleep(FINALIZE_POLL_SECONDS)
        if rounds:
            self._log.warning("rounds %s not finalized yet; anyone may finalize them later", rounds)
        await trio.to_thread.run_sync(self._writer.stop)

    async def _finalized(self, r: int) -> bool:
        try:
            return await wait_future(self._writer.submit(f"finalize r{r}", partial(self._finalize_if_ready, r)))
        except (LedgerError, ChainOutage) as exc:
            self._log.warning("finalize r%d: %s", r, exc)
            return False

    # ------------------------------------------------------------------ on the writer thread

    def _send_commit(self, r: int, update_digest: str, pending: PendingScores | None, epsilon: float = 0.0) -> None:
        """One transaction per round: the round r commit and the vote on round r - 1."""
        if pending is not None:
            members, values = self._score_args(pending.scores)
            try:
                self._idempotent(r, update_digest, partial(self.ledger.commit_and_vote, self.task, r,
                                                           update_digest, pending.round, members, values,
                                                           model=pending.model, epsilon=epsilon))
            except LedgerError as exc:
                # Either half may have been refused: the vote still goes alone, then the commit.
                self._log.warning("commit r%d with the vote on r%d refused (%s); sending them apart",
                                  r, pending.round, exc)
                self._send_scores_if_accepted(pending)
            else:
                self._record(pending)
                return
        self._idempotent(r, update_digest, partial(self.ledger.commit, self.task, r, update_digest, epsilon=epsilon))

    def _idempotent(self, r: int, update_digest: str, send: Callable[[], object]) -> None:
        """Send a commit; if it reverts as already committed *with this digest*, it was ours.

        A transaction whose receipt was lost to an outage is sent again on retry; the first
        copy may have been mined, and the second then reverts though the commit stands (the
        commitment is read back from the chain's events).
        """
        try:
            send()
        except LedgerError as exc:
            mine = self.ledger.account.address
            if exc.error != "AlreadyCommitted" or self.ledger.commitment(self.task, r, mine) != update_digest:
                raise

    def _send_scores_if_accepted(self, pending: PendingScores) -> None:
        try:
            self._send_scores(pending)
        except LedgerError as exc:
            self._log.warning("vote on round %d refused (%s)", pending.round, exc)

    def _send_scores(self, pending: PendingScores) -> None:
        members, values = self._score_args(pending.scores)
        for attempt in (1, 2):
            try:
                self.ledger.vote(self.task, pending.round, members, values, model=pending.model)
            except LedgerError as exc:
                if exc.error == "UnknownRevert" and attempt == 1:
                    # Mined out of gas: estimated before another vote landed, it became the round's
                    # last vote, which also finalizes the round and costs more. Estimate again.
                    self._log.info("vote on round %d reverted (%s); sending it again", pending.round, exc)
                    continue
                if exc.error != "AlreadyVoted" or not self._voted(pending):  # a retried vote that was mined
                    raise
            break
        self._record(pending)

    def _voted(self, pending: PendingScores) -> bool:
        """The chain already holds this node's vote on `pending.round`, with the same vector."""
        me = self.ledger.account.address.lower()
        members = self._members()
        want = {members[p].address.lower(): v for p, v in pending.scores.items() if p in members}
        return any(v.voter.lower() == me and {a.lower(): s for a, s in v.scores.items() if s} ==
                   {a: s for a, s in want.items() if s}
                   for v in self.ledger.votes(self.task, pending.round))

    def _record(self, pending: PendingScores) -> None:
        members = self._members()
        self._run.append_scores(pending.round, {members[p].name: v for p, v in pending.scores.items()})

    def _score_args(self, scores: dict[str, int]) -> tuple[list[str], list[int]]:
        members = self._members()
        ordered = sorted(scores)
        return [members[p].address for p in ordered], [scores[p] for p in ordered]

    def _finalize_past(self, r: int) -> None:
        """Finalize round r and any earlier round still open (a split waits for its window; round
        r + 8 cannot open before round r is finalized, RoundsPending)."""
        self._unfinalized.add(r)
        for past in sorted(self._unfinalized):
            try:
                done = self._finalize_if_ready(past)
            except LedgerError as exc:
                self._log.warning("finalize r%d: %s", past, exc)
                done = False
            if done:
                self._unfinalized.discard(past)

    def _finalize_if_ready(self, r: int) -> bool:
        """Round r is finalized, or finalize it once the voting window has passed; True when done.

        In an agreeing swarm the round's last vote has finalized it already. Otherwise (a split,
        a committer that never voted) anyone may finalize after deadline + one round's time.
        """
        state = self.ledger.round_state(self.task, r)
        if state.finalized or not state.committers:
            return True
        # The contract's voting window: one more round's time after the deadline. Wall-clock
        # time, since a dev chain that mines on demand has no newer block to read it from.
        if not set(state.committers) <= set(state.scored) and time.time() < state.deadline + self._round_duration:
            return False
        try:
            self.ledger.finalize(self.task, r)
        except LedgerError as exc:
            if exc.error == "FinalizeTooEarly":  # every committer voted, but no winner yet (the referee)
                return False
            if exc.error != "AlreadyFinalized":  # the last vote, or another node, got there first
                raise
        return True
