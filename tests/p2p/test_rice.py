"""Golomb-Rice coding of index sets: exact round trips, near-optimal size, strict on non-canonical streams."""

from __future__ import annotations

import numpy as np
import pytest

from p2p.rice import RiceError, decode_indices, encode_indices, max_unary_bytes, rice_parameter


@pytest.mark.parametrize("size, nnz", [(1, 1), (10, 0), (10, 10), (1000, 1), (100_000, 1000), (50_000, 25_000)])
def test_round_trip_is_exact(size: int, nnz: int) -> None:
    rng = np.random.default_rng(size + nnz)
    idx = np.sort(rng.choice(size, nnz, replace=False))
    k = rice_parameter(nnz, size)
    unary, rem = encode_indices(idx, k)
    assert len(unary) <= max_unary_bytes(nnz, size, k)
    assert np.array_equal(decode_indices(unary, rem, nnz, k, size), idx)


def test_one_percent_costs_about_nine_bits_per_index() -> None:
    idx = np.sort(np.random.default_rng(0).choice(1_000_000, 10_000, replace=False))
    k = rice_parameter(idx.size, 1_000_000)
    unary, rem = encode_indices(idx, k)
    bits = 8 * (len(unary) + len(rem)) / idx.size
    assert k == 6 and 8.0 < bits < 9.0  # the entropy of the gaps is about 8.1 bits


def test_every_k_decodes_what_it_encodes() -> None:
    idx = np.array([0, 3, 4, 90, 91, 4000])
    for k in range(0, 13):
        unary, rem = encode_indices(idx, k)
        assert np.array_equal(decode_indices(unary, rem, idx.size, k, 4001), idx)


@pytest.mark.parametrize("change, message", [
    (lambda u, r: (u + b"\x00", r), "longer than|past its last code"),
    (lambda u, r: (u[:-1], r), "ends after"),
    (lambda u, r: (u[:-1] + bytes([u[-1] | 1]), r), "padding bits|ends after"),
    (lambda u, r: (u, r + b"\x00"), "remainder stream"),
    (lambda u, r: (u, r[:-1] + bytes([r[-1] | 1])), "non-zero padding"),
])
def test_non_canonical_streams_are_refused(change, message: str) -> None:
    idx = np.array([1, 5, 6, 40, 77])
    unary, rem = encode_indices(idx, 3)
    bad_u, bad_r = change(unary, rem)
    with pytest.raises(RiceError, match=message):
        decode_indices(bad_u, bad_r, idx.size, 3, 100)


def test_an_index_past_the_end_and_impossible_parameters_are_refused() -> None:
    unary, rem = encode_indices(np.array([2, 99]), 2)
    with pytest.raises(RiceError, match="past the tensor"):
        decode_indices(unary, rem, 2, 2, 99)
    with pytest.raises(RiceError, match="outside 0..31"):
        decode_indices(unary, rem, 2, 32, 100)
    with pytest.raises(RiceError, match="cannot fit"):
        decode_indices(unary, rem, 101, 2, 100)
    # A stream longer than any index set of the tensor could need is refused before it is unpacked.
    with pytest.raises(RiceError, match="longer than"):
        decode_indices(b"\xff" * 10_000, b"", 1, 0, 100)
