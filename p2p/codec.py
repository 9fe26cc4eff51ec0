"""Wire codec for model updates: an explicit header plus raw little-endian tensor bytes.

Layout (all integers little-endian)::

    magic    4 bytes  b"MSWU"
    version  u8       1
    codec    u8       0 = f32, 1 = f16
    hdr_len  u32      length of the JSON header that follows (bounded by MAX_HEADER_BYTES)
    header   hdr_len bytes of UTF-8 JSON: {"t": [[name, shape], ...]}
    payload  the tensors' raw bytes, back to back, in header order ("<f4" or "<f2")

Decoding is strict: anything that is not exactly this layout raises :class:`CodecError`.
Nothing here ever unpickles; tensors are plain arrays described by the header.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping

import numpy as np
from Crypto.Hash import keccak

__all__ = ["CODECS", "CodecError", "decode_update", "digest", "encode_update"]

CODECS = ("f32", "f16")
MAGIC = b"MSWU"
VERSION = 1
MAX_HEADER_BYTES = 1 * 2**20
MAX_TENSORS = 4096
MAX_NAME_LEN = 256
MAX_NDIM = 8
_DTYPES = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2")}
_CODEC_IDS = {"f32": 0, "f16": 1}
_CODEC_NAMES = {v: k for k, v in _CODEC_IDS.items()}
_PREFIX = struct.Struct("<4sBBI")


class CodecError(ValueError):
    """Bytes that are not a well-formed, acceptable update."""


def digest(data: bytes | bytearray | memoryview) -> str:
    """keccak256 of ``data`` as ``"0x" + 64 lowercase hex`` (the project's digest format)."""
    h = keccak.new(digest_bits=256)
    h.update(data)
    return "0x" + h.hexdigest()


def encode_update(tensors: Mapping[str, np.ndarray], codec: str = "f32") -> bytes:
    """Encode named tensors (insertion order kept) as header + raw little-endian bytes.

    Raises CodecError for an unknown codec, bad names, non-finite values or values that
    overflow float16.
    """
    if codec not in CODECS:
        raise CodecError(f"unknown codec {codec!r}; expected one of {CODECS}")
    if len(tensors) > MAX_TENSORS:
        raise CodecError(f"too many tensors: {len(tensors)} > {MAX_TENSORS}")
    dtype = _DTYPES[codec]
    entries: list[list[object]] = []
    blobs: list[bytes] = []
    for name, value in tensors.items():
        _check_name(name)
        arr = np.asarray(value)
        if arr.ndim > MAX_NDIM:
            raise CodecError(f"tensor {name!r} has {arr.ndim} dimensions > {MAX_NDIM}")
        if arr.dtype.kind not in "fiu":
            raise CodecError(f"tensor {name!r} has non-numeric dtype {arr.dtype}")
        if not np.all(np.isfinite(arr)):
            raise CodecError(f"tensor {name!r} contains NaN or Inf")
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(arr, dtype=dtype)
        if codec == "f16" and not np.all(np.isfinite(out)):
            raise CodecError(f"tensor {name!r} overflows float16")
        entries.append([name, list(arr.shape)])
        blobs.append(out.tobytes())
    header = json.dumps({"t": entries}, separators=(",", ":")).encode()
    if len(header) > MAX_HEADER_BYTES:
        raise CodecError(f"header of {len(header)} bytes exceeds {MAX_HEADER_BYTES}")
    return b"".join([_PREFIX.pack(MAGIC, VERSION, _CODEC_IDS[codec], len(header)), header, *blobs])


def decode_update(
    data: bytes,
    expected: Mapping[str, tuple[int, ...]] | None = None,
    max_bytes: int = 256 * 2**20,
) -> dict[str, np.ndarray]:
    """Strictly decode bytes made by :func:`encode_update`; always returns float32 arrays.

    ``expected`` (name -> shape), when given, must match the encoded tensors exactly
    (same names, same shapes; order free).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CodecError(f"expected bytes, got {type(data).__name__}")
    view = memoryview(data)
    if len(view) > max_bytes:
        raise CodecError(f"update of {len(view)} bytes exceeds the limit of {max_bytes}")
    if len(view) < _PREFIX.size:
        raise CodecError(f"truncated: {len(view)} bytes is shorter than the {_PREFIX.size}-byte prefix")
    magic, version, codec_id, hdr_len = _PREFIX.unpack_from(view, 0)
    if magic != MAGIC:
        raise CodecError(f"bad magic {bytes(magic)!r}")
    if version != VERSION:
        raise CodecError(f"unsupported version {version}")
    codec = _CODEC_NAMES.get(codec_id)
    if codec is None:
        raise CodecError(f"unknown codec id {codec_id}")
    if hdr_len > MAX_HEADER_BYTES or hdr_len > len(view) - _PREFIX.size:
        raise CodecError(f"absurd header length {hdr_len} for {len(view)} bytes of input")
    entries = _parse_header(bytes(view[_PREFIX.size : _PREFIX.size + hdr_len]))
    dtype = _DTYPES[codec]
    offset = _PREFIX.size + hdr_len
    out: dict[str, np.ndarray] = {}
    for name, shape in entries:
        count = math.prod(shape)
        nbytes = count * dtype.itemsize
        if offset + nbytes > len(view):
            raise CodecError(
                f"truncated: tensor {name!r} needs {nbytes} bytes, {len(view) - offset} left"
            )
        arr = np.frombuffer(view, dtype=dtype, count=count, offset=offset).reshape(shape)
        offset += nbytes
        if not np.all(np.isfinite(arr)):
            raise CodecError(f"tensor {name!r} contains NaN or Inf")
        out[name] = arr.astype(np.float32, copy=True)
    if offset != len(view):
        raise CodecError(f"{len(view) - offset} trailing bytes after the last tensor")
    if expected is not None:
        _check_expected(out, expected)
    return out


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LEN:
        raise CodecError(f"bad tensor name {name!r}: want a non-empty str of <= {MAX_NAME_LEN} chars")


def _parse_header(raw: bytes) -> list[tuple[str, tuple[int, ...]]]:
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CodecError(f"header is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(header, dict) or set(header) != {"t"} or not isinstance(header["t"], list):
        raise CodecError("header must be an object with exactly the key 't' holding a list")
    if len(header["t"]) > MAX_TENSORS:
        raise CodecError(f"too many tensors: {len(header['t'])} > {MAX_TENSORS}")
    entries: list[tuple[str, tuple[int, ...]]] = []
    seen: set[str] = set()
    for item in header["t"]:
        if not (isinstance(item, list) and len(item) == 2 and isinstance(item[1], list)):
            raise CodecError(f"bad tensor entry {item!r:.100}")
        name, shape = item
        _check_name(name)
        if name in seen:
            raise CodecError(f"duplicate tensor name {name!r}")
        seen.add(name)
        if len(shape) > MAX_NDIM or not all(
            type(d) is int and 0 <= d < 2**40 for d in shape
        ):
            raise CodecError(f"bad shape {shape!r:.100} for tensor {name!r}")
        entries.append((name, tuple(shape)))
    return entries


def _check_expected(
    got: Mapping[str, np.ndarray], expected: Mapping[str, tuple[int, ...]]
) -> None:
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if missing or extra:
        raise CodecError(f"tensor names do not match the model: missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        if tuple(got[name].shape) != tuple(shape):
            raise CodecError(
                f"tensor {name!r} has shape {tuple(got[name].shape)}, the model expects {tuple(shape)}"
            )
