"""Golomb-Rice coding of sorted index sets, vectorised and strict, for the sparse wire codecs.

A sparse tensor's non-zero positions i_0 < i_1 < ... are sent as gaps g_j = i_j - i_{j-1} - 1
(i_{-1} = -1). Each gap splits into a quotient q = g >> k, written in unary (q one bits, then a
zero), and a remainder r = g & (2^k - 1), written as k plain bits. The quotients go to one bit
stream and the remainders to another, so both encode and decode are a few numpy operations rather
than a Python loop per bit. With k near log2(mean gap x ln 2) the cost is about k + 2 bits per
index (Golomb 1966, Rice 1979; the geometric-gap optimum of Gallager and van Voorhis 1975).

Streams are MSB first and padded with zero bits to whole bytes. Decoding is bounded before it
allocates: the caller gives the tensor's element count, from which the longest possible quotient
stream follows, and anything else (wrong number of codes, non-zero padding, an index past the end)
raises `RiceError`.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["MAX_K", "RiceError", "decode_indices", "encode_indices", "max_unary_bytes", "rice_parameter"]

MAX_K = 31  # remainders of up to 31 bits: gaps below 2**31 x (1 + quotient)


class RiceError(ValueError):
    """A bit stream that is not the canonical Rice code of an index set within the tensor."""


def rice_parameter(nnz: int, size: int) -> int:
    """The remainder width for `nnz` indices spread over `size` positions (mean gap x ln 2)."""
    if nnz == 0:
        return 0
    scaled = (size - nnz) / nnz * math.log(2)
    return min(MAX_K, int(math.floor(math.log2(scaled)))) if scaled >= 1 else 0


def encode_indices(indices: np.ndarray, k: int) -> tuple[bytes, bytes]:
    """(quotient stream, remainder stream) for strictly increasing non-negative `indices`."""
    idx = np.asarray(indices, dtype=np.int64)
    if idx.size == 0:
        return b"", b""
    gaps = np.diff(idx, prepend=-1) - 1
    if gaps.min() < 0:
        raise RiceError("indices must be strictly increasing and non-negative")
    q = gaps >> k
    unary = np.ones(int(q.sum()) + idx.size, dtype=np.uint8)
    unary[np.cumsum(q + 1) - 1] = 0
    if k == 0:
        return np.packbits(unary).tobytes(), b""
    shifts = np.arange(k - 1, -1, -1, dtype=np.int64)
    rem_bits = ((gaps[:, None] >> shifts) & 1).astype(np.uint8).ravel()
    return np.packbits(unary).tobytes(), np.packbits(rem_bits).tobytes()


def max_unary_bytes(nnz: int, size: int, k: int) -> int:
    """The longest quotient stream `nnz` indices below `size` can need: the quotients sum to at
    most (size - nnz) >> k."""
    return (nnz + ((size - nnz) >> k) + 7) // 8


def decode_indices(unary: bytes | memoryview, remainders: bytes | memoryview, nnz: int, k: int,
                   size: int) -> np.ndarray:
    """The `nnz` strictly increasing indices below `size` that the streams encode (int64)."""
    if not 0 <= k <= MAX_K:
        raise RiceError(f"Rice parameter {k} outside 0..{MAX_K}")
    if not 0 <= nnz <= size:
        raise RiceError(f"{nnz} indices cannot fit a tensor of {size} elements")
    if len(unary) > max_unary_bytes(nnz, size, k):
        raise RiceError(f"quotient stream of {len(unary)} bytes is longer than {nnz} indices below {size} need")
    if len(remainders) != (nnz * k + 7) // 8:
        raise RiceError(f"remainder stream of {len(remainders)} bytes; {nnz} x {k} bits need {(nnz * k + 7) // 8}")
    if nnz == 0:
        if len(unary):
            raise RiceError("a quotient stream for no indices")
        return np.empty(0, dtype=np.int64)
    bits = np.unpackbits(np.frombuffer(unary, dtype=np.uint8))
    zeros = np.flatnonzero(bits == 0)
    if zeros.size < nnz:
        raise RiceError(f"quotient stream ends after {zeros.size} of {nnz} codes")
    end = int(zeros[nnz - 1]) + 1
    if (end + 7) // 8 != len(unary) or bits[end:].any():
        raise RiceError("quotient stream has bytes or padding bits past its last code")
    codes = zeros[:nnz]
    q = np.diff(codes, prepend=-1) - 1
    gaps = q << k
    if k:
        rem_bits = np.unpackbits(np.frombuffer(remainders, dtype=np.uint8))
        if rem_bits[nnz * k:].any():
            raise RiceError("remainder stream has non-zero padding bits")
        columns = rem_bits[: nnz * k].reshape(nnz, k)
        for j in range(k):  # one column at a time: no (nnz, k) int64 copy
            gaps |= columns[:, j].astype(np.int64) << (k - 1 - j)
    indices = np.cumsum(gaps + 1) - 1
    if indices[-1] >= size:
        raise RiceError(f"index {int(indices[-1])} past the tensor's {size} elements")
    return indices
