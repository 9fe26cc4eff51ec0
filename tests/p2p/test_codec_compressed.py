"""The compressed wire codecs (q8, sparse16, ternary): what they keep, their size, and strict
rejection of forged payloads, each with its named error and before any large allocation."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from p2p.codec import (
    BadHeader, BadPositions, LimitExceeded, NonFiniteValue, ShapeMismatch, TrailingBytes, TruncatedBlob,
    ValueOutOfBounds, decode_update, encode_update, layout_tag,
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


# ---------------------------------------------------------------------- the compact frame (version 3)

def _compact(codec: int, shapes: dict[str, tuple[int, ...]]) -> bytes:
    return struct.pack("<4sBB", b"MSWU", 3, codec) + layout_tag(shapes)


@pytest.mark.parametrize("codec", ["sparse16", "ternary"])
def test_the_compact_frame_decodes_to_what_the_named_one_does_in_fewer_bytes(codec: str) -> None:
    sparse = _sparse(0.01, seed=3)
    named, compact = encode_update(sparse, codec), encode_update(sparse, codec, compact=True)
    out = decode_update(compact, expected=SHAPES, codec=codec)
    ref = decode_update(named, expected=SHAPES)
    for k in SHAPES:
        assert np.array_equal(out[k] != 0, sparse[k] != 0)
        if codec == "sparse16":
            assert np.array_equal(out[k], ref[k])
        else:  # the same signs; each tensor's scale at float16 instead of float32
            assert np.array_equal(np.sign(out[k]), np.sign(ref[k]))
            np.testing.assert_allclose(out[k], ref[k], rtol=1e-3)
    # no names, shapes or per-tensor position headers: 2 tensors' worth saved
    assert len(compact) < len(named) - 20


def test_a_compact_update_of_a_small_model_is_a_hundredth_of_its_float32_bytes() -> None:
    """The heart mlp (22 inputs, 1,858 parameters), top 1% per tensor as the ternary stage keeps it."""
    shapes = {"net.0.weight": (32, 22), "net.0.bias": (32,), "net.2.weight": (32, 32), "net.2.bias": (32,),
              "net.4.weight": (2, 32), "net.4.bias": (2,)}
    gen = np.random.default_rng(5)
    tensors = {}
    for name, shape in shapes.items():
        v = gen.standard_normal(shape).astype(np.float32).ravel()
        keep = max(1, round(0.01 * v.size))
        v[np.argsort(-np.abs(v))[keep:]] = 0
        tensors[name] = v.reshape(shape)
    blob = encode_update(tensors, "ternary", compact=True)
    assert len(encode_update(tensors)) / len(blob) >= 100
    assert len(encode_update(tensors, "ternary")) / len(blob) > 3


def test_a_compact_update_leaves_out_the_scale_of_a_tensor_with_no_kept_entry() -> None:
    tensors = {"a": np.array([0, 0, 0], np.float32), "b": np.array([0, -2, 4], np.float32)}
    blob = encode_update(tensors, "ternary", compact=True)
    out = decode_update(blob, expected={"a": (3,), "b": (3,)})
    assert out["a"].tolist() == [0, 0, 0] and out["b"].tolist() == [0, -3, 3]
    # head 14 + positions (9 + 1 quotient byte) + one float16 scale + one byte of signs
    assert len(blob) == 14 + 10 + 2 + 1


def test_a_compact_update_needs_the_models_layout_and_only_that_one() -> None:
    blob = encode_update(_sparse(0.05), "ternary", compact=True)
    with pytest.raises(BadHeader, match="needs the model's layout"):
        decode_update(blob)
    with pytest.raises(ShapeMismatch, match="layout tag"):
        decode_update(blob, expected={**SHAPES, "b": (51,)})
    with pytest.raises(ShapeMismatch, match="layout tag"):
        decode_update(blob, expected={"w": SHAPES["w"], "c": SHAPES["b"]})
    with pytest.raises(BadHeader, match="where this task uses sparse16"):
        decode_update(blob, expected=SHAPES, codec="sparse16")
    with pytest.raises(BadHeader, match="sparse codecs"):
        encode_update(DENSE, "q8", compact=True)


W10 = {"w": (10,)}


@pytest.mark.parametrize("payload, error, message", [
    (b"", TruncatedBlob, "the layout tag"),
    (layout_tag({"w": (11,)}) + _positions(1, 0, 1) + b"\x00" + b"\x00\x3c" + b"\x00", ShapeMismatch, "layout tag"),
    (layout_tag(W10) + _positions(11, 0, 0), LimitExceeded, "claims 11 non-zero entries of 10"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00", TruncatedBlob, "scales"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x3c", TruncatedBlob, "signs"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x3c" + b"\x40", BadPositions, "padding after its sign"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\xbc" + b"\x00", BadHeader, "negative scale"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x80" + b"\x00", BadHeader, "negative scale"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x7e" + b"\x00", NonFiniteValue, "non-finite"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x7c" + b"\x00", NonFiniteValue, "non-finite"),
    (layout_tag(W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x3c" + b"\x00\x00", TrailingBytes, "1 trailing"),
])
def test_forged_compact_ternary_payloads_are_refused(payload: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        decode_update(struct.pack("<4sBB", b"MSWU", 3, 4) + payload, expected=W10)
    well_formed = _compact(4, W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x3c" + b"\x00"
    assert decode_update(well_formed, expected=W10)["w"].tolist() == [1.0] + [0.0] * 9


def test_a_compact_frame_refuses_a_dense_codec_and_bounds_the_values() -> None:
    with pytest.raises(BadHeader, match="carries a sparse codec"):
        decode_update(_compact(0, W10) + bytes(40), expected=W10)
    with pytest.raises(ValueOutOfBounds, match="beyond"):  # 2.0 as float16, bound 1
        decode_update(_compact(3, W10) + _positions(1, 0, 1) + b"\x00" + b"\x00\x40", expected=W10, max_abs=1.0)
    with pytest.raises(LimitExceeded, match="exceed"):
        decode_update(_compact(3, {"w": (2**31,)}) + _positions(0, 0, 0), expected={"w": (2**31,)}, max_bytes=1 << 20)
