"""Typed client for the MedSwarmLedger contract (protocol v3): one method per contract function.

Each member signs its own transactions locally with its own key and nonce. Sends through one
Web3 connection are serialised by that connection's lock (see incentive.chain.send_lock), so a
Ledger may be used from several threads. A revert, whether at gas estimation, in a call or in
a mined transaction, raises the LedgerError subclass named after the contract's custom error
(incentive.errors), identically on eth-tester and on any JSON-RPC node.

Commitments and votes live in events, not in contract storage: `commitments`, `votes` and
`model_attestations` read them (incrementally: each event type of a task is scanned once from
the deploy block, then only over new blocks), and `finalize` picks the round's winning vector
from them exactly as the contract decides it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, is_hex, keccak, to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.logs import DISCARD
from web3.types import TxReceipt

from incentive.artifacts import Artifact, ledger_artifact
from incentive.chain import is_eth_tester, send_book, send_lock, send_signed, wait_receipt
from incentive.errors import LedgerError, UnknownMember, UnknownRevert, decode_revert
from incentive.logs import deploy_block, get_logs

logger = logging.getLogger(__name__)

GAS_MARGIN = 1.25
FLAGGED = -1  # a score meaning "this member's update is a near-copy, a free rider or invalid" (lane 0xFFFF)
_FLAGGED_LANE = 0xFFFF
ZERO32 = "0x" + "00" * 32
# RoundFinalized.status and Slashed.reason, as the contract numbers them
STATUSES = ("credited", "below_quorum", "split")
SLASH_REASONS = {1: "deviant", 2: "flagged"}


@dataclass(frozen=True)
class Member:
    """A member node as registered on the ledger."""

    address: str
    peer_id: str
    name: str
    active: bool
    index: int = -1  # slot index on chain (bit position in round masks)


@dataclass(frozen=True)
class RoundOutcome:
    """How a round was finalized: its status, each committer's credit, who was slashed and why."""

    status: str  # "credited" | "below_quorum" | "split"
    credits: dict[str, int]  # committer -> credit (0 for everyone unless credited)
    deviants: tuple[str, ...]  # voted another vector than the winner: no credit, slashed
    flagged: tuple[str, ...]  # flagged by the winning vector: no credit, slashed
    vote_hash: str = ZERO32  # the winning vote (zero unless credited)


@dataclass(frozen=True)
class RoundState:
    """One task round: who committed, who voted, whether (and how) it is finalized, its deadline."""

    committers: tuple[str, ...]
    scored: tuple[str, ...]  # the committers that voted
    finalized: bool
    deadline: int  # unix seconds; 0 until the round's first commit
    start: int = 0  # timestamp of the first commit
    outcome: RoundOutcome | None = None  # once finalized


@dataclass(frozen=True)
class Vote:
    """One vote on a round's score vector, as its Voted event carries it."""

    voter: str
    model: str  # attested merged-model digest ("0x" + 64 hex; zero: none)
    scores: dict[str, int]  # member -> score, or FLAGGED
    vote_hash: str  # keccak256(abi.encode(round, model, rows)), what the contract counts
    rows: tuple[int, ...] = field(default=(), repr=False)  # the packed vector, as sent


@dataclass(frozen=True)
class Reputation:
    """A member's standing across closed tasks (basis points; 10000 = average)."""

    score: int
    tasks: int
    offences: int


ACCOUNTANT_CODES = ("rdp", "prv")  # PrivacyTerms.accountant, as the contract numbers them


def epsilon_milli(epsilon: float) -> int:
    """Epsilon as the contract records it: in 1/1000, rounded up (never understated; float noise
    below 1e-6 milli is dropped first, so 2.0 stays 2000)."""
    if not epsilon >= 0 or math.isinf(epsilon):
        raise ValueError(f"epsilon must be finite and non-negative, got {epsilon}")
    return math.ceil(round(epsilon * 1000, 6))


@dataclass(frozen=True)
class PrivacyTerms:
    """A task's differential-privacy budget and DP-SGD parameters, as fixed on chain."""

    epsilon: float  # the budget per member over the whole task
    delta: float = 0.0  # 0: 1/n for each member (n its training rows)
    noise_multiplier: float = 0.0  # 0: each node calibrates to the budget
    max_grad_norm: float = 0.0
    accountant: str = "rdp"

    def encode(self) -> tuple[int, int, int, int, int]:
        """The contract's PrivacyTerms tuple (milli-units, delta in 1e-18)."""
        if self.accountant not in ACCOUNTANT_CODES:
            raise ValueError(f"unknown accountant {self.accountant!r}; expected one of {ACCOUNTANT_CODES}")
        return (epsilon_milli(self.epsilon), round(self.delta * 10**18), round(self.noise_multiplier * 1000),
                round(self.max_grad_norm * 1000), ACCOUNTANT_CODES.index(self.accountant))

    @classmethod
    def decode(cls, raw: Sequence[int]) -> "PrivacyTerms | None":
        eps, delta, noise, clip, accountant = (int(v) for v in raw)
        if eps == 0:
            return None
        return cls(eps / 1000, delta / 10**18, noise / 1000, clip / 1000, ACCOUNTANT_CODES[accountant])


CODEC_NAMES = ("f32", "f16", "q8", "sparse16", "ternary")  # ExchangeTerms.codec, as p2p.codec numbers them
SPARSE_CODECS = ("sparse16", "ternary")  # the codecs that keep a share of the entries
ALL_TO_ALL_DEFAULT = 16


@dataclass(frozen=True)
class ExchangeTerms:
    """How a task's members exchange updates, as fixed on chain: the wire codec, the share of
    entries a sparse codec keeps, and above which number of training members each one merges
    with `partners` drawn peers (0: ceil(log2 n)) instead of with everyone."""

    codec: str = "f32"
    compression_fraction: float = 0.0  # sparse codecs only, (0, 1]; 0 for the dense ones
    exchange_all_up_to: int = ALL_TO_ALL_DEFAULT
    partners: int = 0

    def encode(self) -> tuple[int, int, int, int]:
        """The contract's ExchangeTerms tuple (the share in basis points)."""
        if self.codec not in CODEC_NAMES:
            raise ValueError(f"unknown codec {self.codec!r}; expected one of {CODEC_NAMES}")
        return (CODEC_NAMES.index(self.codec), round(self.compression_fraction * 10000), self.exchange_all_up_to,
                self.partners)

    @classmethod
    def decode(cls, raw: Sequence[int]) -> "ExchangeTerms":
        codec, bps, all_up_to, partners = (int(v) for v in raw)
        return cls(CODEC_NAMES[codec], bps / 10000, all_up_to, partners)


@dataclass(frozen=True)
class TaskInfo:
    """A task's parameters and accounts."""

    task_id: int
    quorum: int
    model_id: str
    round_duration: int
    pool: int  # funding plus slashed stake
    total_contribution: int
    closed: bool
    dust: int  # unclaimed rounding dust now
    paid: int  # withdrawn by members
    dust_claimed: int  # wei
    stake: int = 0
    slash: int = 0
    referee: str | None = None
    validation_digest: str | None = None
    revenue: int = 0
    privacy: PrivacyTerms | None = None  # the task's DP budget (None: none)
    exchange: ExchangeTerms = ExchangeTerms()  # the updates' codec and who merges with whom


def _hex32(digest: str | bytes) -> bytes:
    if isinstance(digest, (bytes, bytearray)):
        raw = bytes(digest)
    elif isinstance(digest, str) and is_hex(digest):
        raw = bytes.fromhex(digest[2:] if digest.startswith("0x") else digest)
    else:
        raise ValueError(f"digest must be 0x + 64 hex chars, got {digest!r}")
    if len(raw) != 32:
        raise ValueError(f"digest must be 32 bytes, got {len(raw)}")
    return raw


def _model32(model: str | bytes | None) -> bytes:
    """The attested merged-model digest as the contract takes it; None means no attestation."""
    return bytes(32) if model is None else _hex32(model)


def _hex(raw: bytes) -> str:
    return "0x" + bytes(raw).hex()


def pack_vector(indices: Sequence[int], scores: Sequence[int]) -> list[int]:
    """Pack (slot index, score) pairs as the contract expects: lane p of word p // 16 holds
    score + 1, or 0xFFFF for FLAGGED. Scores above 10000 are packed as given (the contract
    refuses them), so that the refusal can be tested."""
    if len(indices) != len(scores):
        raise ValueError(f"{len(indices)} members but {len(scores)} scores")
    words = [0, 0, 0, 0]
    seen: set[int] = set()
    for p, s in zip(indices, scores):
        if not 0 <= p < 64:
            raise ValueError(f"slot index {p} out of range")
        if p in seen:
            raise ValueError(f"slot {p} scored twice")
        if s == FLAGGED:
            lane = _FLAGGED_LANE
        elif 0 <= int(s) < _FLAGGED_LANE - 1:
            lane = int(s) + 1
        else:
            raise ValueError(f"score {s} does not fit in a 16-bit lane")
        seen.add(p)
        words[p >> 4] |= lane << ((p & 15) * 16)
    while words and words[-1] == 0:
        words.pop()
    return words


def lanes(rows: Sequence[int]) -> dict[int, int]:
    """The non-zero 16-bit lanes of packed words: {slot index: raw lane value}."""
    out = {}
    for k, word in enumerate(rows):
        for lane in range(16):
            v = (int(word) >> (16 * lane)) & 0xFFFF
            if v:
                out[16 * k + lane] = v
    return out


def unpack_vector(rows: Sequence[int]) -> dict[int, int]:
    """Inverse of pack_vector: {slot index: score or FLAGGED}."""
    return {p: FLAGGED if v == _FLAGGED_LANE else v - 1 for p, v in lanes(rows).items()}


def vote_hash(round: int, model: str | bytes | None, rows: Sequence[int]) -> str:
    """keccak256(abi.encode(round, model, rows)): the key under which the contract counts a vote."""
    return _hex(keccak(abi_encode(["uint32", "bytes32", "uint256[]"], [round, _model32(model), list(rows)])))


def slots_of(mask: int) -> list[int]:
    """The slot indices whose bits are set in a 64-bit mask, in order."""
    return [j for j in range(64) if mask >> j & 1]


def decide(votes: Sequence[Vote], committers: Sequence[str], quorum: int, referee: str | None) -> tuple[str, Vote | None]:
    """The contract's rule for a round's winner: (status, winning vote).

    Below quorum -> ("below_quorum", None); the referee's vote if it voted; else the vector a
    strict majority of the committers voted; else ("split", None). Only committers' votes count
    towards a majority, each once; a referee that committed in the round voted there as a member.
    """
    if len(committers) < quorum:
        return "below_quorum", None
    if referee is not None and referee not in committers:
        for v in votes:
            if v.voter == referee:
                return "credited", v
    members = set(committers)
    counted = [v for v in votes if v.voter in members]
    tally = Counter(v.vote_hash for v in counted)
    for v in counted:
        if 2 * tally[v.vote_hash] > len(committers):
            return "credited", v
    return "split", None


def chain_order(event: Any) -> tuple[int, int]:
    """Sort key of an event: where it is in the chain."""
    return event["blockNumber"], event["logIndex"]


def vote_from_event(event: Any, address_of: Callable[[int], str]) -> Vote:
    """The vote a Voted or CommittedAndVoted event carries (its `round` topic is the round voted on)."""
    a = event["args"]
    rows = tuple(a["rows"])
    return Vote(voter=a["voter"] if "voter" in a else a["member"], model=_hex(a["model"]),
                scores={address_of(p): s for p, s in unpack_vector(rows).items()},
                vote_hash=vote_hash(a["round"], a["model"], rows), rows=rows)


def outcome_from_event(args: Any, committers: Sequence[str], address_of: Callable[[int], str]) -> RoundOutcome:
    """A RoundOutcome from a RoundFinalized event's arguments (its credit lanes hold the credit
    itself); every committer is in `credits`, with 0 unless credited."""
    credited = {address_of(j): c for j, c in lanes(args["credits"]).items()}
    return RoundOutcome(
        status=STATUSES[args["status"]],
        credits={m: credited.get(m, 0) for m in committers},
        deviants=tuple(address_of(j) for j in slots_of(args["deviants"])),
        flagged=tuple(address_of(j) for j in slots_of(args["flagged"])),
        vote_hash=_hex(args["voteHash"]),
    )


def transact(
    w3: Web3,
    account: LocalAccount,
    call: ContractFunction | None = None,
    *,
    value: int = 0,
    data: dict[str, Any] | None = None,
    extra_abi: Sequence[dict[str, Any]] | None = None,
) -> TxReceipt:
    """Sign `call` (or a raw tx dict `data`) with `account`, send it, wait; decode any revert.

    Holds the connection's send lock from nonce lookup to receipt, so nonces never collide
    between threads of one process; the nonce comes from the connection's local count
    (incentive.chain.SendBook), not from a chain read per transaction.
    """
    with send_lock(w3):
        params: dict[str, Any] = {
            "from": account.address,
            "value": value,
            "chainId": w3.eth.chain_id,
        }
        # Estimated on the pending block: it carries the chain's clock (anvil), while the latest
        # block of an idle chain is stamped in the past and would refuse what a deadline allows.
        # eth-tester refuses the tag.
        block = None if is_eth_tester(w3) else "pending"
        own_fees = bool(data) and any(k in data for k in ("gasPrice", "maxFeePerGas"))
        try:
            if call is not None:
                estimate = call.estimate_gas(params, block_identifier=block)
                params["gas"] = int(estimate * GAS_MARGIN) + 10_000
                # The fee caps go in at sending (send_signed): here they only keep web3 from reading them.
                tx = call.build_transaction({**params, **send_book(w3).fees()[0]})
            else:
                tx = {**params, **(data or {})}
                tx["gas"] = int(w3.eth.estimate_gas(tx, block) * GAS_MARGIN)
        except Exception as exc:
            err = decode_revert(exc, extra_abi)
            if err is None:
                raise
            raise err from None
        tx_hash = send_signed(w3, account, tx, book_fees=not own_fees)
        receipt = wait_receipt(w3, account.address, tx_hash)
    if receipt["status"] != 1:
        raise _replay_failure(w3, tx, receipt, extra_abi)
    return receipt


def _replay_failure(w3: Web3, tx: dict[str, Any], receipt: TxReceipt, extra_abi) -> LedgerError:
    """A mined transaction reverted (state changed after estimation): replay it to learn why."""
    call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
    try:
        w3.eth.call(call, receipt["blockNumber"] - 1)
    except Exception as exc:
        err = decode_revert(exc, extra_abi)
        if err is not None:
            return err
    return UnknownRevert(f"transaction {receipt['transactionHash'].hex()} reverted", error="UnknownRevert")


def deploy_artifact(w3: Web3, account: LocalAccount, artifact: Artifact, *args: Any) -> str:
    """Deploy a compiled contract signed by `account`; return its checksum address."""
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = transact(w3, account, factory.constructor(*args), extra_abi=artifact.abi)
    return to_checksum_address(receipt["contractAddress"])


class Ledger:
    """One account's view of a deployed MedSwarmLedger (read-only when `account` is None)."""

    @classmethod
    def deploy(cls, w3: Web3, admin: LocalAccount, *, name: str = "admin") -> "Ledger":
        """Deploy a fresh ledger with `admin` as its admin."""
        address = deploy_artifact(w3, admin, ledger_artifact())
        logger.info("deployed MedSwarmLedger at %s", address)
        return cls(w3, address, admin, name=name)

    def __init__(self, w3: Web3, address: str, account: LocalAccount | None = None, *, name: str = ""):
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.account = account
        self.name = name
        self.contract = w3.eth.contract(address=self.address, abi=ledger_artifact().abi)
        self._index: dict[str, int] = {}
        self._slot: dict[int, str] = {}
        self._tasks: dict[int, TaskInfo] = {}  # fixed terms only (quorum, referee, ...) are read from it
        self._final: dict[tuple[int, int], RoundState] = {}  # finalized rounds' states (they never change)
        self._logs = _LogCache(w3, self.address, self.contract)
        self.log = logging.LoggerAdapter(logger, {"node": name})
        self._in_process = is_eth_tester(w3)

    def with_account(self, account: LocalAccount, *, name: str = "") -> "Ledger":
        """The same ledger seen by another account (shares the connection, its lock and the caches)."""
        other = Ledger(self.w3, self.address, account, name=name)
        other._index, other._slot, other._tasks, other._logs = self._index, self._slot, self._tasks, self._logs
        other._final = self._final
        return other

    # ------------------------------------------------------------------ plumbing
    def transact(self, function: str, *args: Any, value: int = 0) -> TxReceipt:
        """Low-level: send `function(*args)` signed by this ledger's account; returns the receipt."""
        if self.account is None:
            raise PermissionError("read-only Ledger: pass an account to send transactions")
        receipt = transact(self.w3, self.account, getattr(self.contract.functions, function)(*args), value=value)
        self.log.debug("%s%s mined in block %d (gas %d)", function, args, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

    def _call(self, function: str, *args: Any, block: int | str = "latest") -> Any:
        # eth-tester runs the EVM in this process and is not thread-safe: serialise calls too.
        lock = send_lock(self.w3) if self._in_process else contextlib.nullcontext()
        try:
            with lock:
                return getattr(self.contract.functions, function)(*args).call(block_identifier=block)
        except Exception as exc:
            err = decode_revert(exc)
            if err is None:
                raise
            raise err from None

    def _event(self, receipt: TxReceipt, event: str) -> Any:
        # DISCARD: the receipt also holds the transaction's other events (e.g. Slashed), not errors.
        logs = getattr(self.contract.events, event)().process_receipt(receipt, errors=DISCARD)
        if not logs:
            raise UnknownRevert(f"no {event} event in receipt", error="UnknownRevert")
        return logs[0]["args"]

    def member_index(self, address: str) -> int:
        """The member's permanent slot index; raises NotMember's sibling UnknownMember if never registered."""
        address = to_checksum_address(address)
        if address not in self._index:
            index, registered, _active, _peer, _name = self._call("memberInfo", address)
            if not registered:
                raise UnknownMember(values={"member": address})
            self._index[address] = index
            self._slot[index] = address
        return self._index[address]

    def address_of(self, slot: int) -> str:
        """The address in member slot `slot`."""
        if slot not in self._slot:
            self._slot[slot] = to_checksum_address(self._call("memberAt", slot))
            self._index[self._slot[slot]] = slot
        return self._slot[slot]

    def _addresses(self, mask: int) -> tuple[str, ...]:
        return tuple(self.address_of(j) for j in slots_of(mask))

    def _rows(self, members: Sequence[str], scores: Sequence[int]) -> list[int]:
        return pack_vector([self.member_index(m) for m in members], scores)

    # ------------------------------------------------------------------ admin
    def register_member(self, address: str, peer_id: str, name: str) -> None:
        """Register (or reactivate) a member node."""
        self.transact("registerMember", to_checksum_address(address), peer_id, name)

    def remove_member(self, address: str) -> None:
        """Deactivate a member."""
        self.transact("removeMember", to_checksum_address(address))

    def create_task(
        self,
        *,
        quorum: int,
        model_id: str,
        round_duration: int,
        stake: int = 0,
        slash: int = 0,
        referee: str | None = None,
        validation_digest: str | None = None,
        privacy: PrivacyTerms | None = None,
        exchange: ExchangeTerms = ExchangeTerms(),
    ) -> int:
        """Create a task; returns its id. `stake` (wei each member bonds, 0: none), `slash` (wei
        per offence), `referee` (the sponsor's scoring node, whose vote decides),
        `validation_digest` (keccak256 of the published validation set), `privacy` (the DP
        budget every commit is checked against) and `exchange` (codec and partner draws; default
        float32, all-to-all up to 16 members) are optional."""
        referee_address = "0x" + "00" * 20 if referee is None else to_checksum_address(referee)
        terms = (0, 0, 0, 0, 0) if privacy is None else privacy.encode()
        receipt = self.transact("createTask", quorum, model_id, round_duration, stake, slash, referee_address,
                                _model32(validation_digest), terms, exchange.encode())
        return int(self._event(receipt, "TaskCreated")["taskId"])

    def close_task(self, task_id: int) -> None:
        """Close a task (admin): payouts open and the participants' reputations are updated."""
        self.transact("closeTask", task_id)

    def claim_dust(self, task_id: int) -> int:
        """Admin claims the task's unclaimed rounding dust; returns wei paid."""
        return int(self._event(self.transact("claimDust", task_id), "DustClaimed")["amount"])

    # ------------------------------------------------------------------ anyone
    def fund(self, task_id: int, wei: int) -> None:
        """Add `wei` from this account to the task's pool."""
        self.transact("fund", task_id, value=wei)

    def pay_revenue(self, task_id: int, wei: int) -> None:
        """Pay `wei` of revenue to a closed task's members (split by contribution)."""
        self.transact("payRevenue", task_id, value=wei)

    def finalize(self, task_id: int, round: int) -> RoundOutcome:
        """Finalize a round (anyone, once every committer and the referee, if any, voted, or
        after the voting window).

        Reads the round's votes, picks the winner as the contract will (referee, else a strict
        majority of the committers, else a split) and sends it; returns the outcome the contract
        recorded. A revert raises its LedgerError (AlreadyFinalized, FinalizeTooEarly, ...). In an
        agreeing swarm the round's last vote, being the winner's, has already finalized the round
        (AlreadyFinalized here): `round_state(...).outcome` or `outcome(...)` has the result.
        """
        logs = self._logs.round_logs(task_id, round)
        committers = list(self._digests(logs.commits))
        info = self._terms(task_id)
        _status, winner = decide(self._votes(logs.votes), committers, info.quorum, info.referee)
        model, rows = (bytes(32), []) if winner is None else (_hex32(winner.model), list(winner.rows))
        receipt = self.transact("finalize", task_id, round, model, rows)
        outcome = outcome_from_event(self._event(receipt, "RoundFinalized"), committers, self.address_of)
        self.log.info("task %d round %d finalized: %s", task_id, round, outcome.status)
        return outcome

    def refund(self, task_id: int) -> int:
        """Sponsor reclaims its funding from a closed task in which nobody earned anything."""
        return int(self._event(self.transact("refund", task_id), "Refunded")["amount"])

    # ------------------------------------------------------------------ members
    def bond(self, task_id: int) -> None:
        """Bond the task's stake (reads it from the chain and sends exactly that)."""
        self.transact("bond", task_id, value=self._terms(task_id).stake)

    def reclaim_stake(self, task_id: int) -> int:
        """Take back what is left of this member's bond after close; returns wei paid."""
        return int(self._event(self.transact("reclaimStake", task_id), "StakeReclaimed")["amount"])

    def commit(self, task_id: int, round: int, digest: str, *, epsilon: float = 0.0) -> None:
        """Commit the digest ("0x" + 64 hex) of this member's update for `round`, with the
        member's cumulative DP epsilon (0: not reported)."""
        self.transact("commit", task_id, round, _hex32(digest), epsilon_milli(epsilon))

    def vote(self, task_id: int, round: int, members: Sequence[str], scores: Sequence[int], *,
             model: str | None) -> None:
        """Vote the round's score vector: `scores[i]` (0..10000 or FLAGGED) for `members[i]`, every
        committer self included; attest `model`, the merged model held after `round` (None: none)."""
        self.transact("vote", task_id, round, _model32(model), self._rows(members, scores))

    def commit_and_vote(
        self,
        task_id: int,
        round: int,
        digest: str,
        vote_round: int,
        members: Sequence[str],
        scores: Sequence[int],
        *,
        model: str | None,
        epsilon: float = 0.0,
    ) -> None:
        """One transaction: commit `digest` for `round` (with the cumulative `epsilon`, as in
        `commit`) and vote on `vote_round` (usually round - 1, the cheap case) as in `vote`."""
        self.transact("commitAndVote", task_id, round, _hex32(digest), epsilon_milli(epsilon), vote_round,
                      _model32(model), self._rows(members, scores))

    def withdraw(self, task_id: int) -> int:
        """Withdraw what this member is owed now (repeatable as revenue comes in); returns wei paid."""
        return int(self._event(self.transact("withdraw", task_id), "Withdrawn")["amount"])

    # ------------------------------------------------------------------ views
    def admin(self) -> str:
        """The admin address."""
        return to_checksum_address(self._call("admin"))

    def task_count(self) -> int:
        """Number of tasks created (ids 1..task_count)."""
        return int(self._call("taskCount"))

    def members(self) -> list[Member]:
        """Every member slot in index order (removed members have active=False)."""
        addrs, peer_ids, names, active = self._call("allMembers")
        out = []
        for i, (a, p, n, act) in enumerate(zip(addrs, peer_ids, names, active)):
            a = to_checksum_address(a)
            self._index[a], self._slot[i] = i, a
            out.append(Member(address=a, peer_id=p, name=n, active=act, index=i))
        return out

    def _commit_events(self, task_id: int, round: int) -> list[Any]:
        """Commits to `round`: Committed events, and CommittedAndVoted events that vote on round - 1."""
        return self._logs.round_logs(task_id, round).commits

    def commitments(self, task_id: int, round: int) -> dict[str, str]:
        """{member: digest ("0x" + 64 lowercase hex)} committed in a round, in commit order (from events)."""
        return self._digests(self._commit_events(task_id, round))

    def round_opening_block(self, task_id: int, round: int) -> str | None:
        """Hash ("0x" + 64 hex) of the block holding the round's first commit; None while nobody
        committed. Public, and fixed once the round opens (partner draws are seeded with it)."""
        events = self._commit_events(task_id, round)
        return _hex(events[0]["blockHash"]) if events else None

    def epsilons(self, task_id: int, round: int) -> dict[str, float]:
        """{member: cumulative epsilon} each committer of a round reported with its commit (from events)."""
        return {ev["args"]["member"]: ev["args"]["epsilonMilli"] / 1000 for ev in self._commit_events(task_id, round)}

    def epsilon_of(self, task_id: int, member: str) -> float:
        """The cumulative epsilon `member` last reported in the task (0: none)."""
        return int(self._call("epsilonOf", task_id, to_checksum_address(member))) / 1000

    def commitment(self, task_id: int, round: int, member: str) -> str | None:
        """The digest `member` committed in a round, or None (from events)."""
        return self.commitments(task_id, round).get(to_checksum_address(member))

    def committers(self, task_id: int, round: int) -> list[str]:
        """Addresses that committed in a round, in slot order."""
        return list(self.round_state(task_id, round).committers)

    def votes(self, task_id: int, round: int) -> list[Vote]:
        """The round's votes, in chain order (from events)."""
        return self._votes(self._logs.round_logs(task_id, round).votes)

    def _votes(self, events: Sequence[Any]) -> list[Vote]:
        return [vote_from_event(ev, self.address_of) for ev in events]

    @staticmethod
    def _digests(commits: Sequence[Any]) -> dict[str, str]:
        return {ev["args"]["member"]: _hex(ev["args"]["digest"]) for ev in commits}

    def model_attestations(self, task_id: int, round: int, model: str) -> int:
        """How many of the round's committers voted with `model` ("0x" + 64 hex) as their merged model."""
        wanted = _hex(_hex32(model))
        logs = self._logs.round_logs(task_id, round)
        committers = set(self._digests(logs.commits))
        return sum(1 for v in self._votes(logs.votes) if v.voter in committers and v.model == wanted)

    def outcome(self, task_id: int, round: int) -> RoundOutcome | None:
        """How the round was finalized (from its RoundFinalized event), or None while it is open."""
        logs = self._logs.round_logs(task_id, round)
        if not logs.finalized:
            return None
        return outcome_from_event(logs.finalized[0]["args"], list(self._digests(logs.commits)), self.address_of)

    def round_state(self, task_id: int, round: int) -> RoundState:
        """Committers, voters, finalized flag, deadline and outcome of a round.

        Recent rounds come from the contract's round words; a round whose words were recycled
        (older than the contract's ring) is rebuilt from its events. A finalized round takes no
        more commits or votes, so its state is kept once read and never read again.
        """
        if (task_id, round) in self._final:
            return self._final[task_id, round]
        committed, voted, start, deadline, finalized, _max_votes, retained = self._call("roundInfo", task_id, round)
        if retained:
            committers, scored = self._addresses(committed), self._addresses(voted)
        else:
            commits = self._commit_events(task_id, round)
            committers = tuple(sorted((ev["args"]["member"] for ev in commits), key=self.member_index))
            voters = {v.voter for v in self.votes(task_id, round)}
            scored = tuple(m for m in committers if m in voters)
            start = self.w3.eth.get_block(commits[0]["blockNumber"])["timestamp"] if commits else 0
            deadline = start + self._terms(task_id).round_duration if commits else 0
            finalized = True  # the contract recycles only finalized rounds
        outcome = self.outcome(task_id, round) if finalized else None
        state = RoundState(committers, scored, bool(finalized), int(deadline), int(start), outcome)
        if finalized:
            self._final[task_id, round] = state
        return state

    def contribution(self, task_id: int, member: str) -> int:
        """A member's accumulated contribution (sum of its round credits)."""
        return int(self._call("contribution", task_id, to_checksum_address(member)))

    def total_contribution(self, task_id: int) -> int:
        """Sum of all members' contributions in the task."""
        return self.task(task_id).total_contribution

    def pool(self, task_id: int) -> int:
        """Wei in the task's pool (funding plus slashed stake)."""
        return self.task(task_id).pool

    def received(self, task_id: int) -> int:
        """Wei the task received for its members: pool plus revenue."""
        return int(self._call("received", task_id))

    def owed(self, task_id: int, member: str) -> int:
        """Wei `member` can withdraw now (0 before close)."""
        return int(self._call("owed", task_id, to_checksum_address(member)))

    def withdrawn(self, task_id: int, member: str) -> int:
        """Wei `member` has withdrawn from the task so far."""
        return int(self._call("withdrawn", task_id, to_checksum_address(member)))

    def bonded(self, task_id: int, member: str) -> bool:
        """Whether `member` bonded the task's stake (it stays true after slashes and reclaim)."""
        return bool(self._call("stakeOf", task_id, to_checksum_address(member))[0])

    def stake_of(self, task_id: int, member: str) -> int:
        """Wei left of `member`'s bond in the task (0 if it never bonded or reclaimed it)."""
        return int(self._call("stakeOf", task_id, to_checksum_address(member))[1])

    def offences(self, task_id: int, member: str) -> int:
        """How many times `member` was slashed in the task."""
        return int(self._call("stakeOf", task_id, to_checksum_address(member))[2])

    def reputation(self, member: str, block: int | str = "latest") -> Reputation:
        """`member`'s reputation across closed tasks (10000 = average; new members 10000), as of
        `block`."""
        return Reputation(*(int(x) for x in self._call("reputation", to_checksum_address(member), block=block)))

    def task_created_block(self, task_id: int) -> int:
        """The block whose transaction created the task: state read there is the same for every
        node, whenever it joins (reputations change when other tasks close)."""
        latest = self.w3.eth.block_number
        decoder = self.contract.events.TaskCreated()
        topics = ["0x" + event_abi_to_log_topic(decoder.abi).hex(), "0x" + task_id.to_bytes(32, "big").hex()]
        logs = get_logs(self.w3, self.address, deploy_block(self.w3, self.address, latest), latest, topics)
        if not logs:
            raise LedgerError(error="UnknownTask", values={"taskId": task_id})
        return int(logs[0]["blockNumber"])

    def funded(self, task_id: int, sponsor: str) -> int:
        """Wei `sponsor` put into the task (still refundable if nobody earned anything)."""
        return int(self._call("funded", task_id, to_checksum_address(sponsor)))

    def task(self, task_id: int) -> TaskInfo:
        """A task's parameters and accounts."""
        q, dur, pool, revenue, total, closed, paid, dust_claimed, model = self._call("taskInfo", task_id)
        stake, slash, referee, validation, _slashed, exchange = self._call("taskTerms", task_id)
        unclaimed, _claimed = self._call("dust", task_id)
        info = TaskInfo(task_id, q, model, dur, pool, total, closed, unclaimed, paid, dust_claimed, stake, slash,
                        None if int(referee, 16) == 0 else to_checksum_address(referee),
                        None if validation == bytes(32) else _hex(validation), revenue,
                        PrivacyTerms.decode(self._call("privacyTerms", task_id)), ExchangeTerms.decode(exchange))
        self._tasks[task_id] = info
        return info

    def _terms(self, task_id: int) -> TaskInfo:
        """The task's info as last read: only its fixed terms (quorum, duration, stake, referee) are used."""
        return self._tasks.get(task_id) or self.task(task_id)


@dataclass(frozen=True)
class _RoundLogs:
    """A round's events as one read of the chain saw them, each list in chain order."""

    commits: list[Any]  # Committed events, and CommittedAndVoted events that vote on round - 1
    votes: list[Any]  # Voted events, and CommittedAndVoted events whose vote is on the round
    finalized: list[Any]  # its RoundFinalized event, once finalized


ROUND_EVENTS = ("Committed", "Voted", "CommittedAndVoted", "RoundFinalized")


class _LogCache:
    """A task's per-round ledger events (Committed, Voted, CommittedAndVoted, RoundFinalized).

    Each task is scanned once from the deploy block, with one log query for the four event
    types (filtered by their signatures and the indexed task topic), and then only over the
    blocks mined since; events are kept by type and indexed round topic. So a read costs one
    block-number query, plus one small log query when blocks were mined since the last read,
    whatever the length of the chain. Every read asks for the chain's height first: an event
    mined between two reads is in the second.
    """

    def __init__(self, w3: Web3, address: str, contract: Any):
        self.w3, self.address = w3, address
        self._first: int | None = None
        self._decoders: dict[bytes, tuple[str, Any]] = {}
        for name in ROUND_EVENTS:
            decoder = getattr(contract.events, name)()
            self._decoders[bytes(event_abi_to_log_topic(decoder.abi))] = (name, decoder)
        self._seen: dict[int, tuple[int, dict[tuple[str, int], list[Any]]]] = {}
        self._lock = threading.Lock()

    def round_logs(self, task_id: int, round: int) -> _RoundLogs:
        """Round `round`'s events of task `task_id`, read at the chain's current height."""
        with self._lock:
            found = self._refresh(task_id)

            def of(*keys: tuple[str, int]) -> list[Any]:
                return sorted((ev for key in keys for ev in found.get(key, ())), key=chain_order)

            return _RoundLogs(commits=of(("Committed", round), ("CommittedAndVoted", round - 1)),
                              votes=of(("Voted", round), ("CommittedAndVoted", round)),
                              finalized=of(("RoundFinalized", round)))

    def _refresh(self, task_id: int) -> dict[tuple[str, int], list[Any]]:
        latest = self.w3.eth.block_number
        if latest < max((scanned for scanned, _ in self._seen.values()), default=latest):
            # The chain forgot blocks it had reported (a dev chain restarted from an older state
            # file): the events read from them and the nonces counted from them may be gone.
            logger.warning("the chain is back at block %d, below blocks already read: reading its logs "
                           "and nonces again", latest)
            self._seen.clear()
            send_book(self.w3).forget_all()
        if self._first is None:
            self._first = deploy_block(self.w3, self.address, latest)
        scanned, found = self._seen.get(task_id, (self._first - 1, {}))
        if latest > scanned:
            topics = [["0x" + t.hex() for t in self._decoders], "0x" + task_id.to_bytes(32, "big").hex()]
            for log in get_logs(self.w3, self.address, scanned + 1, latest, topics):
                name, decoder = self._decoders[bytes(log["topics"][0])]
                ev = decoder.process_log(log)
                found.setdefault((name, ev["args"]["round"]), []).append(ev)
            self._seen[task_id] = (latest, found)
        return found
