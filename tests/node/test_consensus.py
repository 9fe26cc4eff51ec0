"""The rule every node applies to choose the swarm's model when merged models differ."""

from __future__ import annotations

from node.consensus import choose_model, rank_models

A, B, C = ("0x" + c * 64 for c in "abc")


def test_the_majority_wins_over_our_own_model() -> None:
    choice = choose_model(C, [A, A])
    assert (choice.digest, choice.votes, choice.voters, choice.is_majority) == (A, 2, 3, True)


def test_we_keep_ours_when_it_is_the_majority() -> None:
    assert choose_model(A, [A, B]).digest == A


def test_a_tie_goes_to_the_lowest_digest_on_every_node() -> None:
    # Two survivors that disagree: each must pick the same model from its own point of view.
    on_a, on_b = choose_model(A, [B]), choose_model(B, [A])
    assert on_a.digest == on_b.digest == A
    assert not on_a.is_majority and on_a.voters == 2


def test_most_holders_beat_a_lower_digest() -> None:
    assert choose_model(A, [C, C, B]).digest == C


def test_digests_compare_case_insensitively() -> None:
    assert choose_model(B.upper().replace("0X", "0x"), [B]).votes == 2


def test_ranking_orders_by_holders_then_digest() -> None:
    assert rank_models([C, B, C, A, B]) == [(B, 2), (C, 2), (A, 1)]
    assert rank_models([]) == []
