"""Typed client for the MedSwarmLedger contract: one method per contract function.

Each member signs its own transactions locally with its own key and nonce. Sends through one
Web3 connection are serialised by that connection's lock (see incentive.chain.send_lock), so a
Ledger may be used from several threads. A revert, whether at gas estimation, in a call or in
a mined transaction, raises the LedgerError subclass named after the contract's custom error
(incentive.errors), identically on eth-tester and on any JSON-RPC node.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Sequence

from eth_account.signers.local import LocalAccount
from eth_utils import is_hex, to_checksum_address
from web3 import Web3
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from incentive.artifacts import Artifact, ledger_artifact
from incentive.chain import is_eth_tester, send_lock
from incentive.errors import LedgerError, UnknownMember, UnknownRevert, decode_revert

logger = logging.getLogger(__name__)

GAS_MARGIN = 1.25


@dataclass(frozen=True)
class Member:
    """A member node as registered on the ledger."""

    address: str
    peer_id: str
    name: str
    active: bool
    index: int = -1  # slot index on chain (bit position in round masks)


@dataclass(frozen=True)
class RoundState:
    """One task round: who committed, who scored, whether it is finalized, and its deadline."""

    committers: tuple[str, ...]
    scored: tuple[str, ...]
    finalized: bool
    deadline: int  # unix seconds; 0 until the round's first commit
    start: int = 0  # timestamp of the first commit


@dataclass(frozen=True)
class TaskInfo:
    """A task's parameters and accounts."""

    task_id: int
    quorum: int
    model_id: str
    round_duration: int
    pool: int
    total_contribution: int
    closed: bool
    dust: int
    paid: int
    dust_claimed: bool


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


def pack_scores(indices: Sequence[int], scores: Sequence[int]) -> list[int]:
    """Pack (slot index, score) pairs as the contract expects: lane p of word p // 16 = score + 1."""
    if len(indices) != len(scores):
        raise ValueError(f"{len(indices)} peers but {len(scores)} scores")
    words = [0, 0, 0, 0]
    seen: set[int] = set()
    for p, s in zip(indices, scores):
        if not 0 <= p < 64:
            raise ValueError(f"slot index {p} out of range")
        if p in seen:
            raise ValueError(f"peer slot {p} scored twice")
        if not 0 <= int(s) < 0xFFFF:
            raise ValueError(f"score {s} does not fit in 16 bits")
        seen.add(p)
        words[p >> 4] |= (int(s) + 1) << ((p & 15) * 16)
    while words and words[-1] == 0:
        words.pop()
    return words


def unpack_scores(rows: Sequence[int]) -> dict[int, int]:
    """Inverse of pack_scores: {slot index: score}."""
    out = {}
    for k, word in enumerate(rows):
        for lane in range(16):
            v = (int(word) >> (16 * lane)) & 0xFFFF
            if v:
                out[16 * k + lane] = v - 1
    return out


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
    between threads of one process.
    """
    with send_lock(w3):
        params: dict[str, Any] = {
            "from": account.address,
            "value": value,
            "nonce": w3.eth.get_transaction_count(account.address, "pending"),
            "chainId": w3.eth.chain_id,
        }
        try:
            if call is not None:
                estimate = call.estimate_gas(params)
                params["gas"] = int(estimate * GAS_MARGIN) + 10_000
                tx = call.build_transaction(params)
            else:
                tx = {**params, **(data or {})}
                tx["gas"] = int(w3.eth.estimate_gas({k: v for k, v in tx.items() if k != "nonce"}) * GAS_MARGIN)
                tx.setdefault("maxFeePerGas", w3.eth.gas_price * 2 + w3.eth.max_priority_fee)
                tx.setdefault("maxPriorityFeePerGas", w3.eth.max_priority_fee)
        except Exception as exc:
            err = decode_revert(exc, extra_abi)
            if err is None:
                raise
            raise err from None
        signed = account.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
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
        self.log = logging.LoggerAdapter(logger, {"node": name})
        self._in_process = is_eth_tester(w3)

    def with_account(self, account: LocalAccount, *, name: str = "") -> "Ledger":
        """The same ledger seen by another account (shares the connection and its lock)."""
        other = Ledger(self.w3, self.address, account, name=name)
        other._index, other._slot = self._index, self._slot  # slot indices never change
        return other

    # ------------------------------------------------------------------ plumbing
    def transact(self, function: str, *args: Any, value: int = 0) -> TxReceipt:
        """Low-level: send `function(*args)` signed by this ledger's account; returns the receipt."""
        if self.account is None:
            raise PermissionError("read-only Ledger: pass an account to send transactions")
        receipt = transact(self.w3, self.account, getattr(self.contract.functions, function)(*args), value=value)
        self.log.debug("%s%s mined in block %d (gas %d)", function, args, receipt["blockNumber"], receipt["gasUsed"])
        return receipt

    def _call(self, function: str, *args: Any) -> Any:
        # eth-tester runs the EVM in this process and is not thread-safe: serialise calls too.
        lock = send_lock(self.w3) if self._in_process else contextlib.nullcontext()
        try:
            with lock:
                return getattr(self.contract.functions, function)(*args).call()
        except Exception as exc:
            err = decode_revert(exc)
            if err is None:
                raise
            raise err from None

    def _event(self, receipt: TxReceipt, event: str) -> Any:
        logs = getattr(self.contract.events, event)().process_receipt(receipt)
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

    def _addresses(self, mask: int) -> tuple[str, ...]:
        out = []
        for j in range(64):
            if mask >> j & 1:
                if j not in self._slot:
                    self._slot[j] = to_checksum_address(self._call("memberAt", j))
                    self._index[self._slot[j]] = j
                out.append(self._slot[j])
        return tuple(out)

    # ------------------------------------------------------------------ admin
    def register_member(self, address: str, peer_id: str, name: str) -> None:
        """Register (or reactivate) a member node."""
        self.transact("registerMember", to_checksum_address(address), peer_id, name)

    def remove_member(self, address: str) -> None:
        """Deactivate a member."""
        self.transact("removeMember", to_checksum_address(address))

    def create_task(self, *, quorum: int, model_id: str, round_duration: int) -> int:
        """Create a task; returns its id."""
        receipt = self.transact("createTask", quorum, model_id, round_duration)
        return int(self._event(receipt, "TaskCreated")["taskId"])

    def close_task(self, task_id: int) -> None:
        """Close a task (admin): payouts and dust become fixed."""
        self.transact("closeTask", task_id)

    def claim_dust(self, task_id: int) -> int:
        """Admin claims the task's rounding dust; returns wei paid."""
        return int(self._event(self.transact("claimDust", task_id), "DustClaimed")["amount"])

    # ------------------------------------------------------------------ anyone
    def fund(self, task_id: int, wei: int) -> None:
        """Add `wei` from this account to the task's pool."""
        self.transact("fund", task_id, value=wei)

    def finalize(self, task_id: int, round: int) -> None:
        """Finalize a round (anyone, once every committer scored or after the deadline)."""
        self.transact("finalize", task_id, round)

    def refund(self, task_id: int) -> int:
        """Sponsor reclaims its funding from a closed task in which nobody earned anything."""
        return int(self._event(self.transact("refund", task_id), "Refunded")["amount"])

    # ------------------------------------------------------------------ members
    def commit(self, task_id: int, round: int, digest: str) -> None:
        """Commit the digest ("0x" + 64 hex) of this member's update for `round`."""
        self.transact("commit", task_id, round, _hex32(digest))

    def submit_scores(
        self, task_id: int, round: int, peers: Sequence[str], scores: Sequence[int], model: str | None = None
    ) -> None:
        """Score committed peers (addresses) with 0..10000 each (possibly none), and attest `model`
        ("0x" + 64 hex: the merged model held after `round`; None: no attestation)."""
        rows = pack_scores([self.member_index(p) for p in peers], scores)
        self.transact("submitScores", task_id, round, _model32(model), rows)

    def commit_and_score(
        self,
        task_id: int,
        round: int,
        digest: str,
        score_round: int,
        peers: Sequence[str],
        scores: Sequence[int],
        model: str | None = None,
    ) -> None:
        """One transaction: commit `digest` for `round`, score peers of `score_round` (usually round - 1)
        and attest `model`, the merged model held after `score_round` (None: no attestation)."""
        rows = pack_scores([self.member_index(p) for p in peers], scores)
        self.transact("commitAndScore", task_id, round, _hex32(digest), score_round, _model32(model), rows)

    def withdraw(self, task_id: int) -> int:
        """Withdraw this member's payout from a closed task; returns wei paid."""
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

    def commitment(self, task_id: int, round: int, member: str) -> str | None:
        """The digest `member` committed ("0x" + 64 lowercase hex), or None."""
        raw = self._call("commitment", task_id, round, to_checksum_address(member))
        return None if raw == bytes(32) else "0x" + raw.hex()

    def committers(self, task_id: int, round: int) -> list[str]:
        """Addresses that committed in a round, in slot order."""
        return list(self.round_state(task_id, round).committers)

    def round_state(self, task_id: int, round: int) -> RoundState:
        """Committers, scorers, finalized flag and deadline of a round."""
        committed, scored, start, deadline, finalized = self._call("roundInfo", task_id, round)
        return RoundState(self._addresses(committed), self._addresses(scored), bool(finalized), int(deadline), int(start))

    def score(self, task_id: int, round: int, scorer: str, peer: str) -> int | None:
        """The score `scorer` gave `peer` in a round, or None."""
        given, value = self._call("scoreOf", task_id, round, self.member_index(scorer), self.member_index(peer))
        return int(value) if given else None

    def model_attestations(self, task_id: int, round: int, model: str) -> int:
        """How many of the round's committers attested `model` ("0x" + 64 hex) as their merged model."""
        return int(self._call("modelAttestations", task_id, round, _hex32(model)))

    def contribution(self, task_id: int, member: str) -> int:
        """A member's accumulated contribution (sum of its round credits)."""
        return int(self._call("contribution", task_id, to_checksum_address(member)))

    def total_contribution(self, task_id: int) -> int:
        """Sum of all members' contributions in the task."""
        return self.task(task_id).total_contribution

    def pool(self, task_id: int) -> int:
        """Wei funded into the task's pool."""
        return self.task(task_id).pool

    def owed(self, task_id: int, member: str) -> int:
        """Wei `member` can withdraw now (0 before close and after withdrawing)."""
        return int(self._call("owed", task_id, to_checksum_address(member)))

    def withdrawn(self, task_id: int, member: str) -> bool:
        """Whether `member` already withdrew."""
        return bool(self._call("withdrawn", task_id, to_checksum_address(member)))

    def funded(self, task_id: int, sponsor: str) -> int:
        """Wei `sponsor` put into the task (still refundable if nobody earned anything)."""
        return int(self._call("funded", task_id, to_checksum_address(sponsor)))

    def task(self, task_id: int) -> TaskInfo:
        """A task's parameters and accounts."""
        q, dur, pool, total, closed, dust, paid, dust_claimed, model = self._call("taskInfo", task_id)
        return TaskInfo(task_id, q, model, dur, pool, total, closed, dust, paid, dust_claimed)
