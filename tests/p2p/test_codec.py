"""Wire codec: exact round trips and strict rejection of malformed updates, each with its named error."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from p2p.codec import (
    MAGIC, MAX_ABS, BadHeader, CodecError, LimitExceeded, NonFiniteValue, ShapeMismatch, TrailingBytes,
    TruncatedBlob, ValueOutOfBounds, decode_update, digest, encode_update,
)

RNG = np.random.default_rng(1234)
TENSORS = {"layer.w": RNG.standard_normal((16, 8)).astype(np.float32), "layer.b": RNG.standard_normal(8).astype(np.float32)}
SHAPES = {k: v.shape for k, v in TENSORS.items()}


def _raw(entries: list[tuple[bytes, list[int]]], payload: bytes, *, codec: int = 0, version: int = 2,
         magic: bytes = MAGIC) -> bytes:
    """A blob with a hand-written header: (name, dims) per tensor, dims as u32."""
    head = struct.pack("<4sBBH", magic, version, codec, len(entries))
    for name, dims in entries:
        head += struct.pack("<B", len(name)) + name + struct.pack(f"<B{len(dims)}I", len(dims), *dims)
    return head + payload


def _f32(*values: float) -> bytes:
    return np.array(values, "<f4").tobytes()


def test_f32_round_trip_is_exact_and_keeps_order() -> None:
    data = encode_update(TENSORS)
    out = decode_update(data, expected=SHAPES)
    assert list(out) == list(TENSORS)
    for k in TENSORS:
        assert out[k].dtype == np.float32 and np.array_equal(out[k], TENSORS[k])


def test_f16_round_trip_is_close_and_half_the_size() -> None:
    f32, f16 = encode_update(TENSORS), encode_update(TENSORS, "f16")
    out = decode_update(f16, expected=SHAPES)
    assert len(f16) < 0.6 * len(f32)
    for k in TENSORS:
        assert out[k].dtype == np.float32
        np.testing.assert_allclose(out[k], TENSORS[k], rtol=1e-3, atol=1e-3)


def test_scalars_and_empty_tensors_round_trip() -> None:
    tensors = {"s": np.float32(2.5), "e": np.zeros((0, 3), np.float32)}
    out = decode_update(encode_update(tensors), expected={"s": (), "e": (0, 3)})
    assert out["s"].shape == () and float(out["s"]) == 2.5 and out["e"].shape == (0, 3)


def test_header_layout_is_flat_binary() -> None:
    data = encode_update({"w": np.array([1.0, 2.0], np.float32)})
    assert data == _raw([(b"w", [2])], _f32(1.0, 2.0))


def test_digest_is_keccak256_hex() -> None:
    assert digest(b"") == "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_encode_refuses_what_a_peer_would_reject() -> None:
    with pytest.raises(NonFiniteValue, match="NaN or Inf"):
        encode_update({"w": np.array([1.0, np.nan], np.float32)})
    with pytest.raises(BadHeader, match="unknown codec"):
        encode_update(TENSORS, "bf16")
    with pytest.raises(ValueOutOfBounds, match="overflows float16"):
        encode_update({"w": np.array([1e6], np.float32)}, "f16")
    with pytest.raises(ValueOutOfBounds, match="beyond"):
        encode_update({"w": np.array([1e36], np.float32)})
    with pytest.raises(BadHeader, match="bad tensor name"):
        encode_update({"w w": np.zeros(1, np.float32)})
    with pytest.raises(BadHeader, match="bad tensor name"):
        encode_update({"x" * 129: np.zeros(1, np.float32)})
    with pytest.raises(LimitExceeded, match="dims"):
        encode_update({"w": np.zeros((1,) * 9, np.float32)})
    assert decode_update(encode_update({"w": np.array([1e9])}, max_abs=1e10), max_abs=1e10)["w"][0] == 1e9


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (lambda d: d[:-1], TruncatedBlob, "truncated"),
        (lambda d: d + b"\x00", TrailingBytes, "trailing bytes"),
        (lambda d: b"XXXX" + d[4:], BadHeader, "bad magic"),
        (lambda d: d[:4] + b"\x01" + d[5:], BadHeader, "unsupported version"),
        (lambda d: d[:5] + b"\x07" + d[6:], BadHeader, "unknown codec"),
        (lambda d: d[:6] + struct.pack("<H", 5000) + d[8:], LimitExceeded, "too many tensors"),
        (lambda d: d[:12], TruncatedBlob, "truncated in tensor 0's name"),
        (lambda d: d[:20], TruncatedBlob, "truncated in tensor 'layer.w'"),
        (lambda d: d[:5], TruncatedBlob, "truncated"),
        (lambda d: b"", TruncatedBlob, "truncated"),
    ],
)
def test_decode_rejects_malformed_bytes(mutate, error, message) -> None:
    with pytest.raises(error, match=message):
        decode_update(mutate(encode_update(TENSORS)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_decode_rejects_nan_and_inf_payload(bad: float) -> None:
    with pytest.raises(NonFiniteValue, match="NaN or Inf"):
        decode_update(_raw([(b"w", [2])], _f32(1.0, bad)))
    half = np.array([1.0, bad], "<f2").tobytes()
    with pytest.raises(NonFiniteValue):
        decode_update(_raw([(b"w", [2])], half, codec=1))


def test_decode_rejects_values_beyond_the_bound() -> None:
    """Regression: an update scaled by 1e36 used to pass and overflow honest nodes' float32 later."""
    with pytest.raises(ValueOutOfBounds, match="beyond"):
        decode_update(_raw([(b"w", [2])], _f32(1.0, 1e36)))
    with pytest.raises(ValueOutOfBounds):
        decode_update(_raw([(b"w", [1])], _f32(-2 * MAX_ABS)))
    assert decode_update(_raw([(b"w", [1])], _f32(1e36)), max_abs=1e37)["w"][0] == np.float32(1e36)


def test_decode_rejects_wrong_shape_and_names() -> None:
    data = encode_update(TENSORS)
    with pytest.raises(ShapeMismatch, match="shape"):
        decode_update(data, expected={"layer.w": (8, 16), "layer.b": (8,)})
    with pytest.raises(ShapeMismatch, match="missing"):
        decode_update(data, expected={**SHAPES, "extra": (1,)})
    with pytest.raises(ShapeMismatch, match="unexpected"):
        decode_update(data, expected={"layer.w": (16, 8)})


def test_shapes_are_checked_before_the_payload() -> None:
    """A header that disagrees with the model is refused even when the payload is absent."""
    with pytest.raises(ShapeMismatch):
        decode_update(_raw([(b"w", [4, 4])], b""), expected={"w": (4, 3)})


def test_decode_rejects_oversize() -> None:
    data = encode_update(TENSORS)
    with pytest.raises(LimitExceeded, match="exceeds the limit"):
        decode_update(data, max_bytes=len(data) - 1)
    with pytest.raises(LimitExceeded, match="elements"):
        decode_update(data, max_elements=100)


@pytest.mark.parametrize(
    ("entries", "error"),
    [
        ([(b"w", [2]), (b"w", [2])], BadHeader),      # duplicate name
        ([(b"", [2])], BadHeader),                    # empty name
        ([(b"a b", [2])], BadHeader),                 # space in name
        ([(b"w\xff", [2])], BadHeader),               # non-ASCII name
        ([(b"w\n", [2])], BadHeader),                 # newline in name
        ([(b"x" * 129, [2])], BadHeader),             # name too long
        ([(b"w", [1] * 9)], LimitExceeded),           # too many dims
        ([(b"w", [2**20, 2**20])], LimitExceeded),    # too many elements
        ([(b"w", [2**26, 2]), (b"v", [2**26])], LimitExceeded),  # too many in all
    ],
)
def test_decode_rejects_bad_headers(entries, error) -> None:
    with pytest.raises(error):
        decode_update(_raw(entries, b"\x00" * 16))


def test_zero_dim_does_not_excuse_huge_dims() -> None:
    """Regression: [0, 2**39, 2**39] declared 0 elements and made numpy raise ValueError in reshape."""
    huge = 2**32 - 1  # the largest u32 dim the layout can declare
    with pytest.raises(LimitExceeded):
        decode_update(_raw([(b"w", [0, huge, huge])], b""))
    with pytest.raises(LimitExceeded):
        decode_update(_raw([(b"w", [0, huge, huge])], b""), expected={"w": (0, huge, huge)})
    with pytest.raises(CodecError):
        encode_update({"w": np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), (0, 2**33), (4, 4))})


def test_nested_json_header_is_never_parsed() -> None:
    """Regression: a 70 KB version-1 header of nested JSON overflowed the C stack in every node."""
    nested = b"[" * 70_000 + b"]" * 70_000
    v1 = struct.pack("<4sBBI", MAGIC, 1, 0, len(nested)) + nested
    with pytest.raises(BadHeader, match="unsupported version"):
        decode_update(v1)
    v2 = _raw([(b"w", [1])], b"") + nested  # nesting where the payload belongs
    with pytest.raises(TrailingBytes):
        decode_update(v2)
    old = json.dumps({"t": [["w", [0, 2**39, 2**39]]]}).encode()
    with pytest.raises(BadHeader):
        decode_update(struct.pack("<4sBBI", MAGIC, 1, 0, len(old)) + old)


@pytest.mark.parametrize("junk", [None, "text", 3, [1, 2]])
def test_decode_rejects_non_bytes(junk) -> None:
    with pytest.raises(BadHeader):
        decode_update(junk)


def test_decode_never_unpickles() -> None:
    import pickle

    with pytest.raises(CodecError):
        decode_update(pickle.dumps(TENSORS))
