"""Connections to an Ethereum chain: in-process eth-tester or any JSON-RPC URL, plus dev helpers.

Every Web3 object made here carries one lock (see `send_lock`): transaction sends through the
same connection are serialised, which eth-tester (not thread-safe) requires. Under that lock,
each sender's next nonce is counted locally (`SendBook`): read from the chain once, then
advanced by each send, and read again after a send that failed; the fee caps are read at most
every FEE_SECONDS and again after the chain refuses them.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
import weakref
from typing import Any

from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint

logger = logging.getLogger(__name__)

ETH_TESTER = "eth-tester"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
_DEV_FUNDING_WEI = 10_000 * 10**18
FEE_SECONDS = 12.0  # how long fee caps read from the chain are reused (about one mainnet block)
_locks: "weakref.WeakKeyDictionary[Web3, threading.RLock]" = weakref.WeakKeyDictionary()
_nonces: "weakref.WeakKeyDictionary[Web3, SendBook]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


class ChainUnavailable(Exception):
    """The chain at the given URL cannot be reached (or is not an Ethereum JSON-RPC endpoint)."""


def connect(url: str, *, timeout: float = 30.0) -> Web3:
    """Connect to "eth-tester" (fresh in-process py-evm chain) or an http(s) JSON-RPC URL."""
    if url == ETH_TESTER:
        # eth-tester resets the process's warning filters to "default" when it picks its backend, and
        # the in-process swarm then printed a ResourceWarning per socket py-libp2p leaves at exit.
        with warnings.catch_warnings():
            w3 = Web3(EthereumTesterProvider())
    elif url.startswith(("http://", "https://")):
        # The chain id never changes under a connection, and web3 asks for it again around every
        # call and transaction (8 times a node round): answered from the provider's cache.
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": timeout}, cache_allowed_requests=True,
                                    cacheable_requests={RPCEndpoint("eth_chainId")}))
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:  # requests/aiohttp/JSON errors alike
            raise ChainUnavailable(f"cannot reach an Ethereum JSON-RPC endpoint at {url}: {exc}") from exc
        logger.info("connected to %s (chain id %d)", url, chain_id)
    else:
        raise ChainUnavailable(f"unsupported chain URL {url!r}: use 'eth-tester' or http(s)://host:port")
    send_lock(w3)
    return w3


def is_eth_tester(w3: Web3) -> bool:
    """True for the in-process eth-tester backend."""
    return isinstance(w3.provider, EthereumTesterProvider)


def send_lock(w3: Web3) -> threading.RLock:
    """The per-connection lock that serialises transaction sends."""
    with _locks_guard:
        lock = _locks.get(w3)
        if lock is None:
            lock = _locks[w3] = threading.RLock()
        return lock


class SendBook:
    """The next nonce of each account sending through one connection, and the fee caps, kept locally.

    A node is the only sender from its key, so after one `eth_getTransactionCount` the count
    only moves with its own sends: a transaction handed to the chain uses its nonce whether it
    then succeeds or reverts. Anything else (a send refused, a receipt that never came) may
    leave the chain's count elsewhere, so the account is read again on its next send (`forget`).
    The fee caps are web3's own rule (max fee twice the base fee plus the tip), which stays
    valid while the base fee less than doubles (six full blocks in a row); they are read again
    after FEE_SECONDS or when the chain refuses them (`forget_fees`).
    Use only under the connection's `send_lock`.
    """

    def __init__(self, w3: Web3) -> None:
        self._w3 = weakref.ref(w3)
        self._next: dict[str, int] = {}
        self._fees: dict[str, int] = {}
        self._fees_at = -math.inf

    def _chain(self) -> Web3:
        w3 = self._w3()
        assert w3 is not None, "the connection is gone"
        return w3

    def next(self, address: str) -> tuple[int, bool]:
        """(The nonce to send with, whether it came from the local count rather than the chain)."""
        if address in self._next:
            return self._next[address], True
        return self._chain().eth.get_transaction_count(address, "pending"), False

    def sent(self, address: str, nonce: int) -> None:
        """A transaction with `nonce` was accepted by the chain."""
        self._next[address] = nonce + 1

    def forget(self, address: str) -> None:
        """Read the account's nonce from the chain on its next send."""
        self._next.pop(address, None)

    def forget_all(self) -> None:
        """Read every account's nonce from the chain on its next send (the chain lost blocks)."""
        self._next.clear()

    def fees(self) -> tuple[dict[str, int], bool]:
        """(EIP-1559 fee caps for a transaction, whether they came from the local copy)."""
        if time.monotonic() - self._fees_at < FEE_SECONDS:
            return dict(self._fees), True
        w3 = self._chain()
        tip = w3.eth.max_priority_fee
        base = w3.eth.get_block("latest").get("baseFeePerGas", 0)
        self._fees, self._fees_at = {"maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}, time.monotonic()
        return dict(self._fees), False

    def forget_fees(self) -> None:
        """Read the fee caps from the chain for the next transaction."""
        self._fees_at = -math.inf


def send_book(w3: Web3) -> SendBook:
    """The connection's local nonce counts and fee caps (use under `send_lock(w3)`)."""
    with _locks_guard:
        book = _nonces.get(w3)
        if book is None:
            book = _nonces[w3] = SendBook(w3)
        return book


def _refused_for(exc: Exception, word: str) -> bool:
    """The chain refused a transaction before executing it, naming `word` ("nonce": anvil's
    "nonce too low/high", eth-tester's "Invalid transaction nonce"; "fee": "max fee per gas less
    than block base fee")."""
    return word in str(exc).lower()


def send_signed(w3: Web3, sender, tx: dict[str, Any], *, book_fees: bool = False) -> bytes:
    """Sign `tx` with `sender` at its next nonce (and, with `book_fees`, the connection's fee
    caps) and send it; returns the hash.

    Call under `send_lock(w3)`. A local nonce or fee cap the chain refuses (another connection
    sent from the same key; the base fee rose) is read again from the chain and the transaction
    sent once more.
    """
    book = send_book(w3)
    while True:
        nonce, local_nonce = book.next(sender.address)
        fees, local_fees = book.fees() if book_fees else ({}, False)
        signed = sender.sign_transaction({**tx, **fees, "nonce": nonce})
        try:
            tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        except Exception as exc:
            book.forget(sender.address)
            if local_nonce and _refused_for(exc, "nonce"):
                logger.info("nonce %d of %s refused by the chain; reading it again", nonce, sender.address)
                continue
            if local_fees and _refused_for(exc, "fee"):
                logger.info("fee caps %s refused by the chain; reading them again", fees)
                book.forget_fees()
                continue
            raise
        book.sent(sender.address, nonce)
        return tx_hash


def _builtin_dev_keys(w3: Web3) -> list[str]:
    if is_eth_tester(w3):
        return [k.to_hex() for k in w3.provider.ethereum_tester.backend.account_keys]
    Account.enable_unaudited_hdwallet_features()
    return [
        Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key.to_0x_hex()
        for i in range(10)
    ]


def dev_keys(w3: Web3, n: int) -> list[str]:
    """`n` funded private keys (hex): eth-tester's built-in ones or anvil's mnemonic ones.

    Beyond the built-in ten, deterministic extra keys are derived and funded from the first one.
    Development chains only: these keys are public knowledge.
    """
    keys = _builtin_dev_keys(w3)
    if n <= len(keys):
        return keys[:n]
    funder = Account.from_key(keys[0])
    for i in range(len(keys), n):
        key = "0x" + keccak(b"medswarm-dev-key-%d" % i).hex()
        keys.append(key)
        addr = Account.from_key(key).address
        if w3.eth.get_balance(addr) < _DEV_FUNDING_WEI // 2:
            send_value(w3, funder, addr, _DEV_FUNDING_WEI)
    return keys


def send_value(w3: Web3, sender, to: str, wei: int) -> None:
    """Plain ETH transfer signed locally by `sender` (a LocalAccount); waits for the receipt."""
    with send_lock(w3):
        tx = {"to": to, "value": wei, "chainId": w3.eth.chain_id, "gas": 21_000, "gasPrice": w3.eth.gas_price}
        wait_receipt(w3, sender.address, send_signed(w3, sender, tx))


def wait_receipt(w3: Web3, address: str, tx_hash: bytes) -> Any:
    """The receipt of `address`'s sent transaction; if it never comes (dropped or replaced),
    the account's nonce is read from the chain again on its next send."""
    try:
        return w3.eth.wait_for_transaction_receipt(tx_hash)
    except Exception:
        send_book(w3).forget(address)
        raise


def advance_time(w3: Web3, seconds: int) -> None:
    """Move the dev chain's clock forward and mine a block (eth-tester or anvil)."""
    with send_lock(w3):
        if is_eth_tester(w3):
            tester = w3.provider.ethereum_tester
            tester.time_travel(w3.eth.get_block("latest")["timestamp"] + seconds)
        else:
            w3.provider.make_request("evm_increaseTime", [seconds])
            w3.provider.make_request("evm_mine", [])
