"""Connections to an Ethereum chain: in-process eth-tester or any JSON-RPC URL, plus dev helpers.

Every Web3 object made here carries one lock (see `send_lock`): transaction sends through the
same connection are serialised, which eth-tester (not thread-safe) requires.
"""

from __future__ import annotations

import logging
import threading
import weakref

from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.types import RPCEndpoint

logger = logging.getLogger(__name__)

ETH_TESTER = "eth-tester"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
_DEV_FUNDING_WEI = 10_000 * 10**18
_locks: "weakref.WeakKeyDictionary[Web3, threading.RLock]" = weakref.WeakKeyDictionary()
_locks_guard = threading.Lock()


class ChainUnavailable(Exception):
    """The chain at the given URL cannot be reached (or is not an Ethereum JSON-RPC endpoint)."""


def connect(url: str, *, timeout: float = 30.0) -> Web3:
    """Connect to "eth-tester" (fresh in-process py-evm chain) or an http(s) JSON-RPC URL."""
    if url == ETH_TESTER:
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
        tx = {
            "to": to,
            "value": wei,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
            "chainId": w3.eth.chain_id,
            "gas": 21_000,
            "gasPrice": w3.eth.gas_price,
        }
        signed = sender.sign_transaction(tx)
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))


def advance_time(w3: Web3, seconds: int) -> None:
    """Move the dev chain's clock forward and mine a block (eth-tester or anvil)."""
    with send_lock(w3):
        if is_eth_tester(w3):
            tester = w3.provider.ethereum_tester
            tester.time_travel(w3.eth.get_block("latest")["timestamp"] + seconds)
        else:
            w3.provider.make_request("evm_increaseTime", [seconds])
            w3.provider.make_request("evm_mine", [])
