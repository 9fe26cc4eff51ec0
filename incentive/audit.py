"""Audit a MedSwarmLedger (protocol v3) from an RPC URL and its address alone.

The history (members, tasks, fundings, bonds, per-round commits and votes, finalized rounds,
slashes, closes, reputations, revenue, withdrawals, dust claims, refunds, reclaimed stake) is
rebuilt from the contract's events only, queried in bounded block windows. The audit then
recomputes every round's winning vector (referee, else strict majority of the committers, else
a split; and whether the committers' own votes split where the referee's decided), the credits, deviants and flagged members, every slash, the cumulative entitlements
and the dust of every instalment, and every reputation; and cross-checks all of it against the
contract's state: contributions, totals, pools, revenue, stakes, offences, withdrawn amounts,
dust, round masks, vote counts, reputations and the contract's ETH balance. Optional
expectations (e.g. what the nodes logged themselves) are checked too. Every disagreement
becomes a `Mismatch`; nothing is silently reconciled.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from eth_utils import event_abi_to_log_topic, is_address, to_checksum_address
from web3 import Web3

from incentive.artifacts import ledger_artifact
from incentive.ledger import SLASH_REASONS, Vote, decide, outcome_from_event, vote_from_event
from incentive.logs import DEFAULT_WINDOW, deploy_block, get_logs

logger = logging.getLogger(__name__)

REPUTATION_AVERAGE = 10_000
REPUTATION_CAP = 20_000


def next_reputation(score: int, contribution: int, participants: int, total: int, slashed: bool) -> int:
    """The contract's reputation rule: score' = (3 * score + r) / 4, r = 0 when slashed in the task,
    else min(20000, c * participants * 10000 / total); a task nobody earned in changes nothing."""
    if slashed:
        return 3 * score // 4
    if total == 0:
        return score
    relative = min(REPUTATION_CAP, contribution * participants * REPUTATION_AVERAGE // total)
    return (3 * score + relative) // 4


class LedgerNotFound(Exception):
    """No contract at the address given: a wrong address, or the right one on another chain."""


@dataclass(frozen=True)
class Mismatch:
    """One disagreement between two sources (events, recomputation, state, expectations)."""

    what: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.what}: expected {self.expected}, got {self.actual}"


@dataclass
class RoundHistory:
    task_id: int
    round: int
    commits: dict[str, str] = field(default_factory=dict)  # member -> digest
    epsilons: dict[str, int] = field(default_factory=dict)  # member -> cumulative milli-epsilon it committed
    votes: list[Vote] = field(default_factory=list)
    attestations: dict[str, int] = field(default_factory=dict)  # merged-model digest -> committers attesting it
    finalized: bool = False
    status: str = "open"  # credited | below_quorum | split (from the RoundFinalized event)
    winner: str | None = None  # winning vote hash, recomputed
    decided_by: str | None = None  # "referee" (its vote won) or "majority" (a strict majority of the committers)
    members_split: bool = False  # no vector had a strict majority of the committers' own votes
    credits: dict[str, int] = field(default_factory=dict)  # from the RoundFinalized event
    recomputed: dict[str, int] = field(default_factory=dict)
    deviants: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    slashes: list[tuple[str, int, str]] = field(default_factory=list)  # (member, wei, reason) from events


@dataclass
class TaskHistory:
    task_id: int
    quorum: int
    round_duration: int
    model_id: str
    stake: int = 0
    slash: int = 0
    referee: str | None = None
    validation_digest: str | None = None
    privacy: dict[str, int] | None = None  # the PrivacyTermsSet event's terms (None: no DP budget)
    exchange: tuple[int, ...] = ()  # the ExchangeTermsSet event's terms
    epsilons: dict[str, int] = field(default_factory=dict)  # member -> latest cumulative milli-epsilon
    fundings: list[tuple[str, int]] = field(default_factory=list)
    pool: int = 0  # funding plus slashed stake
    revenue: int = 0
    slashed: int = 0
    closed: bool = False
    contributions: dict[str, int] = field(default_factory=dict)  # recomputed
    bonded: list[str] = field(default_factory=list)
    bonds: dict[str, int] = field(default_factory=dict)  # bonded member -> wei left of its bond
    offences: dict[str, int] = field(default_factory=dict)
    reclaimed: dict[str, int] = field(default_factory=dict)
    settled: dict[str, int] = field(default_factory=dict)  # entitlement settled at the last dust claim
    settled_received: int = 0
    withdrawals: dict[str, int] = field(default_factory=dict)  # cumulative wei per member
    refunds: dict[str, int] = field(default_factory=dict)
    dust_claimed: int = 0

    @property
    def received(self) -> int:
        return self.pool + self.revenue

    @property
    def total(self) -> int:
        return sum(self.contributions.values())

    def entitlement(self, member: str) -> int:
        """floor(received * c / total), settled at the last dust claim (the contract's formula)."""
        fresh = self.received - self.settled_received
        return self.settled.get(member, 0) + fresh * self.contributions.get(member, 0) // self.total

    def dust(self) -> int:
        """Unclaimed dust now (0 before close)."""
        if not self.closed:
            return 0
        if self.total == 0:
            return self.slashed - self.dust_claimed
        fresh = self.received - self.settled_received
        return fresh - sum(fresh * c // self.total for c in self.contributions.values())


@dataclass
class AuditReport:
    """What the audit rebuilt and every mismatch it found."""

    address: str
    chain_id: int
    blocks: tuple[int, int]
    members: list[dict[str, Any]]
    tasks: dict[int, TaskHistory]
    rounds: dict[tuple[int, int], RoundHistory]
    reputations: dict[str, dict[str, int]]
    balance: int
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        rounds = []
        for r in self.rounds.values():
            row = asdict(r)
            row["votes"] = [{"voter": v.voter, "model": v.model, "vote_hash": v.vote_hash, "scores": v.scores}
                            for v in r.votes]
            rounds.append(row)
        return {
            "address": self.address,
            "chain_id": self.chain_id,
            "blocks": list(self.blocks),
            "members": self.members,
            "tasks": {str(k): {**asdict(v), "received": v.received, "dust": v.dust()} for k, v in self.tasks.items()},
            "rounds": rounds,
            "reputations": self.reputations,
            "balance": self.balance,
            "ok": self.ok,
            "mismatches": [{"what": m.what, "expected": m.expected, "actual": m.actual} for m in self.mismatches],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str)

    def format_table(self) -> str:
        names = {m["address"]: m["name"] or m["address"][:10] for m in self.members}
        slot = {m["address"]: m["index"] for m in self.members}
        lines = [f"ledger {self.address} on chain {self.chain_id}, blocks {self.blocks[0]}..{self.blocks[1]}"]
        head = (f"{'task':>4} {'round':>5}  {'member':<14} {'digest':<12} {'status':<12} {'voted':<7} {'credit':>6} "
                f"{'epsilon':>8}  note")
        lines += ["", head, "-" * len(head)]
        for (t, r), rh in sorted(self.rounds.items()):
            voted = {v.voter: v.vote_hash for v in rh.votes}
            slashed = {m: (wei, reason) for m, wei, reason in rh.slashes}
            for member, digest in rh.commits.items():
                credit = rh.credits.get(member, 0) if rh.finalized else "-"
                if member not in voted:
                    mark = "-"
                elif rh.winner is None:  # split or below quorum: no vector won
                    mark = "voted"
                else:
                    mark = "winner" if voted[member] == rh.winner else "other"
                notes = ["members split, the referee decided"] if rh.members_split and rh.decided_by == "referee" else []
                if member in slashed:
                    notes.append(f"slashed {slashed[member][1]} ({slashed[member][0]} wei)")
                note = "; ".join(notes)
                eps = rh.epsilons.get(member, 0)
                epsilon = f"{eps / 1000:.3f}" if eps else "-"
                lines.append(f"{t:>4} {r:>5}  {names.get(member, member[:10]):<14} {digest[:10]:<12} "
                             f"{rh.status:<12} {mark:<7} {credit:>6} {epsilon:>8}  {note}".rstrip())
        for t, th in sorted(self.tasks.items()):
            state = "closed" if th.closed else "open"
            lines += ["", f"task {t} ({th.model_id}, {state}): received {th.received} wei (pool {th.pool}, revenue "
                          f"{th.revenue}, slashed {th.slashed}), total contribution {th.total}, "
                          f"dust claimed {th.dust_claimed}, unclaimed {th.dust()}"]
            if th.privacy:
                pv = th.privacy
                lines.append(f"privacy budget epsilon {pv['epsilonMilli'] / 1000:g} per member, delta "
                             f"{pv['deltaE18'] / 1e18:g} (0: 1/n), noise {pv['noiseMilli'] / 1000:g} (0: calibrated), "
                             f"clip {pv['clipMilli'] / 1000:g}, accountant {('rdp', 'prv')[pv['accountant']]}")
            head = (f"{'member':<14} {'contribution':>12} {'entitled (wei)':>24} {'withdrawn (wei)':>24} "
                    f"{'bond left':>12} {'offences':>8} {'epsilon':>8}")
            lines += [head, "-" * len(head)]
            for member in sorted(set(th.contributions) | set(th.bonds) | set(th.offences) | set(th.epsilons),
                                 key=slot.__getitem__):
                entitled = th.entitlement(member) if th.closed and th.total else 0
                lines.append(f"{names.get(member, member[:10]):<14} {th.contributions.get(member, 0):>12} "
                             f"{entitled:>24} {th.withdrawals.get(member, 0):>24} {th.bonds.get(member, 0):>12} "
                             f"{th.offences.get(member, 0):>8} {th.epsilons.get(member, 0) / 1000:>8.3f}")
        if self.reputations:
            lines += ["", f"{'member':<14} {'reputation':>10} {'tasks':>6} {'offences':>8}"]
            for member, rep in self.reputations.items():
                lines.append(f"{names.get(member, member[:10]):<14} {rep['score']:>10} {rep['tasks']:>6} "
                             f"{rep['offences']:>8}")
        lines.append("")
        lines.append("audit OK: events, recomputation and contract state agree" if self.ok
                     else f"audit FAILED: {len(self.mismatches)} mismatch(es)")
        lines += [f"  MISMATCH {m}" for m in self.mismatches]
        return "\n".join(lines)


def fetch_events(w3: Web3, address: str, from_block: int, to_block: int, window: int = DEFAULT_WINDOW) -> list[Any]:
    """All ledger events in [from_block, to_block], decoded, in chain order, window by window."""
    contract = w3.eth.contract(address=address, abi=ledger_artifact().abi)
    by_topic = {event_abi_to_log_topic(e): getattr(contract.events, e["name"])()
                for e in ledger_artifact().abi if e["type"] == "event"}
    out = []
    for log in get_logs(w3, address, from_block, to_block, window=window):
        event = by_topic.get(bytes(log["topics"][0]))
        if event is not None:
            out.append(event.process_log(log))
    out.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
    return out


class _Rebuild:
    """Replays the events in order, recomputing as the contract would; collects mismatches."""

    def __init__(self) -> None:
        self.bad: list[Mismatch] = []
        self.slots: dict[int, str] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.tasks: dict[int, TaskHistory] = {}
        self.rounds: dict[tuple[int, int], RoundHistory] = {}
        self.reputations: dict[str, dict[str, int]] = {}

    def check(self, what: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            self.bad.append(Mismatch(what, expected, actual))

    def rnd(self, t: int, r: int) -> RoundHistory:
        return self.rounds.setdefault((t, r), RoundHistory(t, r))

    def apply(self, ev: Any) -> None:
        handler = getattr(self, "on_" + ev["event"], None)
        if handler is not None:
            handler(ev["args"])

    def on_MemberRegistered(self, a: Any) -> None:
        self.slots[a["index"]] = a["member"]
        self.members[a["member"]] = {"address": a["member"], "index": a["index"], "peer_id": a["peerId"],
                                     "name": a["name"], "active": True}

    def on_MemberRemoved(self, a: Any) -> None:
        self.members[a["member"]]["active"] = False

    def on_TaskCreated(self, a: Any) -> None:
        referee = None if int(a["referee"], 16) == 0 else to_checksum_address(a["referee"])
        validation = None if not any(a["validationDigest"]) else "0x" + bytes(a["validationDigest"]).hex()
        self.tasks[a["taskId"]] = TaskHistory(a["taskId"], a["quorum"], a["roundDuration"], a["modelId"],
                                              a["stake"], a["slash"], referee, validation)

    def on_Funded(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        th.fundings.append((a["sponsor"], a["amount"]))
        th.pool += a["amount"]
        self.check(f"task {th.task_id} pool after funding", th.pool, a["pool"])

    def on_Bonded(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        self.check(f"task {th.task_id} bond of {a['member']}", th.stake, a["amount"])
        th.bonded.append(a["member"])
        th.bonds[a["member"]] = a["amount"]

    def on_PrivacyTermsSet(self, a: Any) -> None:
        self.tasks[a["taskId"]].privacy = {k: a[k] for k in ("epsilonMilli", "deltaE18", "noiseMilli", "clipMilli",
                                                               "accountant")}

    def on_ExchangeTermsSet(self, a: Any) -> None:
        self.tasks[a["taskId"]].exchange = tuple(a[k] for k in ("codec", "compressionBps", "exchangeAllUpTo",
                                                                "partners"))

    def on_Committed(self, a: Any) -> None:
        self._commit(a["taskId"], a["round"], a["member"], a["digest"], a["epsilonMilli"])
        self.check(f"slot of {a['member']}", self.slots.get(a["index"]), a["member"])

    def _commit(self, t: int, r: int, member: str, digest: bytes, epsilon: int) -> None:
        """A commit and its cumulative epsilon, replaying the contract's budget rules."""
        rh, th = self.rnd(t, r), self.tasks[t]
        rh.commits[member] = "0x" + bytes(digest).hex()
        rh.epsilons[member] = epsilon
        if epsilon:
            budget = (th.privacy or {}).get("epsilonMilli", 0)
            if budget:
                self.check(f"task {t} round {r} epsilon of {member} within the budget", True, epsilon <= budget)
            self.check(f"task {t} round {r} epsilon of {member} not below its last", True,
                       epsilon >= th.epsilons.get(member, 0))
            th.epsilons[member] = epsilon

    def on_Voted(self, a: Any) -> None:
        rh = self.rnd(a["taskId"], a["round"])
        vote = vote_from_event({"args": a}, self.slots.__getitem__)
        rh.votes.append(vote)
        if any(a["model"]) and vote.voter in rh.commits:  # a zero model is no attestation
            rh.attestations[vote.model] = rh.attestations.get(vote.model, 0) + 1

    def on_CommittedAndVoted(self, a: Any) -> None:
        self._commit(a["taskId"], a["round"] + 1, a["member"], a["digest"], a["epsilonMilli"])
        self.on_Voted(a)

    def on_Slashed(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        member = a["member"]
        left = th.bonds.get(member, 0)
        self.check(f"task {th.task_id} round {a['round']} slash of {member}", min(th.slash, left), a["amount"])
        if member in th.bonds:
            th.bonds[member] = left - a["amount"]
        th.offences[member] = th.offences.get(member, 0) + 1
        th.pool += a["amount"]
        th.slashed += a["amount"]
        self.rnd(th.task_id, a["round"]).slashes.append((member, a["amount"], SLASH_REASONS[a["reason"]]))

    def on_RoundFinalized(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        rh = self.rnd(a["taskId"], a["round"])
        where = f"task {rh.task_id} round {rh.round}"
        committers = list(rh.commits)
        got = outcome_from_event(a, committers, self.slots.__getitem__)
        rh.finalized, rh.status, rh.credits = True, got.status, got.credits
        status, winner = decide(rh.votes, committers, th.quorum, th.referee)
        self.check(f"{where} status", status, got.status)
        rh.recomputed = {m: 0 for m in committers}
        # A referee's vote decides whether or not the members agreed: the audit says which it was.
        rh.members_split = status != "below_quorum" and decide(rh.votes, committers, th.quorum, None)[0] == "split"
        if winner is not None:
            rh.winner = winner.vote_hash
            rh.decided_by = "referee" if winner.voter == th.referee and th.referee not in rh.commits else "majority"
            self.check(f"{where} winning vote", winner.vote_hash, got.vote_hash)
            voted = {v.voter: v.vote_hash for v in rh.votes if v.voter in rh.commits}
            rh.deviants = [m for m in committers if m in voted and voted[m] != winner.vote_hash]
            for m in committers:
                score = winner.scores.get(m, 0)
                if m in rh.deviants:
                    continue
                if score < 0:
                    rh.flagged.append(m)
                else:
                    rh.recomputed[m] = score
        for m, c in rh.recomputed.items():
            th.contributions[m] = th.contributions.get(m, 0) + c
        self.check(f"{where} credits", rh.recomputed, got.credits)
        self.check(f"{where} deviants", sorted(rh.deviants), sorted(got.deviants))
        self.check(f"{where} flagged", sorted(rh.flagged), sorted(got.flagged))
        expected = sorted([(m, "deviant") for m in rh.deviants] + [(m, "flagged") for m in rh.flagged])
        self.check(f"{where} slashed", expected, sorted((m, reason) for m, _, reason in rh.slashes))

    def on_TaskClosed(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        th.closed = True
        self.check(f"task {th.task_id} TaskClosed.pool", th.pool, a["pool"])
        self.check(f"task {th.task_id} TaskClosed.totalContribution", th.total, a["totalContribution"])

    def on_ReputationUpdated(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        member = a["member"]
        participants = [m for m in self.members
                        if m in th.bonded or th.contributions.get(m, 0) or th.offences.get(m, 0)]
        rep = self.reputations.setdefault(member, {"score": REPUTATION_AVERAGE, "tasks": 0, "offences": 0})
        offences = th.offences.get(member, 0)
        self.check(f"task {th.task_id} participant {member}", True, member in participants)
        rep["score"] = next_reputation(rep["score"], th.contributions.get(member, 0), len(participants), th.total,
                                       offences > 0)
        rep["tasks"] += 1
        rep["offences"] += offences
        self.check(f"task {th.task_id} reputation of {member}", (rep["score"], rep["tasks"], rep["offences"]),
                   (a["score"], a["tasks"], a["offences"]))

    def on_RevenuePaid(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        th.revenue += a["amount"]
        self.check(f"task {th.task_id} received after revenue", th.received, a["received"])

    def on_Withdrawn(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        member = a["member"]
        th.withdrawals[member] = th.withdrawals.get(member, 0) + a["amount"]
        # a withdrawal takes everything owed, so afterwards the member holds exactly its entitlement
        self.check(f"task {th.task_id} withdrawn by {member}", th.entitlement(member), th.withdrawals[member])

    def on_DustClaimed(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        self.check(f"task {th.task_id} dust claimed", th.dust(), a["amount"])
        if th.total:
            fresh = th.received - th.settled_received
            for m, c in th.contributions.items():
                th.settled[m] = th.settled.get(m, 0) + fresh * c // th.total
            th.settled_received = th.received
        th.dust_claimed += a["amount"]

    def on_Refunded(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        th.refunds[a["sponsor"]] = th.refunds.get(a["sponsor"], 0) + a["amount"]

    def on_StakeReclaimed(self, a: Any) -> None:
        th = self.tasks[a["taskId"]]
        self.check(f"task {th.task_id} stake reclaimed by {a['member']}", th.bonds.get(a["member"], 0), a["amount"])
        th.reclaimed[a["member"]] = a["amount"]
        th.bonds[a["member"]] = 0


def _cross_check(rb: _Rebuild, w3: Web3, contract: Any) -> int:
    """Compare the rebuilt history with the contract's state; returns the expected ETH balance."""
    f, check = contract.functions, rb.check
    check("memberCount", len(rb.slots), f.memberCount().call())
    for m, info in rb.members.items():
        idx, registered, active, peer, nm = f.memberInfo(m).call()
        check(f"member {m}", (info["index"], True, info["active"], info["peer_id"], info["name"]),
              (idx, registered, active, peer, nm))
        rep = rb.reputations.get(m, {"score": REPUTATION_AVERAGE, "tasks": 0, "offences": 0})
        check(f"reputation of {m}", (rep["score"], rep["tasks"], rep["offences"]), tuple(f.reputation(m).call()))
    check("taskCount", len(rb.tasks), f.taskCount().call())
    for (t, r), rh in rb.rounds.items():
        committed, voted, _start, _deadline, finalized, max_votes, retained = f.roundInfo(t, r).call()
        if not retained:  # recycled round words are gone from state; the events are the record
            continue
        slot_of = {a: j for j, a in rb.slots.items()}
        member_votes = [v for v in rh.votes if v.voter in rh.commits]
        check(f"task {t} round {r} committers", sum(1 << slot_of[m] for m in rh.commits), committed)
        check(f"task {t} round {r} voters", sum(1 << slot_of[v.voter] for v in member_votes), voted)
        check(f"task {t} round {r} finalized", rh.finalized, finalized)
        tally = Counter(v.vote_hash for v in member_votes)
        check(f"task {t} round {r} largest vote", max(tally.values(), default=0), max_votes)
        for h in tally:
            mask = sum(1 << slot_of[v.voter] for v in member_votes if v.vote_hash == h)
            check(f"task {t} round {r} voters of {h[:10]}", mask, f.votersOf(t, r, bytes.fromhex(h[2:])).call())
    expected_balance = 0
    for t, th in rb.tasks.items():
        q, dur, pool, revenue, total, closed, paid, dust_claimed, model = f.taskInfo(t).call()
        stake, slash, referee, validation, slashed, exchange = f.taskTerms(t).call()
        check(f"task {t} parameters", (th.quorum, th.round_duration, th.model_id, th.stake, th.slash),
              (q, dur, model, stake, slash))
        terms = tuple((th.privacy or {}).get(k, 0) for k in ("epsilonMilli", "deltaE18", "noiseMilli", "clipMilli",
                                                              "accountant"))
        check(f"task {t} privacy terms", terms, tuple(f.privacyTerms(t).call()))
        check(f"task {t} exchange terms", th.exchange, tuple(exchange))
        check(f"task {t} accounts", (th.pool, th.revenue, th.total, th.closed, sum(th.withdrawals.values()),
                                     th.dust_claimed, th.slashed),
              (pool, revenue, total, closed, paid, dust_claimed, slashed))
        check(f"task {t} unclaimed dust", th.dust(), f.dust(t).call()[0])
        for m in rb.members:
            check(f"task {t} contribution of {m}", th.contributions.get(m, 0), f.contribution(t, m).call())
            check(f"task {t} withdrawn by {m}", th.withdrawals.get(m, 0), f.withdrawn(t, m).call())
            owed = th.entitlement(m) - th.withdrawals.get(m, 0) if th.closed and th.total else 0
            check(f"task {t} owed to {m}", owed, f.owed(t, m).call())
            check(f"task {t} stake of {m}", (m in th.bonded, th.bonds.get(m, 0), th.offences.get(m, 0)),
                  tuple(f.stakeOf(t, m).call()))
            check(f"task {t} epsilon of {m}", th.epsilons.get(m, 0), f.epsilonOf(t, m).call())
        for sponsor in {s for s, _ in th.fundings}:
            funded = sum(a for s, a in th.fundings if s == sponsor)
            check(f"task {t} refundable to {sponsor}", funded - th.refunds.get(sponsor, 0), f.funded(t, sponsor).call())
        if th.closed:  # every wei in is someone's: members' entitlements plus dust (claimed or not)
            owed_all = sum(th.entitlement(m) for m in th.contributions) if th.total else sum(a for _, a in th.fundings)
            check(f"task {t} entitlements + dust == received", th.received, owed_all + th.dust() + th.dust_claimed)
        deposited = sum(a for _, a in th.fundings) + th.revenue + th.stake * len(th.bonded)
        taken = sum(th.withdrawals.values()) + th.dust_claimed + sum(th.refunds.values()) + sum(th.reclaimed.values())
        expected_balance += deposited - taken
    return expected_balance


def audit(
    w3: Web3,
    address: str,
    *,
    expectations: Mapping[str, Any] | None = None,
    from_block: int | None = None,
    window: int = DEFAULT_WINDOW,
) -> AuditReport:
    """Rebuild the ledger's history from events, recompute it, and cross-check with state.

    `expectations` (optional): {"contributions": {task_id: {address: int}},
    "credits": {task_id: {round: {address: int}}},
    "votes": {task_id: {round: {voter: {address: score}}}}} as the nodes' own logs would give
    (a vote's zero scores and lanes it left out are the same thing).
    Raises LedgerNotFound when `address` holds no contract on this chain.
    """
    if not is_address(address):
        raise LedgerNotFound(f"{address!r} is not an Ethereum address")
    address = to_checksum_address(address)
    if not w3.eth.get_code(address):
        # Otherwise every state read fails with web3's undecodable-output error, far from the cause.
        raise LedgerNotFound(f"no contract at {address} on chain {w3.eth.chain_id}")
    contract = w3.eth.contract(address=address, abi=ledger_artifact().abi)
    latest = w3.eth.block_number
    first = deploy_block(w3, address, latest) if from_block is None else from_block
    rb = _Rebuild()
    for ev in fetch_events(w3, address, first, latest, window):
        rb.apply(ev)
    balance = w3.eth.get_balance(address)
    rb.check("contract balance", _cross_check(rb, w3, contract), balance)

    exp = expectations or {}
    for t, per_member in (exp.get("contributions") or {}).items():
        th = rb.tasks.get(int(t))
        for m, value in per_member.items():
            actual = th.contributions.get(to_checksum_address(m), 0) if th else None
            rb.check(f"expected contribution of {m} in task {t}", int(value), actual)
    for t, per_round in (exp.get("credits") or {}).items():
        for r, per_member in per_round.items():
            rh = rb.rounds.get((int(t), int(r)))
            for m, value in per_member.items():
                actual = rh.credits.get(to_checksum_address(m)) if rh else None
                rb.check(f"expected credit of {m} in task {t} round {r}", int(value), actual)

    for t, per_round in (exp.get("votes") or {}).items():
        for r, per_voter in per_round.items():
            rh = rb.rounds.get((int(t), int(r)))
            on_chain = {v.voter: v.scores for v in rh.votes} if rh else {}
            for voter, scores in per_voter.items():
                want = {to_checksum_address(m): int(s) for m, s in scores.items() if int(s)}
                got = on_chain.get(to_checksum_address(voter))
                rb.check(f"expected vote of {voter} in task {t} round {r}", want,
                         None if got is None else {m: s for m, s in got.items() if s})

    report = AuditReport(address, w3.eth.chain_id, (first, latest),
                         sorted(rb.members.values(), key=lambda m: m["index"]), rb.tasks, rb.rounds,
                         rb.reputations, balance, rb.bad)
    for mm in rb.bad:
        logger.warning("audit mismatch: %s", mm)
    return report

