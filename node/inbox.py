"""What a node has heard on the swarm topic, by kind and round, with a way to wait for more.

The first announcement from a sender for a (kind, round) wins; a different digest from the same
sender for the same slot is equivocation and is recorded against that sender, not stored.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable

import trio

from p2p.announce import Announcement


class Inbox:
    def __init__(self) -> None:
        self._slots: dict[tuple[str, int], dict[str, Announcement]] = defaultdict(dict)
        self._changed = trio.Event()
        self.equivocations: dict[str, int] = defaultdict(int)

    def add(self, ann: Announcement) -> bool:
        """Store `ann`; return False for a repeat or an equivocating second digest."""
        slot = self._slots[(ann.kind, ann.round)]
        known = slot.get(ann.sender)
        if known is not None:
            if known.digest != ann.digest:
                self.equivocations[ann.sender] += 1
            return False
        slot[ann.sender] = ann
        self.poke()
        return True

    def poke(self) -> None:
        """Wake every `wait_until` so it re-checks its condition."""
        self._changed.set()
        self._changed = trio.Event()

    def get(self, kind: str, round: int) -> dict[str, Announcement]:
        return dict(self._slots.get((kind, round), {}))

    def senders(self) -> set[str]:
        """Every peer that announced anything (statistics, an update, a model) so far."""
        return {sender for slot in self._slots.values() for sender in slot}

    def rounds(self, kind: str) -> list[int]:
        """Rounds with at least one announcement of `kind`, newest first."""
        return sorted((r for (k, r), slot in self._slots.items() if k == kind and slot), reverse=True)

    def ahead(self, kind: str, round: int) -> set[str]:
        """The senders that announced `kind` for a round after `round`: they have moved on."""
        return {sender for (k, r), slot in self._slots.items() if k == kind and r > round for sender in slot}

    def latest_round(self, kind: str) -> int:
        rounds = [r for (k, r), slot in self._slots.items() if k == kind and slot]
        return max(rounds, default=0)

    async def wait_until(self, done: Callable[[], bool], deadline: float = math.inf) -> bool:
        """Wait until `done()` holds (True) or trio's clock passes `deadline` (False)."""
        while not done():
            if trio.current_time() >= deadline:
                return False
            with trio.move_on_at(deadline):
                await self._changed.wait()
        return True


__all__ = ["Inbox"]
