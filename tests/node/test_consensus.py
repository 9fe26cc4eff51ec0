"""The rule every node applies to choose the swarm's model from on-chain attestations."""

from __future__ import annotations

from node.consensus import attestation_threshold, majority_model

A, B, C = ("0x" + c * 64 for c in "abc")


def test_threshold_is_a_strict_majority_and_at_least_the_quorum() -> None:
    assert [attestation_threshold(n, 2) for n in (1, 2, 3, 4, 5, 8)] == [2, 2, 2, 3, 3, 5]
    assert attestation_threshold(4, 4) == 4


def test_the_attested_majority_wins() -> None:
    assert majority_model({A: 1, B: 3}, attestation_threshold(4, 3)) == B


def test_no_majority_means_no_model_and_no_tie_break() -> None:
    # Two colluders against two honest nodes: a tie is nobody's, whatever the digests.
    assert majority_model({A: 2, B: 2}, attestation_threshold(4, 3)) is None
    # A lone announcer of a model nobody else attested.
    assert majority_model({C: 1}, attestation_threshold(4, 3)) is None
    assert majority_model({}, 2) is None


def test_digests_come_back_lowercase() -> None:
    assert majority_model({"0x" + "AB" * 32: 3}, 2) == "0x" + "ab" * 32
