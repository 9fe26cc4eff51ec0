"""incentive.errors: one class per custom error of the ABI, and one decoding path for both backends."""

from __future__ import annotations

import inspect

import pytest
from eth_abi import encode as abi_encode
from eth_tester.exceptions import TransactionFailed
from eth_utils import keccak
from web3.exceptions import ContractCustomError, ContractLogicError, ContractPanicError

from incentive import errors
from incentive.artifacts import ledger_artifact

ABI_ERRORS = {e["name"] for e in ledger_artifact().abi if e["type"] == "error"}
MODULE_ERRORS = {
    name for name, obj in vars(errors).items()
    if inspect.isclass(obj) and issubclass(obj, errors.ContractError) and obj is not errors.ContractError
}


def test_every_abi_error_has_a_class():
    assert sorted(ABI_ERRORS - MODULE_ERRORS) == [], "add a class to incentive/errors.py"


def test_every_class_is_an_abi_error():
    assert sorted(MODULE_ERRORS - ABI_ERRORS) == [], "the contract no longer raises these"
    assert set(errors.ERROR_CLASSES) == MODULE_ERRORS


@pytest.mark.parametrize("name", sorted(MODULE_ERRORS))
def test_class_names_its_error_and_says_when(name):
    cls = errors.ERROR_CLASSES[name]
    assert cls.error == name and cls.__doc__ and cls.__doc__ != errors.ContractError.__doc__


def _already_finalized() -> bytes:
    return keccak(b"AlreadyFinalized(uint256,uint256)")[:4] + abi_encode(["uint256", "uint256"], [7, 3])


@pytest.mark.parametrize("exc", [
    TransactionFailed(f"execution reverted: {_already_finalized()!r}"),  # as web3's eth-tester provider raises it
    ContractCustomError("0x" + _already_finalized().hex(), data="0x" + _already_finalized().hex()),  # anvil
    ContractLogicError("execution reverted", data={"data": "0x" + _already_finalized().hex()}),
], ids=["eth-tester", "json-rpc", "json-rpc-nested"])
def test_both_backends_decode_alike(exc):
    assert errors.revert_data(exc) == _already_finalized()
    err = errors.decode_revert(exc)
    assert type(err) is errors.AlreadyFinalized
    assert err.error == "AlreadyFinalized" and err.values == {"taskId": 7, "round": 3}
    assert str(err) == "AlreadyFinalized(taskId=7, round=3)"


def test_reverts_without_data_and_other_exceptions():
    for exc in (TransactionFailed("execution reverted: Out of gas"), ContractLogicError("execution reverted")):
        assert type(errors.decode_revert(exc)) is errors.UnknownRevert
    panic = bytes.fromhex("4e487b71") + abi_encode(["uint256"], [0x11])
    assert errors.decode_revert(ContractPanicError("overflow", data="0x" + panic.hex())).values == {"code": 0x11}
    reason = bytes.fromhex("08c379a0") + abi_encode(["string"], ["no thanks"])
    assert errors.decode_revert(ContractLogicError("no thanks", data="0x" + reason.hex())).values == {"reason": "no thanks"}
    assert errors.decode_revert(ValueError("not a revert")) is None
