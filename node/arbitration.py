"""How the task's referee decides a round its members split: the sponsor's validation set picks
one of the vectors members voted.

The referee (`node.referee`) recomputes the round's checkable score vector from the committed
updates, as every honest member does bit for bit. When the sponsor published a validation set
(its keccak256 is the task's `validationDigest`), the referee also judges every update the rule
keeps on it: each update's loss gain on the set (`checkable_scores(..., validation=...)`), as
integer shares of 10000, its **validation value**. A vector scored with that set cannot be a
vote: torch reproduces it on one machine and build only, so members could never vote it bit for
bit, and a member whose vote differs from the winner's loses its credit and is slashed. So the
referee never votes a validation-based vector. It waits for the members' votes, and when no
vector has a strict majority of the committers (a split, as two colluders of four make), it votes
one of the vectors members voted, chosen by, in this order:

1. the validation value it **withholds**: the summed validation value of the updates the vector
   gives nothing (0 or flagged). The set decides: a vector that denies credit to work that helps
   the sponsor's patients loses, whoever voted it. The colluders' vector (each other, 0 for the
   rest) withholds every honest update's value;
2. a vector some member voted, before the referee's own when no member voted that (a referee vote
   that matches nobody's makes every committer a deviant, slashed);
3. the L1 distance to the referee's own recomputation (0 for the vector every honest member
   votes), then more voters, then the vote hash: a fixed order, whatever the votes' order.

The referee's own vector competes too, as if nobody voted it: if the only vectors in are the
colluders' (the honest votes are late), it withholds less than theirs and the referee votes it,
which the honest members' votes then match.

Why only what a vector withholds, not how close its shares are to the validation shares (the
design first considered): the validation set is published, so colluders can compute the
validation-based vector themselves and vote it; closeness would make their vote win every split
in which the update-only shares differ from the validation shares (on heart, by 1791 to 11420
points of L1 distance in every round measured), and the honest members, who voted the protocol's
vector, would be slashed. Withholding is different: on heart (4 hospitals, mlp and logreg, 3
seeds x 6 honest rounds, `python -m scripts.bench.arbitration`) the checkable vector never gave 0
to an update with a positive validation value (0 of 144 updates), so the vector every honest
member votes withholds nothing. No vector beats it then: one that withholds nothing too ties, and
the tie goes to the vector closest to the referee's recomputation, which the protocol's own vector
is (distance 0). The checkable vector did credit updates whose validation gain was not positive
(6 of 36 rounds: an honest Switzerland or Hungary); counting those against it would let colluders
zero an honest site that is merely different and win. So the set decides which updates deserve credit at all, never how
much; the shares stay the checkable rule's. The choice is discrete: a last-bit difference in a
validation gain moves a value by at most one point of 10000 and changes the vote only when two
candidates are that close on the first criterion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from incentive.ledger import FLAGGED

from .contribution import ContributionReport
from .scoring import scores_from_gains

__all__ = ["Candidate", "Choice", "choose", "validation_value", "withheld"]


@dataclass(frozen=True)
class Candidate:
    """One distinct vote of the round: its vector (member address -> score or FLAGGED), the model
    it attests, its hash and the committers that voted it (none for the referee's own vector)."""

    scores: Mapping[str, int]
    model: str | None
    vote_hash: str = ""  # "" for the referee's own vector, not on chain yet
    voters: tuple[str, ...] = ()

    def same_vote(self, other: "Candidate") -> bool:
        """The same vector and the same attested model (no model and the zero digest alike)."""
        return dict(self.scores) == dict(other.scores) and _model(self.model) == _model(other.model)


def _model(model: str | None) -> str:
    return (model or "0x" + "00" * 32).lower()


@dataclass(frozen=True)
class Choice:
    """The candidate the referee votes, and every candidate's validation value withheld."""

    winner: Candidate
    withheld: dict[str, int]  # vote hash ("" for the referee's own vector) -> validation value withheld


def validation_value(report: ContributionReport) -> dict[str, int]:
    """Each kept update's validation value from a report scored with a `PublicValidation`
    (sender -> share of 10000): its loss gain on the published set from the round's starting
    model, times the rule's size factor (a x100 step lowers the loss a lot far from a minimum), as
    shares, as the rule's own validation component takes them. Flagged updates have none."""
    return scores_from_gains({s: m["validation_gain"] * m["size_factor"] for s, m in report.measures.items()
                              if "validation_gain" in m})


def withheld(scores: Mapping[str, int], value: Mapping[str, int]) -> int:
    """The validation value of the updates `scores` gives nothing (0, FLAGGED or no lane)."""
    return sum(v for member, v in value.items() if scores.get(member, 0) in (0, FLAGGED))


def _distance(scores: Mapping[str, int], own: Mapping[str, int]) -> int:
    """L1 distance between two vectors, a flag counting as its own value far from every score."""
    lane = {FLAGGED: -1}
    return sum(abs(lane.get(scores.get(m, 0), scores.get(m, 0)) - lane.get(own.get(m, 0), own.get(m, 0)))
               for m in set(scores) | set(own))


def choose(candidates: Sequence[Candidate], own: Candidate, value: Mapping[str, int]) -> Choice:
    """The vector the referee votes in a split round (module docstring): among the members'
    `candidates` and its `own` recomputation, the one withholding the least validation `value`
    (member address -> validation share), then a member-voted one, then the closest to `own`,
    then the most voted, then the smallest vote hash."""
    pool = list(candidates) + ([] if any(c.same_vote(own) for c in candidates) else [own])
    held = [withheld(c.scores, value) for c in pool]
    best = min(range(len(pool)), key=lambda i: (held[i], not pool[i].voters, _distance(pool[i].scores, own.scores),
                                                -len(pool[i].voters), pool[i].vote_hash))
    return Choice(pool[best], {c.vote_hash: h for c, h in zip(pool, held)})
