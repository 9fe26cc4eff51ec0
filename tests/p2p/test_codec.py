"""Wire codec: exact round trips and strict rejection of malformed updates."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from p2p.codec import MAGIC, CodecError, decode_update, digest, encode_update

RNG = np.random.default_rng(1234)
TENSORS = {"layer.w": RNG.standard_normal((16, 8)).astype(np.float32), "layer.b": RNG.standard_normal(8).astype(np.float32)}
SHAPES = {k: v.shape for k, v in TENSORS.items()}


def _raw(header: object, payload: bytes, *, codec: int = 0, version: int = 1, magic: bytes = MAGIC) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<4sBBI", magic, version, codec, len(h)) + h + payload


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


def test_digest_is_keccak256_hex() -> None:
    assert digest(b"") == "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def test_encode_rejects_nan_unknown_codec_and_f16_overflow() -> None:
    with pytest.raises(CodecError, match="NaN or Inf"):
        encode_update({"w": np.array([1.0, np.nan], np.float32)})
    with pytest.raises(CodecError, match="unknown codec"):
        encode_update(TENSORS, "bf16")
    with pytest.raises(CodecError, match="overflows float16"):
        encode_update({"w": np.array([1e6], np.float32)}, "f16")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d[:-1], "truncated"),
        (lambda d: d + b"\x00", "trailing bytes"),
        (lambda d: b"XXXX" + d[4:], "bad magic"),
        (lambda d: d[:4] + b"\x02" + d[5:], "unsupported version"),
        (lambda d: d[:5] + b"\x07" + d[6:], "unknown codec"),
        (lambda d: d[:6] + struct.pack("<I", 2**31) + d[10:], "absurd header length"),
        (lambda d: d[:5], "truncated"),
    ],
)
def test_decode_rejects_malformed_bytes(mutate, message) -> None:
    with pytest.raises(CodecError, match=message):
        decode_update(mutate(encode_update(TENSORS)))


def test_decode_rejects_nan_and_inf_payload() -> None:
    for bad in (np.nan, np.inf, -np.inf):
        payload = np.array([1.0, bad], "<f4").tobytes()
        with pytest.raises(CodecError, match="NaN or Inf"):
            decode_update(_raw({"t": [["w", [2]]]}, payload))


def test_decode_rejects_wrong_shape_and_names() -> None:
    data = encode_update(TENSORS)
    with pytest.raises(CodecError, match="shape"):
        decode_update(data, expected={"layer.w": (8, 16), "layer.b": (8,)})
    with pytest.raises(CodecError, match="missing"):
        decode_update(data, expected={**SHAPES, "extra": (1,)})
    with pytest.raises(CodecError, match="unexpected"):
        decode_update(data, expected={"layer.w": (16, 8)})


def test_decode_rejects_oversize() -> None:
    data = encode_update(TENSORS)
    with pytest.raises(CodecError, match="exceeds the limit"):
        decode_update(data, max_bytes=len(data) - 1)


@pytest.mark.parametrize(
    "header",
    [
        {"t": [["w", [2]], ["w", [2]]]},        # duplicate name
        {"t": [["w", [-1]]]},                   # negative dim
        {"t": [["w", [2.0]]]},                  # float dim
        {"t": [["w", [True]]]},                 # bool dim
        {"t": [["", [2]]]},                     # empty name
        {"t": [["w", [2]]], "x": 1},            # unknown key
        {"t": [["w"]]},                         # missing shape
        [1, 2],                                 # not an object
        {"t": [["w", [1] * 9]]},                # too many dims
    ],
)
def test_decode_rejects_bad_headers(header) -> None:
    with pytest.raises(CodecError):
        decode_update(_raw(header, b"\x00" * 16))


def test_decode_rejects_non_json_header_and_huge_dims() -> None:
    with pytest.raises(CodecError, match="JSON"):
        decode_update(struct.pack("<4sBBI", MAGIC, 1, 0, 3) + b"\xff\xfe\x00")
    with pytest.raises(CodecError, match="truncated"):
        decode_update(_raw({"t": [["w", [2**39, 2**39]]]}, b""))


def test_decode_never_unpickles() -> None:
    import pickle

    with pytest.raises(CodecError):
        decode_update(pickle.dumps(TENSORS))
