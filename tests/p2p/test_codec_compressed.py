"""The compressed wire codecs (q8, sparse16, ternary): what they keep, their size, and strict
rejection of forged payloads, each with its named error and before any large allocation."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from p2p.codec import (
    BadHeader, BadPositions, LimitExceeded, NonFiniteValue, TrailingBytes, TruncatedBlob, ValueOutOfBounds,
    decode_update, encode_update,
)

RNG = np.random.default_rng(99)
DENSE = {"w": RNG.standard_normal((200, 50)).astype(np.float32), "b": RNG.standard_normal(50).astype(np.float32)}
SHAPES = {k: v.shape for k, v in DENSE.items()}


def _sparse(density: float, seed: int = 0) -> dict[str, np.ndarray]:
    gen = np.random.default_rng(seed)
    return {k: (v * (gen.random(v.shape) < density)).astype(np.float32) for k, v in DENSE.items()}


def _header(codec: int, name: bytes, dims: list[int]) -> bytes:
    return (struct.pack("<4sBBH", b"MSWU", 2, codec, 1) + struct.pack("<B", len(name)) + name
            + struct.pack(f"<B{len(dims)}I", len(dims), *dims))


def test_q8_keeps_every_value_within_half_a_step_at_a_quarter_of_the_bytes() -> None:
    blob = encode_update(DENSE, "q8")
    out = decode_update(blob, expected=SHAPES)
    for k, v in DENSE.items():
        step = np.abs(v).max() / 127
        assert out[k].dtype == np.float32 and np.abs(out[k] - v).max() <= step / 2 + 1e-6
    assert len(blob) < 0.26 * len(encode_update(DENSE))


def test_sparse16_keeps_the_non_zero_entries_at_float16() -> None:
    sparse = _sparse(0.01)
    blob = encode_update(sparse, "sparse16")
    out = decode_update(blob, expected=SHAPES)
    for k, v in sparse.items():
        assert np.array_equal(out[k] != 0, v != 0)
        assert np.array_equal(out[k], v.astype(np.float16).astype(np.float32))
    # about 2 bytes of value and 9 bits of position per kept entry, against 4 bytes per entry
    assert len(blob) < len(encode_update(DENSE)) / 60


def test_ternary_sends_signs_times_the_mean_kept_magnitude() -> None:
    sparse = _sparse(0.05, seed=1)
    out = decode_update(encode_update(sparse, "ternary"), expected=SHAPES)
    for k, v in sparse.items():
        kept = v[v != 0]
        scale = np.float32(np.abs(kept).mean(dtype=np.float64))
        assert np.array_equal(out[k], np.sign(v) * scale)


@pytest.mark.parametrize("codec", ["q8", "sparse16", "ternary"])
def test_empty_zero_and_scalar_tensors_round_trip(codec: str) -> None:
    tensors = {"s": np.float32(-2.0), "e": np.zeros((0, 3), np.float32), "z": np.zeros(7, np.float32)}
    out = decode_update(encode_update(tensors, codec), expected={"s": (), "e": (0, 3), "z": (7,)})
    assert float(out["s"]) == -2.0 and out["e"].shape == (0, 3) and not out["z"].any()


def test_sparse16_refuses_what_float16_cannot_hold() -> None:
    with pytest.raises(ValueOutOfBounds, match="overflows float16"):
        encode_update({"w": np.array([0.0, 7e4], np.float32)}, "sparse16")


def _positions(nnz: int, k: int, unary_len: int) -> bytes:
    return struct.pack("<IBI", nnz, k, unary_len)


ONE_VALUE = b"\x00\x3c"  # 1.0 as float16


@pytest.mark.parametrize("payload, error, message", [
    (_positions(11, 0, 0), LimitExceeded, "claims 11 non-zero entries of 10"),
    (_positions(1, 32, 1) + b"\x00", BadPositions, "Rice parameter 32"),
    # checked before the stream is unpacked: one index below 10 needs at most 2 bytes
    (_positions(1, 0, 200) + b"\xff" * 200, BadPositions, "stream of 200 bytes impossible"),
    (_positions(2, 0, 1), TruncatedBlob, "truncated in tensor 'w'"),
    (_positions(2, 0, 1) + b"\xbf" + ONE_VALUE * 2, BadPositions, "ends after 1 of 2 codes"),
    (_positions(1, 0, 1) + b"\x40" + ONE_VALUE, BadPositions, "past its last code"),
    (_positions(1, 0, 2) + b"\xff\xc0" + ONE_VALUE, BadPositions, "index 10 past"),
    (_positions(1, 0, 1) + b"\x00", TruncatedBlob, "truncated in tensor 'w'"),
    (_positions(1, 0, 1) + b"\x00" + ONE_VALUE + b"\x00", TrailingBytes, "1 trailing bytes"),
    (_positions(1, 0, 1) + b"\x00" + b"\x00\x7c", NonFiniteValue, "NaN or Inf"),
])
def test_forged_sparse_payloads_are_refused(payload: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        decode_update(_header(3, b"w", [10]) + payload, expected={"w": (10,)})
    assert np.array_equal(decode_update(_header(3, b"w", [10]) + _positions(1, 0, 1) + b"\x00" + ONE_VALUE)["w"],
                          np.eye(10, dtype=np.float32)[0])  # the well-formed neighbour decodes


@pytest.mark.parametrize("payload, error, message", [
    (_positions(1, 0, 1) + b"\x00" + struct.pack("<f", 1.0) + b"\x40", BadPositions, "padding after its sign"),
    (_positions(1, 0, 1) + b"\x00" + struct.pack("<f", -1.0) + b"\x00", BadHeader, "negative scale"),
    (_positions(1, 0, 1) + b"\x00" + struct.pack("<f", float("nan")) + b"\x00", NonFiniteValue, "non-finite"),
    (_positions(1, 0, 1) + b"\x00" + struct.pack("<f", 2e6) + b"\x00", ValueOutOfBounds, "beyond"),
])
def test_forged_ternary_payloads_are_refused(payload: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        decode_update(_header(4, b"w", [10]) + payload, expected={"w": (10,)})


@pytest.mark.parametrize("payload, error, message", [
    (struct.pack("<f", -0.5) + bytes(4), BadHeader, "negative scale"),
    (struct.pack("<f", float("inf")) + bytes(4), NonFiniteValue, "non-finite"),
    (struct.pack("<f", 1e5) + b"\x7f\x00\x00\x00", ValueOutOfBounds, "beyond"),
    (struct.pack("<f", 1.0) + bytes(3), TruncatedBlob, "values"),
    (struct.pack("<f", 1.0) + bytes(5), TrailingBytes, "1 trailing"),
])
def test_forged_q8_payloads_are_refused(payload: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        decode_update(_header(2, b"w", [4]) + payload, expected={"w": (4,)})


def test_a_tiny_blob_cannot_declare_a_huge_sparse_tensor() -> None:
    """Without `expected`, the element bound that follows from max_bytes holds for sparse tensors too."""
    blob = _header(3, b"w", [2**31]) + _positions(0, 0, 0)
    with pytest.raises(LimitExceeded, match="exceeds"):
        decode_update(blob, max_bytes=1 << 20)
