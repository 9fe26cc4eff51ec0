"""Commit, then reveal: who may have this node's round-r update bytes, and when.

A member that could fetch the others' round-r updates before committing its own could commit a
copy of them (with a little noise, so that no equality test finds it) and be paid for their work.
So the bytes of a round-r update, this node's own or one it relays, go only to a member whose
own round-r commitment is on chain, or to any member once the round's commit window has closed
(nothing can be committed for round r any more), and to the task's referee, which commits
nothing and is paid nothing. Copying is then limited to old work, which the
contribution rule recognises (`node.contribution`). In a sampled swarm (`node.sampled`) an
update goes, before the window closes, only to committed members whose public draw includes its
author: a member has no use for (and no claim on) the updates it does not merge. One chain read answers every peer of a round;
the answer is cached, since a commitment once made stays made.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from incentive.ledger import Member, RoundState

from p2p.host import Release

# How often round-r commitments are read again for peers not yet known to have committed. Most
# are learnt without a read of their own: verifying a peer's announced update reads its
# commitment anyway (`note_committed`). A refused peer asks again shortly (node.exchange).
REREAD_SECONDS = 0.5


@dataclass
class _RoundView:
    committers: frozenset[str] = frozenset()  # lower-case addresses
    deadline: float = 0.0  # unix seconds; 0 while nobody committed
    read_at: float = -float("inf")  # trio time of the last chain read
    lock: trio.Lock = field(default_factory=trio.Lock)


class RevealRule:
    """Release rules for update blobs, one per round, backed by the task's on-chain commitments."""

    def __init__(self, round_state: Callable[[int], Awaitable[RoundState]],
                 members: Callable[[], dict[str, Member]], log: logging.LoggerAdapter,
                 referee: Callable[[], str | None] = lambda: None,
                 drew: Callable[[int, str, str], Awaitable[bool]] | None = None) -> None:
        self._round_state = round_state
        self._drew = drew  # (r, asker, author) -> asker merges author's round-r update; None: everyone
        self._members = members
        self._referee = referee
        self._log = log
        self._rounds: dict[int, _RoundView] = {}

    def for_round(self, r: int, author: str) -> Release:
        """The rule for `author`'s round r update bytes (as p2p.host.SwarmHost.serve takes it)."""

        async def released(peer_id: str) -> bool:
            return await self.released(r, peer_id, author)

        return released

    def note_committed(self, r: int, address: str) -> None:
        """`address` has a round-r commitment on chain (read by the caller for its own reasons)."""
        view = self._rounds.setdefault(r, _RoundView())
        view.committers = view.committers | {address.lower()}

    async def released(self, r: int, peer_id: str, author: str = "") -> bool:
        """True when `peer_id` is a member that committed for round r (and, in a sampled swarm,
        drew `author`), or round r's window closed."""
        member = self._members().get(peer_id)
        if member is None:
            return False
        if member.address.lower() == self._referee():
            return True  # the task's referee earns nothing, so it has nothing to copy into
        view = self._rounds.setdefault(r, _RoundView())
        if not self._open_to(view, member):
            await self._refresh(r, view)
        if not self._open_to(view, member):
            self._log.info("round %d update held back from %s: no round %d commitment of theirs on chain yet",
                           r, member.name, r)
            return False
        if self._drew is not None and not self._closed(view) and not await self._drew(r, peer_id, author):
            self._log.info("round %d update held back from %s: the round's draw did not give it this update",
                           r, member.name)
            return False
        return True

    async def _refresh(self, r: int, view: _RoundView) -> None:
        """Read round r's committers again unless read in the last REREAD_SECONDS; requests that
        arrive during a read share it, so a peer asking often cannot make this node load the chain."""
        asked = trio.current_time()
        async with view.lock:
            if view.read_at >= asked or asked - view.read_at < REREAD_SECONDS:
                return
            state = await self._round_state(r)
            view.read_at = trio.current_time()
            view.committers = view.committers | {a.lower() for a in state.committers}
            view.deadline = float(state.deadline)
        self._forget_before(r - 3)

    @staticmethod
    def _closed(view: _RoundView) -> bool:
        return view.deadline > 0 and time.time() >= view.deadline

    @classmethod
    def _open_to(cls, view: _RoundView, member: Member) -> bool:
        return cls._closed(view) or member.address.lower() in view.committers

    def _forget_before(self, r: int) -> None:
        for old in [k for k in self._rounds if k < r]:
            del self._rounds[old]
