"""The sampled exchange: how a swarm of more than `swarm.exchange_all_up_to` training members merges
and scores when each member merges only its own update and those of a few drawn partners.

The draw. Round r's seed is keccak256(hash of the block holding round r's first commit || task
id), so anyone with the chain recomputes every member's partners (`node.sampling.partners`, s
per member, `swarm.partners` or ceil(log2 n)). The seed exists only once the round is open, after
which every commitment is fixed before its author learns whom it merges with. Grinding: whoever
opens the round (the first committer) could hold its commit back and pick among the blocks it
can land in; on a chain whose block producer is not a member, that buys it a choice among a few
unpredictable draws for one round, no control over them. Members are every registered trainer
(the task's referee excluded), in address order; a drawn partner that does not commit simply
contributes nothing that round.

Merge. Each member merges its update with its partners' (gossip averaging, as in Epidemic
Learning, de Vos et al. 2023, arXiv:2310.01972): models differ per member and there is no one
swarm model to attest, so the vote's model attestation is zero (none) and the rejoin-the-majority
logic (`node.consensus`) is skipped. A member's update bytes go only to members that drew it
(`drew`) and committed the round, or to anyone once the round's window has closed.

Scores. Each member scores what it merged (`node.contribution` over its own and its partners'
updates) and publishes its partners' lanes in a small signed announcement (a "scores" blob: one
float32 lane per member, NOT_SCORED where it has no say). Every member assembles the same
vector from the sheets of the round's committers (`assemble`): member j's lane comes only from
the members that drew j; it is FLAGGED when a strict majority of the receivers that reported
on j flagged it, else the lower median of the others' scores. A single lying receiver can
therefore neither flag a member nor raise it above what an honest receiver reported; with two
reports it can lower one (the lower median), with three or more it moves the lane only within the
range of the honest reports. The vector is then voted as in the all-to-all swarm, so the
contract's rule (a strict majority of committers votes the identical vector) still decides.
Every member must see the same sheets: one missing at a node makes that node's vote differ
(a deviant), as a missed update does in the all-to-all swarm.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import trio
from Crypto.Hash import keccak

from incentive.ledger import FLAGGED
from p2p.announce import Announcement
from p2p.codec import encode_update

from .learner import Tensors
from .pipeline import BlobIntake
from .sampling import fanout, partners
from .scoring import MAX_SCORE

SCORES = "scores"  # the announcement kind of a partner-score sheet
NOT_SCORED = -2.0  # a sheet's lane for a member its author did not merge
_FLAG_LANE = 65535.0  # FLAGGED on the wire (the contract's lane value)
_MAX_SHEET = 64 * 1024


def round_seed(opening_block: str, task_id: int) -> bytes:
    """keccak256(block hash || task id as 32 bytes): the public seed of a round's draw."""
    h = keccak.new(digest_bits=256)
    h.update(bytes.fromhex(opening_block.removeprefix("0x")) + task_id.to_bytes(32, "big"))
    return h.digest()


@dataclass(frozen=True)
class Draw:
    """Round r's public draw: whose updates each member (lower-case address) merges."""

    round: int
    seed: bytes
    partners: Mapping[str, tuple[str, ...]]

    @classmethod
    def make(cls, seed: bytes, r: int, members: Sequence[str], s: int) -> "Draw":
        """Every member's `s` partners (O(n^2) hashes: ~1k at 32 members, ~16k at 128)."""
        lower = sorted({m.lower() for m in members})
        return cls(r, seed, {m: partners(seed, r, lower, m, s) for m in lower})

    def drew(self, member: str, other: str) -> bool:
        """`member` merges `other`'s update this round."""
        return other.lower() in self.partners.get(member.lower(), ())

    def receivers(self, member: str) -> list[str]:
        """The members that drew `member` (those whose sheets score it), in address order."""
        return [m for m, drawn in self.partners.items() if member.lower() in drawn]


def sampled_fanout(n_trainers: int, all_up_to: int, s: int) -> int | None:
    """Partners per member for a swarm of `n_trainers`; None when it exchanges all-to-all."""
    return None if n_trainers <= all_up_to else fanout(n_trainers, all_up_to, s)


def encode_sheet(scores: Mapping[str, int], order: Sequence[str]) -> bytes:
    """A sheet's bytes: one float32 lane per member of `order` (addresses), NOT_SCORED where
    `scores` (address -> score or FLAGGED) has none."""
    lanes = np.full(len(order), NOT_SCORED, dtype=np.float32)
    for i, member in enumerate(order):
        if member in scores:
            lanes[i] = _FLAG_LANE if scores[member] == FLAGGED else scores[member]
    return encode_update({"lanes": lanes}, "f32", max_abs=_FLAG_LANE)


def sheet_intake(order: Sequence[str], verify: Callable[[Announcement], Awaitable[None]] | None = None
                 ) -> BlobIntake[dict[str, int]]:
    """How a peer's sheet is admitted: strict decoding, then every lane must be NOT_SCORED, an
    integer score in 0..MAX_SCORE or the flag; decoded to {address: score or FLAGGED}."""
    members = list(order)

    def convert(ann: Announcement, tensors: Tensors) -> dict[str, int]:
        lanes = tensors["lanes"]
        sheet: dict[str, int] = {}
        for member, v in zip(members, lanes.tolist()):
            if v == NOT_SCORED:
                continue
            if v == _FLAG_LANE:
                sheet[member] = FLAGGED
            elif v == int(v) and 0 <= v <= MAX_SCORE:
                sheet[member] = int(v)
            else:
                raise ValueError(f"lane {v!r} is neither a score, the flag nor NOT_SCORED")
        return sheet

    intake: BlobIntake[dict[str, int]] = BlobIntake({"lanes": (len(members),)}, _MAX_SHEET, convert, verify,
                                                    max_abs=_FLAG_LANE)
    intake.codec = "f32"
    return intake


def assemble(draw: Draw, sheets: Mapping[str, Mapping[str, int]], committers: set[str]) -> dict[str, int]:
    """The round's vector (address -> score or FLAGGED) from the committers' sheets (author address
    -> its lanes): for each committer j, the reports of the committers that drew j."""
    vector: dict[str, int] = {}
    for j in sorted(committers):
        reports = [sheets[i][j] for i in draw.receivers(j) if i in committers and j in sheets.get(i, {})]
        if not reports:
            continue
        flags = sum(v == FLAGGED for v in reports)
        vector[j] = FLAGGED if 2 * flags > len(reports) else statistics.median_low(
            [v for v in reports if v != FLAGGED])
    return vector


class PartnerDraws:
    """One node's copy of the rounds' draws: each read from the chain once (the round's opening
    block), then kept for a few rounds."""

    KEEP_ROUNDS = 4

    def __init__(self, opening_block: Callable[[int], Awaitable[str | None]], task_id: int) -> None:
        self._opening_block = opening_block
        self._task = task_id
        self._draws: dict[int, Draw] = {}
        self._lock = trio.Lock()

    async def draw(self, r: int, members: Sequence[str], s: int) -> Draw | None:
        """Round r's draw over `members` with `s` partners each; None while the round is not open."""
        if r in self._draws:
            return self._draws[r]
        async with self._lock:  # the reveal rule asks for many peers at once: one read answers all
            if r not in self._draws:
                block = await self._opening_block(r)
                if block is None:
                    return None
                self._draws[r] = Draw.make(round_seed(block, self._task), r, members, s)
                for old in [k for k in self._draws if k <= r - self.KEEP_ROUNDS]:
                    del self._draws[old]
        return self._draws[r]
