"""The sampled exchange's pure parts: the chain-seeded draw, score sheets, and the assembled vote."""

from __future__ import annotations

import numpy as np
import pytest

from incentive.ledger import FLAGGED
from node.pipeline import Rejected
from node.sampled import NOT_SCORED, Draw, assemble, encode_sheet, round_seed, sampled_fanout, sheet_intake
from node.sampling import partners
from p2p.announce import Announcement
from p2p.codec import encode_update

MEMBERS = [f"0x{i:040x}" for i in range(1, 9)]
BLOCK = "0x" + "ab" * 32


def test_the_seed_is_the_opening_block_and_the_task() -> None:
    seed = round_seed(BLOCK, 7)
    assert len(seed) == 32 and seed == round_seed(BLOCK.upper().replace("0X", "0x"), 7)
    assert seed != round_seed(BLOCK, 8) and seed != round_seed("0x" + "ac" * 32, 7)


def test_a_draw_is_every_members_partners_and_its_inverse() -> None:
    draw = Draw.make(round_seed(BLOCK, 1), 3, list(reversed(MEMBERS)), 2)
    assert set(draw.partners) == set(MEMBERS)
    for m in MEMBERS:
        assert draw.partners[m] == partners(draw.seed, 3, MEMBERS, m, 2)  # anyone recomputes it
        assert all(draw.drew(r, m) for r in draw.receivers(m))
    assert sum(len(draw.receivers(m)) for m in MEMBERS) == 2 * len(MEMBERS)


@pytest.mark.parametrize("n, all_up_to, s, want", [(4, 16, 0, None), (16, 16, 0, None), (17, 16, 0, 5),
                                                    (6, 4, 2, 2), (32, 16, 0, 5)])
def test_sampling_starts_above_the_all_to_all_size(n: int, all_up_to: int, s: int, want: int | None) -> None:
    assert sampled_fanout(n, all_up_to, s) == want


def _ann(blob: bytes) -> Announcement:
    from p2p.codec import digest
    return Announcement(swarm="s", round=1, kind="scores", digest=digest(blob), size=len(blob), samples=0,
                        codec="f32", sender="1" * 46)


def test_a_sheet_round_trips_and_its_lanes_are_checked() -> None:
    scores = {MEMBERS[1]: 2500, MEMBERS[4]: FLAGGED, MEMBERS[6]: 0}
    blob = encode_sheet(scores, MEMBERS)
    intake = sheet_intake(MEMBERS)
    assert intake.accept(_ann(blob), blob) == scores
    for bad in (0.5, 10001.0, -1.0, 70000.0):
        lanes = np.full(len(MEMBERS), NOT_SCORED, dtype=np.float32)
        lanes[2] = bad
        raw = encode_update({"lanes": lanes}, "f32", max_abs=1e6)
        with pytest.raises(Rejected):
            intake.accept(_ann(raw), raw)
    wrong_size = encode_update({"lanes": np.zeros(3, dtype=np.float32)}, "f32")
    with pytest.raises(Rejected):
        intake.accept(_ann(wrong_size), wrong_size)


def _fixed_draw() -> Draw:
    a, b, c, d, e = MEMBERS[:5]
    # e is drawn by a, b, c; d by a and b; a by c only; b and c by nobody
    return Draw(1, b"", {a: (d, e), b: (d, e), c: (a, e), d: (), e: ()})


def test_the_vector_is_each_members_receivers_lower_median_or_majority_flag() -> None:
    a, b, c, d, e = MEMBERS[:5]
    draw = _fixed_draw()
    sheets = {a: {d: 3000, e: FLAGGED}, b: {d: 2000, e: FLAGGED}, c: {a: 4000, e: 1000}}
    committers = {a, b, c, d, e}
    assert assemble(draw, sheets, committers) == {a: 4000, d: 2000, e: FLAGGED}
    # a member nobody reported on, a report by someone who did not draw it, and non-committers: no lane
    sheets[c][b] = 9999
    assert assemble(draw, sheets, committers - {e}) == {a: 4000, d: 2000}


def test_one_lying_receiver_can_neither_flag_nor_raise_a_member_past_the_honest_reports() -> None:
    a, b, c, d, e = MEMBERS[:5]
    draw = _fixed_draw()
    honest = {a: {d: 3000, e: 1200}, b: {d: 2000, e: 1000}, c: {a: 4000, e: 1100}}
    members = set(MEMBERS[:5])
    assert assemble(draw, honest, members)[e] == 1100
    for lie in (FLAGGED, 0, 10000):  # c lies about e (three reports): e stays within the honest two's range
        assert 1000 <= assemble(draw, {**honest, c: {a: 4000, e: lie}}, members)[e] <= 1200
    for lie in (FLAGGED, 10000):  # b lies about d (two reports): d keeps a's honest score
        assert assemble(draw, {**honest, b: {d: lie, e: 1000}}, members)[d] == 3000
    # two liars of three do decide: a strict majority of d's receivers is what the rule trusts
    assert assemble(draw, {**honest, a: {d: FLAGGED}, b: {d: FLAGGED}}, members)[d] == FLAGGED


def test_a_node_takes_the_tasks_exchange_terms_or_refuses_to_join() -> None:
    from incentive.ledger import ExchangeTerms
    from node.config import config_from_mapping
    from node.terms import exchange_conflict, exchange_terms

    def swarm(*overrides: str):
        return config_from_mapping({"name": "n"}, list(overrides)).swarm

    assert exchange_terms(swarm()) == ExchangeTerms("f32", 0.0, 16, 0)
    ternary = exchange_terms(swarm("swarm.compression=ternary", "swarm.merge=geomedian",
                                   "swarm.compression_fraction=0.05", "swarm.partners=3"))
    assert ternary == ExchangeTerms("ternary", 0.05, 16, 3)
    assert exchange_terms(swarm("swarm.compression=q8")).codec == "q8"
    assert exchange_conflict(ternary, ternary) is None
    assert "codec at 'f32'" in exchange_conflict(ExchangeTerms(), ternary)
    assert "swarm.partners gives 3" in exchange_conflict(ExchangeTerms("ternary", 0.05, 16, 0), ternary)
    assert "swarm.compression_fraction" in exchange_conflict(ExchangeTerms("ternary", 0.1, 16, 3), ternary)
