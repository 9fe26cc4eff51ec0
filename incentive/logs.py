"""Reading the ledger's event logs: where the contract's history starts, and bounded windows.

eth-tester's get_logs is quadratic over the whole chain, and public nodes cap the block range
of one query, so every scan walks [from, to] in windows of `window` blocks.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

from web3 import Web3

logger = logging.getLogger(__name__)

DEFAULT_WINDOW = 500


def deploy_block(w3: Web3, address: str, latest: int) -> int:
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


def get_logs(
    w3: Web3,
    address: str,
    from_block: int,
    to_block: int,
    topics: Sequence[Any] | None = None,
    window: int = DEFAULT_WINDOW,
) -> list[Any]:
    """Raw logs of `address` in [from_block, to_block] matching `topics`, window by window, in order."""
    out: list[Any] = []
    start = from_block
    while start <= to_block:
        end = min(start + window - 1, to_block)
        query: dict[str, Any] = {"address": address, "fromBlock": start, "toBlock": end}
        if topics is not None:
            query["topics"] = list(topics)
        out.extend(w3.eth.get_logs(query))
        start = end + 1
    return out
