"""Contract reverts as Python exceptions named after the contract's custom errors.

`decode_revert` turns a revert from either backend into a `LedgerError` subclass:
eth-tester raises `eth_tester.exceptions.TransactionFailed` whose message holds the raw
revert bytes, anvil (any JSON-RPC node) raises `web3.exceptions.ContractCustomError`
(or `ContractLogicError`) with hex data. Both become, e.g., `NotMember(error="NotMember",
values={"caller": "0x.."})`. One subclass per custom error in the ledger ABI is created
at import time and exported from this module (`from incentive.errors import NotMember`).
"""

from __future__ import annotations

import ast
import re
from typing import Any, Iterable

from eth_abi import decode as abi_decode
from eth_utils import function_abi_to_4byte_selector, to_checksum_address

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


def _selector_table(abi: Iterable[dict[str, Any]]) -> dict[bytes, dict[str, Any]]:
    return {function_abi_to_4byte_selector(e): e for e in abi if e.get("type") == "error"}


_LEDGER_ERRORS = _selector_table(ledger_artifact().abi)
ERROR_CLASSES: dict[str, type[LedgerError]] = {}
for _entry in _LEDGER_ERRORS.values():
    _cls = type(_entry["name"], (LedgerError,), {"error": _entry["name"], "__doc__": f"Contract error {_entry['name']}."})
    _cls.__module__ = __name__
    ERROR_CLASSES[_entry["name"]] = _cls
    globals()[_entry["name"]] = _cls
__all__ = ["LedgerError", "UnknownRevert", "ErrorString", "Panic", "decode_revert", "revert_data", *ERROR_CLASSES]

_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")
_BYTES_LITERAL = re.compile(r"""b(['"]).*\1""", re.S)
_HEX = re.compile(r"0x[0-9a-fA-F]{8,}")


def revert_data(exc: BaseException) -> bytes | None:
    """Raw revert bytes carried by an exception from eth-tester or a JSON-RPC node, if any."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str) and data.startswith("0x"):
        return bytes.fromhex(data[2:])
    text = " ".join(str(a) for a in exc.args) if exc.args else str(exc)
    m = _BYTES_LITERAL.search(text)
    if m:
        try:
            value = ast.literal_eval(m.group(0))
            if isinstance(value, bytes):
                return value
        except (ValueError, SyntaxError):
            pass
    m = _HEX.search(text)
    if m:
        return bytes.fromhex(m.group(0)[2:] if len(m.group(0)) % 2 == 0 else m.group(0)[2:-1])
    return None


def _normalise(value: Any, typ: str) -> Any:
    if typ == "address":
        return to_checksum_address(value)
    if typ.startswith("bytes") and isinstance(value, bytes):
        return "0x" + value.hex()
    return value


def decode_data(data: bytes | None, abi: Iterable[dict[str, Any]] | None = None) -> LedgerError:
    """Map revert bytes to the matching LedgerError subclass (ledger ABI plus optional extra ABI)."""
    if not data or len(data) < 4:
        return UnknownRevert("revert without data", error="UnknownRevert")
    sel, body = data[:4], data[4:]
    if sel == _ERROR_STRING:
        return ErrorString(abi_decode(["string"], body)[0], values={"reason": abi_decode(["string"], body)[0]})
    if sel == _PANIC:
        return Panic(values={"code": abi_decode(["uint256"], body)[0]})
    table = dict(_LEDGER_ERRORS)
    if abi is not None:
        table.update(_selector_table(abi))
    entry = table.get(sel)
    if entry is None:
        return UnknownRevert(f"unknown revert data 0x{data.hex()}", values={"data": "0x" + data.hex()})
    types = [i["type"] for i in entry["inputs"]]
    decoded = abi_decode(types, body) if types else ()
    values = {i["name"]: _normalise(v, i["type"]) for i, v in zip(entry["inputs"], decoded)}
    cls = ERROR_CLASSES.get(entry["name"])
    if cls is None:
        cls = type(entry["name"], (LedgerError,), {"error": entry["name"]})
    return cls(values=values)


def decode_revert(exc: BaseException, abi: Iterable[dict[str, Any]] | None = None) -> LedgerError | None:
    """The LedgerError for a revert exception, or None if `exc` is not a contract revert."""
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

    if not isinstance(exc, (TransactionFailed, ContractCustomError, ContractLogicError, ContractPanicError)):
        return None
    return decode_data(revert_data(exc), abi)
