"""Whom a node merges with each round once the swarm is too big for all-to-all: s peers drawn from a
public seed, so that anyone can recompute the draw and no node can pick its partners.

Up to `all_up_to` members every node merges every update (the swarm's default). Above it, in
round r member `me` fetches and merges the updates of `fanout(n)` other members: by default
ceil(log2 n), the order that keeps a gossip average mixing in O(log n) rounds (Epidemic Learning,
de Vos et al., NeurIPS 2023, arXiv:2310.01972, used s = 7 at 96 nodes). The draw ranks every
other member by keccak256(seed || r || me || member) and takes the s smallest: O(n) hashes per
node and round, the same list on every machine, and unpredictable before the seed is known. The
seed must be fixed after the round's commitments could still be chosen around it, e.g. the hash
of the block that opened the round (see the notes of issue 13 for the chain's part).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from Crypto.Hash import keccak

__all__ = ["fanout", "partners"]


def fanout(n: int, all_up_to: int, s: int = 0) -> int:
    """How many peers each of `n` members merges with: n - 1 up to `all_up_to`, else `s` (0 means
    ceil(log2 n)), never more than n - 1."""
    if n <= all_up_to:
        return max(0, n - 1)
    return min(n - 1, s if s > 0 else math.ceil(math.log2(n)))


def partners(seed: bytes, round_no: int, members: Sequence[str], me: str, s: int) -> tuple[str, ...]:
    """The `s` members (addresses, `me` excluded) whose round `round_no` updates `me` merges."""
    mine = me.lower()
    others = sorted({m.lower() for m in members} - {mine})
    if s >= len(others):
        return tuple(others)
    prefix = seed + round_no.to_bytes(8, "big") + bytes.fromhex(mine.removeprefix("0x"))

    def rank(member: str) -> bytes:
        h = keccak.new(digest_bits=256)
        h.update(prefix + bytes.fromhex(member.removeprefix("0x")))
        return h.digest()

    return tuple(sorted(others, key=rank)[:s])
