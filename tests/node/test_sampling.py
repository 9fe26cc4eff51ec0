"""Partner draws for swarms past all-to-all: recomputable, fair, and bounded."""

from __future__ import annotations

from collections import Counter

import pytest

from node.sampling import fanout, partners

MEMBERS = [f"0x{i:040x}" for i in range(1, 129)]
SEED = bytes(range(32))


@pytest.mark.parametrize("n, all_up_to, s, want", [
    (4, 16, 0, 3), (16, 16, 0, 15), (17, 16, 0, 5), (32, 16, 0, 5), (128, 16, 0, 7), (96, 16, 7, 7),
    (3, 2, 9, 2), (1, 16, 0, 0),
])
def test_fanout(n: int, all_up_to: int, s: int, want: int) -> None:
    assert fanout(n, all_up_to, s) == want


def test_the_draw_is_recomputable_and_excludes_the_node_itself() -> None:
    me = MEMBERS[5]
    got = partners(SEED, 3, MEMBERS, me, 7)
    assert len(got) == len(set(got)) == 7 and me not in got and set(got) <= set(MEMBERS)
    # the same on any machine, whatever the order or case of the member list
    assert got == partners(SEED, 3, [m.upper().replace("0X", "0x") for m in reversed(MEMBERS)], me, 7)
    # and a new draw each round and for each seed
    assert got != partners(SEED, 4, MEMBERS, me, 7) and got != partners(bytes(32), 3, MEMBERS, me, 7)


def test_small_swarms_merge_everyone() -> None:
    assert partners(SEED, 1, MEMBERS[:4], MEMBERS[0], 7) == tuple(MEMBERS[1:4])


def test_every_member_is_drawn_about_equally_often() -> None:
    counts: Counter[str] = Counter()
    members = MEMBERS[:64]
    for r in range(1, 6):
        for me in members:
            counts.update(partners(SEED, r, members, me, 6))
    # 5 rounds x 64 draws x 6 = 1,920 picks over 64 members: 30 each on average
    assert set(counts) == set(members)
    assert 12 < min(counts.values()) and max(counts.values()) < 50
