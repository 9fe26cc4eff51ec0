"""Round commitments as a node learns them: one chain read per round for all peers, not one per peer.

Before this, checking a peer's announcement read that peer's commitment from the chain: N - 1
reads (each a log query) per node per round, N(N - 1) across the swarm. A `CommitmentBook` reads
the whole round's commitments (`Ledger.commitments`) at once and keeps them: a digest on chain
never changes (the contract takes one commit per member per round), so what was read stays true.
A member not yet seen causes a fresh read only if no read of that round started after the
question was asked; concurrent questions share one read, so a burst of announcements costs one
query, and a peer announcing before its commit is mined costs at most one more.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

__all__ = ["CommitmentBook"]

KEEP_ROUNDS = 4  # rounds kept behind the newest one asked about (late updates, a missed merge)


@dataclass
class _Round:
    digests: dict[str, str] = field(default_factory=dict)  # lower-case address -> digest
    read_started: float = -1.0  # trio time at which the last read began
    lock: trio.Lock = field(default_factory=trio.Lock)


class CommitmentBook:
    """`digest(r, address)`: what `address` committed for round r, or None, read by the round."""

    def __init__(self, read_round: Callable[[int], Awaitable[dict[str, str]]]) -> None:
        self._read_round = read_round
        self._rounds: dict[int, _Round] = {}
        self.reads = 0  # chain reads made (for tests and benchmarks)

    async def digest(self, r: int, address: str) -> str | None:
        key = address.lower()
        book = self._rounds.setdefault(r, _Round())
        if key not in book.digests:
            asked = trio.current_time()
            async with book.lock:
                if book.read_started < asked and key not in book.digests:
                    book.read_started = trio.current_time()
                    self.reads += 1
                    found = await self._read_round(r)
                    book.digests.update({a.lower(): d for a, d in found.items()})
            self._forget_before(r - KEEP_ROUNDS)
        return book.digests.get(key)

    def _forget_before(self, r: int) -> None:
        for old in [k for k in self._rounds if k < r]:
            del self._rounds[old]
