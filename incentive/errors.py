"""Contract reverts as Python exceptions, one class per custom error of MedSwarmLedger.

`decode_revert` turns a revert from either backend into a `LedgerError`: `revert_data` pulls
the raw revert bytes out of the backend's exception, `decode_data` decodes them against the
ledger ABI. So `NotMember(address caller)` in Solidity arrives as `NotMember` with
`.error == "NotMember"` and `.values == {"caller": "0x.."}`, on eth-tester and anvil alike.
tests/incentive/test_ledger_errors.py fails when these classes and the ABI's errors drift apart.
"""

from __future__ import annotations

import ast
import sys
from typing import Any, Iterable

from eth_abi import decode as abi_decode
from eth_utils import function_abi_to_4byte_selector, to_checksum_address
from web3.exceptions import ContractLogicError

from incentive.artifacts import ledger_artifact


class LedgerError(Exception):
    """A contract call reverted. `error` names the custom error ("NotMember"); `values` its arguments."""

    error: str = "LedgerError"

    def __init__(self, message: str = "", *, error: str | None = None, values: dict[str, Any] | None = None):
        super().__init__(message or (error or self.error))
        if error is not None:
            self.error = error
        self.values: dict[str, Any] = dict(values or {})

    def __str__(self) -> str:
        if not self.values:
            return self.error
        inner = ", ".join(f"{k}={v}" for k, v in self.values.items())
        return f"{self.error}({inner})"


class UnknownRevert(LedgerError):
    """A revert whose data matches no custom error of the ABI (or carries no data)."""

    error = "UnknownRevert"


class ErrorString(LedgerError):
    """A revert with a plain `Error(string)` reason."""

    error = "Error"


class Panic(LedgerError):
    """A Solidity panic (`Panic(uint256)`): assertion, overflow, division by zero..."""

    error = "Panic"


class ContractError(LedgerError):
    """A custom error of MedSwarmLedger; the subclass's name is the error's name."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.error = cls.__name__


# ---------------------------------------------------------------- access
class NotAdmin(ContractError):
    """An admin-only function (members, tasks, close, dust) was called by another account."""


class NotMember(ContractError):
    """The caller of commit, vote, commitAndVote or bond is not an active member."""


class AlreadyMember(ContractError):
    """registerMember was called for an address that is already an active member."""


class UnknownMember(ContractError):
    """removeMember was called for an address that is not an active member."""


class TooManyMembers(ContractError):
    """registerMember was called for a new address with all 64 member slots taken."""


class ZeroAddress(ContractError):
    """registerMember was called with the zero address."""


class EmptyPeerId(ContractError):
    """registerMember was called with an empty libp2p peer id."""


# ---------------------------------------------------------------- tasks
class InvalidQuorum(ContractError):
    """createTask was called with a quorum of 0 or above 64."""


class InvalidRoundDuration(ContractError):
    """createTask was called with a round duration of 0 seconds."""


class InvalidSlash(ContractError):
    """createTask was called with a slash above the stake."""


class UnknownTask(ContractError):
    """No task has the id given."""


class TaskAlreadyClosed(ContractError):
    """The task is closed: commits, votes, bonds, funding, finalizing and closing are refused."""


class TaskNotClosed(ContractError):
    """withdraw, payRevenue, claimDust, refund or reclaimStake was called before the task closed."""


class ZeroAmount(ContractError):
    """fund or payRevenue was called without ETH."""


# ---------------------------------------------------------------- stake
class NoStake(ContractError):
    """bond on a task without stake."""


class WrongStake(ContractError):
    """bond sent a value other than the task's stake."""


class AlreadyBonded(ContractError):
    """The member already bonded for this task."""


class NotBonded(ContractError):
    """A commit to a staked task by a member that has not bonded."""


class NothingToReclaim(ContractError):
    """reclaimStake by an account with no bond left in the task (never bonded, slashed to zero, or reclaimed)."""


# ---------------------------------------------------------------- rounds
class InvalidRound(ContractError):
    """A commit for round 0 (rounds are numbered from 1)."""


class RoundNotOpen(ContractError):
    """A commit to a round whose previous round has fewer than `quorum` committers."""


class RoundsPending(ContractError):
    """A round would recycle the round word of an older round that is not finalized yet."""


class ZeroDigest(ContractError):
    """A commit with the zero digest."""


class AlreadyCommitted(ContractError):
    """The member already committed in this round."""


class RoundExpired(ContractError):
    """A commit after the round's deadline (first commit + round duration)."""


class AlreadyFinalized(ContractError):
    """A commit, vote or finalize for a round that is already finalized (or recycled)."""


class NotCommitted(ContractError):
    """A vote from a member that did not commit in the round (and is not the task's referee)."""


class PeerNotCommitted(ContractError):
    """A vote gave a lane to a slot that did not commit in the round."""


class AlreadyVoted(ContractError):
    """The voter already voted in this round."""


class TooManyRows(ContractError):
    """More than 4 packed vote words (64 slots) were sent."""


class ScoreOutOfRange(ContractError):
    """A lane above 10001 (score 10000) that is not FLAGGED."""


class RoundNotStarted(ContractError):
    """finalize or vote for a round nobody committed in."""


class FinalizeTooEarly(ContractError):
    """finalize before the voting window closed (deadline + one round duration) while a committer (or the task's referee) has not voted, or the quorum is not met."""


class NotWinningVote(ContractError):
    """finalize was given a vector other than the round's winner (the referee's, or a strict majority's)."""


class ContributionOverflow(ContractError):
    """A member's contribution would pass 2**32 - 1."""


# ---------------------------------------------------------------- payouts
class NoContribution(ContractError):
    """payRevenue on a task in which nobody earned a contribution."""


class NothingOwed(ContractError):
    """withdraw by an account with nothing to withdraw now (no contribution, or all of it taken)."""


class NoDust(ContractError):
    """claimDust on a task with no unclaimed dust."""


class NothingToRefund(ContractError):
    """refund when somebody earned a contribution, or the caller funded nothing (or got it back)."""


class TransferFailed(ContractError):
    """Sending ETH failed because the receiver reverted; the amount stays claimable."""


class Reentrancy(ContractError):
    """A function that sends ETH was re-entered."""


class PrivacyBudgetExceeded(ContractError):
    """A commit reported a cumulative epsilon beyond the task's privacy budget."""


class EpsilonDecreased(ContractError):
    """A commit reported a cumulative epsilon below the member's previous one."""


class InvalidPrivacyTerms(ContractError):
    """Privacy terms out of range (delta >= 1, an unknown accountant, or DP parameters without a budget)."""


class InvalidExchangeTerms(ContractError):
    """Exchange terms out of range (an unknown codec, a sparse codec without a kept share, a dense one
    with a share, or 64 partners or more)."""


ERROR_CLASSES: dict[str, type[ContractError]] = {cls.error: cls for cls in ContractError.__subclasses__()}

_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")
# web3's eth-tester provider reports a revert as this prefix plus the Python literal of its bytes.
_ETH_TESTER_PREFIX = "execution reverted: "


def _selector_table(abi: Iterable[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    return {function_abi_to_4byte_selector(e): e for e in abi if e.get("type") == "error"}


_LEDGER_ERRORS = _selector_table(ledger_artifact().abi)


def _revert_types() -> tuple[type[BaseException], ...]:
    """The exception types a revert arrives as. eth-tester's is looked up, not imported: a node
    on anvil never loads eth-tester (a tenth of its start-up imports), and no exception can be an
    instance of a class whose module was never loaded."""
    tester = sys.modules.get("eth_tester.exceptions")
    failed = getattr(tester, "TransactionFailed", None)
    return (ContractLogicError,) if failed is None else (ContractLogicError, failed)


def revert_data(exc: BaseException) -> bytes:
    """The raw revert bytes a failed call carries, from either backend (empty if it has none).

    A JSON-RPC node (anvil) gives them as hex in `data` (some nodes nest it as {"data": hex}).
    eth-tester's provider keeps only a message; for a revert with data the message ends in the
    bytes literal, while an `Error(string)` reason or an EVM fault arrives as plain text, which
    holds no revert data to decode.
    """
    if isinstance(exc, ContractLogicError):
        data = exc.data.get("data") if isinstance(exc.data, dict) else exc.data
        return bytes.fromhex(data[2:]) if isinstance(data, str) and data.startswith("0x") else b""
    message = str(exc.args[0]) if exc.args else ""
    if not message.startswith(_ETH_TESTER_PREFIX):
        return b""
    try:
        value = ast.literal_eval(message[len(_ETH_TESTER_PREFIX):])
    except (ValueError, SyntaxError):
        return b""
    return value if isinstance(value, bytes) else b""


def _normalise(value: Any, typ: str) -> Any:
    if typ == "address":
        return to_checksum_address(value)
    if typ.startswith("bytes") and isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def decode_data(data: bytes, abi: Iterable[dict[str, Any]] | None = None) -> LedgerError:
    """Map revert bytes to their LedgerError (ledger ABI plus the errors of an optional extra ABI)."""
    if len(data) < 4:
        return UnknownRevert("revert without data", error="UnknownRevert")
    sel, body = data[:4], data[4:]
    if sel == _ERROR_STRING:
        (reason,) = abi_decode(["string"], body)
        return ErrorString(reason, values={"reason": reason})
    if sel == _PANIC:
        return Panic(values={"code": abi_decode(["uint256"], body)[0]})
    table = _LEDGER_ERRORS if abi is None else {**_LEDGER_ERRORS, **_selector_table(abi)}
    entry = table.get(sel)
    if entry is None:
        return UnknownRevert(f"unknown revert data 0x{data.hex()}", values={"data": "0x" + data.hex()})
    types = [i["type"] for i in entry["inputs"]]
    decoded = abi_decode(types, body) if types else ()
    values = {i["name"]: _normalise(v, i["type"]) for i, v in zip(entry["inputs"], decoded)}
    cls = ERROR_CLASSES.get(entry["name"])
    if cls is None:  # an error of the extra ABI only (e.g. a test contract's)
        return LedgerError(error=entry["name"], values=values)
    return cls(values=values)


def decode_revert(exc: BaseException, abi: Iterable[dict[str, Any]] | None = None) -> LedgerError | None:
    """The LedgerError for a revert exception, or None if `exc` is not a contract revert."""
    if not isinstance(exc, _revert_types()):
        return None
    return decode_data(revert_data(exc), abi)
