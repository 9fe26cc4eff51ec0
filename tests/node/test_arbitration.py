"""The referee's choice in a split round (node.arbitration): the sponsor's validation set picks
among the vectors members voted, on real heart rounds, and the order of the tie-breaks."""

from __future__ import annotations

import pytest

from incentive.ledger import FLAGGED
from node.arbitration import Candidate, choose, validation_value, withheld
from node.contribution import PublicValidation, checkable_scores
from node.launcher import SwarmPlan
from node.merge import rule_by_name
from scripts.bench.contribution import honest_rounds, public_validation

HONEST, COLLUDERS = ("cleveland", "hungary"), ("switzerland", "va-long-beach")


@pytest.fixture(scope="module")
def judged() -> list[tuple[dict[str, int], dict[str, int]]]:
    """Per round of three honest heart rounds (4 hospitals, mlp, median merge, seed 0): the
    checkable vector every honest member votes, and each update's validation value on the
    hospitals' pooled validation rows (the sponsor's published set)."""
    setups, rounds = honest_rounds(SwarmPlan(nodes=4, dataset="heart", model="mlp"), 3, rule_by_name("median"))
    model, x, y = public_validation(setups)
    out = []
    for r, now in enumerate(rounds):
        basis = (rounds[r - 1].updates, rounds[r - 1].merged) if r else ([], None)
        honest = checkable_scores(now.updates, *basis).scores
        value = validation_value(checkable_scores(now.updates, *basis,
                                                  validation=PublicValidation(model, now.start, x, y)))
        out.append((honest, value))
    return out


def _l1(a: dict[str, int], b: dict[str, int]) -> int:
    return sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))


def test_validation_prefers_the_honest_vector_over_the_colluders_on_heart(judged) -> None:
    for honest, value in judged:
        assert set(value) == set(honest) and all(v > 0 for v in value.values())  # every update helps
        own = Candidate(honest, None)
        h = Candidate(honest, None, "0xh", HONEST)
        # the colluders vote each other and 0 for the rest (the `collude` behaviour)
        pair = Candidate({**{m: 0 for m in HONEST}, **{m: 5000 for m in COLLUDERS}}, None, "0xc", COLLUDERS)
        choice = choose([pair, h], own, value)
        assert choice.winner is h
        assert choice.withheld == {"0xh": 0, "0xc": sum(value[m] for m in HONEST)}
        # the referee missed Switzerland's update: its own vector matches nobody's, the set still decides
        missed = Candidate({m: v for m, v in honest.items() if m != "switzerland"}, None)
        assert choose([pair, h], missed, {m: v for m, v in value.items() if m != "switzerland"}).winner is h
        # only the colluders' votes are in: the referee votes its own vector, which the honest votes match
        assert choose([pair], own, value).winner is own


def test_colluders_who_vote_the_validation_shares_still_lose(judged) -> None:
    """The validation set is public: colluders can vote the validation-based vector itself. Closer
    to the validation shares than the protocol's vector, it withholds nothing, as the protocol's
    vector does; the tie goes to the vector the referee recomputes, the honest members'."""
    for honest, value in judged:
        h = Candidate(honest, None, "0xh", HONEST)
        mimic = Candidate(value, None, "0xv", COLLUDERS)
        greedy = Candidate({"cleveland": 1, "hungary": 1, "switzerland": 4999, "va-long-beach": 4999}, None,
                           "0xg", COLLUDERS)
        assert _l1(value, mimic.scores) < _l1(value, honest)  # closeness to the set would pick the mimic
        assert choose([mimic, greedy, h], Candidate(honest, None), value).winner is h


def test_the_order_of_the_tie_breaks() -> None:
    value = {"a": 6000, "b": 4000}
    own = Candidate({"a": 5000, "b": 5000}, None)
    # 1. what a vector withholds decides before anything else, flags and missing lanes withhold too
    assert withheld({"a": FLAGGED}, value) == 10000 and withheld({"a": 1, "b": 0}, value) == 4000
    near = Candidate({"a": 5000, "b": 0}, None, "0x1", ("m1", "m2", "m3"))
    far = Candidate({"a": 1, "b": 9999}, None, "0x2", ("m4",))
    assert choose([near, far], own, value).winner is far
    # 2. a member-voted vector before the referee's own, 3. then the closest to the referee's own
    close = Candidate({"a": 4900, "b": 5100}, None, "0x3", ("m1",))
    assert choose([far, close], own, value).winner is close
    assert choose([near], own, value).winner is own
    # ... then more voters, then the smaller vote hash, whatever the order the votes came in
    twin1 = Candidate({"a": 4900, "b": 5100}, "0x" + "11" * 32, "0x4", ("m1", "m2"))
    twin2 = Candidate({"a": 4900, "b": 5100}, "0x" + "22" * 32, "0x5", ("m3",))
    assert choose([twin2, twin1], own, value).winner is twin1
    twin3 = Candidate({"a": 4900, "b": 5100}, "0x" + "33" * 32, "0x0", ("m4", "m5"))
    assert choose([twin1, twin3], own, value).winner is twin3
    # the referee's own vector among the members' counts once, as theirs (no model = the zero digest)
    same = Candidate({"a": 5000, "b": 5000}, "0x" + "00" * 32, "0x6", ("m1",))
    assert choose([same, far], own, value).winner is same and set(choose([same], own, value).withheld) == {"0x6"}
