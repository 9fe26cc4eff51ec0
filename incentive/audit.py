"""Audit a MedSwarmLedger from an RPC URL and its address alone.

The history (members, tasks, fundings, per-round commits, scores, merged-model attestations
and credits, closes, withdrawals, refunds, dust claims) is rebuilt from the contract's events
only, queried in bounded block windows (eth-tester's get_logs is quadratic over a whole chain).
The audit then recomputes every median credit and every pro-rata payout itself, and
cross-checks all of it against the contract's state: contributions, totals, pools, dust,
claimed amounts, withdrawal flags, commitments, round masks, attestation counts and the
contract's ETH balance. Optional expectations (e.g. the contributions the nodes logged
themselves) are checked too. Every disagreement becomes a `Mismatch`; nothing is silently
reconciled.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

from eth_utils import event_abi_to_log_topic, is_address, to_checksum_address
from web3 import Web3

from incentive.artifacts import ledger_artifact
from incentive.ledger import unpack_scores

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 500


def median_credit(scores: list[int]) -> int:
    """The contract's median rule: odd -> middle; even -> floor of the two middles' mean; none -> 0."""
    if not scores:
        return 0
    s = sorted(scores)
    m = len(s)
    return s[m // 2] if m % 2 else (s[m // 2 - 1] + s[m // 2]) // 2


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
    scores: dict[str, dict[str, int]] = field(default_factory=dict)  # scorer -> {peer: score}
    attestations: dict[str, int] = field(default_factory=dict)  # merged-model digest -> members attesting it
    finalized: bool = False
    counted: bool = False
    credits: dict[str, int] = field(default_factory=dict)  # from the RoundFinalized event
    recomputed: dict[str, int] = field(default_factory=dict)


@dataclass
class TaskHistory:
    task_id: int
    quorum: int
    round_duration: int
    model_id: str
    fundings: list[tuple[str, int]] = field(default_factory=list)
    pool: int = 0
    closed: bool = False
    close_event: dict[str, int] = field(default_factory=dict)
    contributions: dict[str, int] = field(default_factory=dict)  # recomputed
    payouts: dict[str, int] = field(default_factory=dict)  # recomputed (closed tasks)
    dust: int = 0  # recomputed
    withdrawals: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, int] = field(default_factory=dict)
    dust_claimed: int = 0


@dataclass
class AuditReport:
    """What the audit rebuilt and every mismatch it found."""

    address: str
    chain_id: int
    blocks: tuple[int, int]
    members: list[dict[str, Any]]
    tasks: dict[int, TaskHistory]
    rounds: dict[tuple[int, int], RoundHistory]
    balance: int
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "chain_id": self.chain_id,
            "blocks": list(self.blocks),
            "members": self.members,
            "tasks": {str(k): asdict(v) for k, v in self.tasks.items()},
            "rounds": [asdict(r) for r in self.rounds.values()],
            "balance": self.balance,
            "ok": self.ok,
            "mismatches": [{"what": m.what, "expected": m.expected, "actual": m.actual} for m in self.mismatches],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, default=str)

    def format_table(self) -> str:
        names = {m["address"]: m["name"] or m["address"][:10] for m in self.members}
        lines = [f"ledger {self.address} on chain {self.chain_id}, blocks {self.blocks[0]}..{self.blocks[1]}"]
        head = f"{'task':>4} {'round':>5}  {'member':<14} {'digest':<12} {'scores received':<28} {'credit':>6}"
        lines += ["", head, "-" * len(head)]
        for (t, r), rh in sorted(self.rounds.items()):
            for member, digest in rh.commits.items():
                got = sorted(s[member] for s in rh.scores.values() if member in s)
                credit = rh.credits.get(member, "-") if rh.finalized else "open"
                lines.append(f"{t:>4} {r:>5}  {names.get(member, member[:10]):<14} {digest[:10]:<12} "
                             f"{','.join(map(str, got))[:28]:<28} {credit:>6}")
        for t, th in sorted(self.tasks.items()):
            state = "closed" if th.closed else "open"
            lines += ["", f"task {t} ({th.model_id}, {state}): pool {th.pool} wei, "
                          f"total contribution {sum(th.contributions.values())}, dust {th.dust}"]
            head = f"{'member':<14} {'contribution':>12} {'payout (wei)':>24} {'withdrawn (wei)':>24}"
            lines += [head, "-" * len(head)]
            for member, c in th.contributions.items():
                lines.append(f"{names.get(member, member[:10]):<14} {c:>12} {th.payouts.get(member, 0):>24} "
                             f"{th.withdrawals.get(member, 0):>24}")
        lines.append("")
        lines.append("audit OK: events, recomputation and contract state agree" if self.ok
                     else f"audit FAILED: {len(self.mismatches)} mismatch(es)")
        lines += [f"  MISMATCH {m}" for m in self.mismatches]
        return "\n".join(lines)


def _deploy_block(w3: Web3, address: str, latest: int) -> int:
    """First block whose state holds code at `address` (binary search over eth_getCode).

    Falls back to 0 when the node keeps no historical state (e.g. anvil reloaded from --state).
    """
    lo, hi = 0, latest
    while lo < hi:
        mid = (lo + hi) // 2
        try:
            has_code = len(w3.eth.get_code(address, mid)) > 0
        except Exception:  # historical state unavailable on this node
            logger.info("no historical state at block %d; scanning logs from block 0", mid)
            return 0
        if has_code:
            hi = mid
        else:
            lo = mid + 1
    return lo


def fetch_events(w3: Web3, address: str, from_block: int, to_block: int, window: int = DEFAULT_WINDOW) -> list[Any]:
    """All ledger events in [from_block, to_block], decoded, in chain order, window by window."""
    contract = w3.eth.contract(address=address, abi=ledger_artifact().abi)
    by_topic = {event_abi_to_log_topic(e): getattr(contract.events, e["name"])()
                for e in ledger_artifact().abi if e["type"] == "event"}
    out = []
    start = from_block
    while start <= to_block:
        end = min(start + window - 1, to_block)
        for log in w3.eth.get_logs({"address": address, "fromBlock": start, "toBlock": end}):
            event = by_topic.get(bytes(log["topics"][0]))
            if event is not None:
                out.append(event.process_log(log))
        start = end + 1
    out.sort(key=lambda e: (e["blockNumber"], e["logIndex"]))
    return out


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
    "credits": {task_id: {round: {address: int}}}} as the nodes' own logs would give.
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
    first = _deploy_block(w3, address, latest) if from_block is None else from_block
    events = fetch_events(w3, address, first, latest, window)
    bad: list[Mismatch] = []

    slots: dict[int, str] = {}
    members: dict[str, dict[str, Any]] = {}
    tasks: dict[int, TaskHistory] = {}
    rounds: dict[tuple[int, int], RoundHistory] = {}

    def rnd(t: int, r: int) -> RoundHistory:
        return rounds.setdefault((t, r), RoundHistory(t, r))

    for ev in events:
        a, name = ev["args"], ev["event"]
        if name == "MemberRegistered":
            slots[a["index"]] = a["member"]
            members[a["member"]] = {"address": a["member"], "index": a["index"], "peer_id": a["peerId"],
                                    "name": a["name"], "active": True}
        elif name == "MemberRemoved":
            members[a["member"]]["active"] = False
        elif name == "TaskCreated":
            tasks[a["taskId"]] = TaskHistory(a["taskId"], a["quorum"], a["roundDuration"], a["modelId"])
        elif name == "Funded":
            th = tasks[a["taskId"]]
            th.fundings.append((a["sponsor"], a["amount"]))
            th.pool += a["amount"]
            if th.pool != a["pool"]:
                bad.append(Mismatch(f"task {a['taskId']} pool after funding", th.pool, a["pool"]))
        elif name == "Committed":
            rh = rnd(a["taskId"], a["round"])
            rh.commits[a["member"]] = "0x" + bytes(a["digest"]).hex()
            if slots.get(a["index"]) != a["member"]:
                bad.append(Mismatch(f"slot of {a['member']}", slots.get(a["index"]), a["index"]))
        elif name == "ScoresSubmitted":
            rh = rnd(a["taskId"], a["round"])
            rh.scores[a["scorer"]] = {slots[p]: s for p, s in unpack_scores(a["rows"]).items()}
            if any(a["model"]):  # a zero model is no attestation, as in the contract
                model = "0x" + bytes(a["model"]).hex()
                rh.attestations[model] = rh.attestations.get(model, 0) + 1
        elif name == "RoundFinalized":
            rh = rnd(a["taskId"], a["round"])
            rh.finalized, rh.counted = True, a["counted"]
            rh.credits = {to_checksum_address(m): int(c) for m, c in zip(a["committers"], a["credits"])}
            th = tasks[a["taskId"]]
            for m in rh.commits:
                got = [s[m] for s in rh.scores.values() if m in s]
                rh.recomputed[m] = median_credit(got) if len(rh.commits) >= th.quorum else 0
                th.contributions[m] = th.contributions.get(m, 0) + rh.recomputed[m]
            if set(rh.credits) != set(rh.commits):
                bad.append(Mismatch(f"task {rh.task_id} round {rh.round} credited set", sorted(rh.commits),
                                    sorted(rh.credits)))
            for m, c in rh.recomputed.items():
                if rh.credits.get(m) != c:
                    bad.append(Mismatch(f"task {rh.task_id} round {rh.round} credit of {m}", c, rh.credits.get(m)))
        elif name == "TaskClosed":
            th = tasks[a["taskId"]]
            th.closed = True
            th.close_event = {"pool": a["pool"], "total": a["totalContribution"], "dust": a["dust"]}
            total = sum(th.contributions.values())
            if total:
                th.payouts = {m: th.pool * c // total for m, c in th.contributions.items()}
                th.dust = th.pool - sum(th.payouts.values())
            for key, mine in (("pool", th.pool), ("total", total), ("dust", th.dust)):
                if th.close_event[key] != mine:
                    bad.append(Mismatch(f"task {th.task_id} TaskClosed.{key}", mine, th.close_event[key]))
        elif name == "Withdrawn":
            th = tasks[a["taskId"]]
            if a["member"] in th.withdrawals:
                bad.append(Mismatch(f"task {th.task_id} withdrawals by {a['member']}", 1, 2))
            th.withdrawals[a["member"]] = a["amount"]
            if th.payouts.get(a["member"]) != a["amount"]:
                bad.append(Mismatch(f"task {th.task_id} payout to {a['member']}", th.payouts.get(a["member"]),
                                    a["amount"]))
        elif name == "Refunded":
            th = tasks[a["taskId"]]
            th.refunds[a["sponsor"]] = th.refunds.get(a["sponsor"], 0) + a["amount"]
        elif name == "DustClaimed":
            th = tasks[a["taskId"]]
            th.dust_claimed += a["amount"]
            if a["amount"] != th.dust:
                bad.append(Mismatch(f"task {th.task_id} dust claimed", th.dust, a["amount"]))

    # ---- cross-check with the contract's state
    def check(what: str, expected: Any, actual: Any) -> None:
        if expected != actual:
            bad.append(Mismatch(what, expected, actual))

    f = contract.functions
    check("memberCount", len(slots), f.memberCount().call())
    for m, info in members.items():
        idx, registered, active, peer, nm = f.memberInfo(m).call()
        check(f"member {m}", (info["index"], True, info["active"], info["peer_id"], info["name"]),
              (idx, registered, active, peer, nm))
    check("taskCount", len(tasks), f.taskCount().call())
    for (t, r), rh in rounds.items():
        committed, scored, _start, _deadline, finalized = f.roundInfo(t, r).call()
        check(f"task {t} round {r} committers", sorted(rh.commits), sorted(slots[j] for j in range(64) if committed >> j & 1))
        check(f"task {t} round {r} scorers", sorted(rh.scores), sorted(slots[j] for j in range(64) if scored >> j & 1))
        check(f"task {t} round {r} finalized", rh.finalized, finalized)
        for m, digest in rh.commits.items():
            check(f"task {t} round {r} commitment of {m}", digest, "0x" + f.commitment(t, r, m).call().hex())
        for model, count in rh.attestations.items():
            check(f"task {t} round {r} attestations of model {model}", count,
                  f.modelAttestations(t, r, bytes.fromhex(model[2:])).call())
    expected_balance = 0
    for t, th in tasks.items():
        q, dur, pool, total, closed, dust, paid, dust_claimed, model = f.taskInfo(t).call()
        check(f"task {t} pool", th.pool, pool)
        check(f"task {t} total contribution", sum(th.contributions.values()), total)
        check(f"task {t} closed", th.closed, closed)
        check(f"task {t} dust", th.dust, dust)
        check(f"task {t} paid", sum(th.withdrawals.values()), paid)
        check(f"task {t} dust claimed", th.dust_claimed > 0, dust_claimed)
        check(f"task {t} parameters", (th.quorum, th.round_duration, th.model_id), (q, dur, model))
        for m in members:
            check(f"task {t} contribution of {m}", th.contributions.get(m, 0), f.contribution(t, m).call())
            check(f"task {t} withdrawn flag of {m}", m in th.withdrawals, f.withdrawn(t, m).call())
        for sponsor, _ in th.fundings:
            funded = sum(a for s, a in th.fundings if s == sponsor)
            check(f"task {t} refundable to {sponsor}", funded - th.refunds.get(sponsor, 0), f.funded(t, sponsor).call())
        if th.closed:
            check(f"task {t} payouts + dust == pool", th.pool if sum(th.contributions.values()) else 0,
                  sum(th.payouts.values()) + th.dust)
        expected_balance += th.pool - sum(th.withdrawals.values()) - th.dust_claimed - sum(th.refunds.values())
    balance = w3.eth.get_balance(address)
    check("contract balance", expected_balance, balance)

    # ---- expectations (e.g. from the nodes' own logs)
    exp = expectations or {}
    for t, per_member in (exp.get("contributions") or {}).items():
        th = tasks.get(int(t))
        for m, value in per_member.items():
            actual = th.contributions.get(to_checksum_address(m), 0) if th else None
            check(f"expected contribution of {m} in task {t}", int(value), actual)
    for t, per_round in (exp.get("credits") or {}).items():
        for r, per_member in per_round.items():
            rh = rounds.get((int(t), int(r)))
            for m, value in per_member.items():
                actual = rh.credits.get(to_checksum_address(m)) if rh else None
                check(f"expected credit of {m} in task {t} round {r}", int(value), actual)

    report = AuditReport(address, w3.eth.chain_id, (first, latest), sorted(members.values(), key=lambda m: m["index"]),
                         tasks, rounds, balance, bad)
    for mm in bad:
        logger.warning("audit mismatch: %s", mm)
    return report
