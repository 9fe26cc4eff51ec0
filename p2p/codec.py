"""Wire codec for model updates: a flat binary header plus raw little-endian tensor bytes.

Layout, version 2 (all integers little-endian)::

    magic    4 bytes  b"MSWU"
    version  u8       2
    codec    u8       0 = f32, 1 = f16
    count    u16      number of tensors (<= MAX_TENSORS)
    count times:
        name_len  u8              1..MAX_NAME_LEN
        name      name_len bytes  ASCII from [A-Za-z0-9_./-]
        ndim      u8              0..MAX_NDIM
        dims      ndim x u32
    payload  the tensors' raw bytes, back to back, in header order ("<f4" or "<f2")

The header is flat on purpose. Peers are hostile input, and every node process runs with a
recursion limit of 100,000 (py_ecc, pulled in by web3, raises it at import), so a recursive
parser fed deeply nested bytes overflows the C stack and kills the process: version 1's JSON
header did exactly that. Here the header is read field by field with fixed-size integers, every
limit is checked before anything is allocated, and `expected` shapes are compared before the
payload is touched.

Every failure raises a named subclass of :class:`CodecError`; nothing else escapes
:func:`decode_update`. Nothing here ever unpickles.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Mapping

import numpy as np
from Crypto.Hash import keccak

__all__ = [
    "CODECS", "MAX_ABS", "BadHeader", "CodecError", "LimitExceeded", "NonFiniteValue", "ShapeMismatch",
    "TrailingBytes", "TruncatedBlob", "ValueOutOfBounds", "decode_update", "digest", "encode_update",
]

CODECS = ("f32", "f16")
MAGIC = b"MSWU"
VERSION = 2
MAX_TENSORS = 4096
MAX_NAME_LEN = 128
MAX_NDIM = 8
# Model weights and updates stay many orders of magnitude below this. Without a bound, an update
# scaled by 1e36 was accepted, merged, and then overflowed float32 on the honest nodes when they
# re-encoded their model: one member's bytes broke everyone's next round.
MAX_ABS = 1e6
_NAME_RE = re.compile(rb"[A-Za-z0-9_./-]{1,%d}" % MAX_NAME_LEN)
_DTYPES = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2")}
_CODEC_IDS = {"f32": 0, "f16": 1}
_CODEC_NAMES = {v: k for k, v in _CODEC_IDS.items()}
_PREFIX = struct.Struct("<4sBBH")
_U8 = struct.Struct("<B")
_DIMS = [struct.Struct(f"<{n}I") for n in range(MAX_NDIM + 1)]
_MAX_DIM = 2**32 - 1

Shapes = Mapping[str, tuple[int, ...]]


class CodecError(ValueError):
    """Bytes that are not a well-formed, acceptable update."""


class TruncatedBlob(CodecError):
    """The bytes end before the header or the payload it declares."""


class BadHeader(CodecError):
    """Wrong magic, version or codec id, or a malformed tensor name or duplicate."""


class LimitExceeded(CodecError):
    """Too many bytes, tensors, dimensions or elements."""


class ShapeMismatch(CodecError):
    """Tensor names or shapes differ from what the model expects."""


class NonFiniteValue(CodecError):
    """A NaN or an infinity."""


class ValueOutOfBounds(CodecError):
    """A finite value whose magnitude exceeds the allowed bound."""


class TrailingBytes(CodecError):
    """Bytes left over after the last tensor."""


def digest(data: bytes | bytearray | memoryview) -> str:
    """keccak256 of ``data`` as ``"0x" + 64 lowercase hex`` (the project's digest format)."""
    h = keccak.new(digest_bits=256)
    h.update(data)
    return "0x" + h.hexdigest()


def encode_update(tensors: Mapping[str, np.ndarray], codec: str = "f32", max_abs: float = MAX_ABS) -> bytes:
    """Encode named tensors (insertion order kept) as header + raw little-endian bytes.

    Refuses (with the CodecError subclass :func:`decode_update` would raise) anything a peer
    could not decode: an unknown codec, bad names, too many tensors or dimensions, non-finite
    values, values beyond ``max_abs`` and values that overflow float16.
    """
    if codec not in CODECS:
        raise BadHeader(f"unknown codec {codec!r}; expected one of {CODECS}")
    if len(tensors) > MAX_TENSORS:
        raise LimitExceeded(f"too many tensors: {len(tensors)} > {MAX_TENSORS}")
    dtype = _DTYPES[codec]
    header = [_PREFIX.pack(MAGIC, VERSION, _CODEC_IDS[codec], len(tensors))]
    blobs: list[bytes] = []
    for name, value in tensors.items():
        raw_name = name.encode("ascii", "replace") if isinstance(name, str) else b""
        if not isinstance(name, str) or not _NAME_RE.fullmatch(raw_name):
            raise BadHeader(f"bad tensor name {name!r:.80}: want 1-{MAX_NAME_LEN} chars of [A-Za-z0-9_./-]")
        arr = np.asarray(value)
        if arr.ndim > MAX_NDIM or any(d > _MAX_DIM for d in arr.shape):
            raise LimitExceeded(f"tensor {name!r} has shape {arr.shape}: want <= {MAX_NDIM} dims of < 2**32")
        if arr.dtype.kind not in "fiu":
            raise BadHeader(f"tensor {name!r} has non-numeric dtype {arr.dtype}")
        _check_values(name, arr, max_abs)
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(arr, dtype=dtype)
        if codec == "f16" and not np.all(np.isfinite(out)):
            raise ValueOutOfBounds(f"tensor {name!r} overflows float16")
        header.append(_U8.pack(len(raw_name)) + raw_name + struct.pack(f"<B{arr.ndim}I", arr.ndim, *arr.shape))
        blobs.append(out.tobytes())
    return b"".join(header + blobs)


def decode_update(
    data: bytes | bytearray | memoryview,
    expected: Shapes | None = None,
    max_bytes: int = 256 * 2**20,
    max_abs: float = MAX_ABS,
    max_elements: int | None = None,
) -> dict[str, np.ndarray]:
    """Strictly decode bytes made by :func:`encode_update`; always returns float32 arrays.

    ``expected`` (name -> shape), when given, must match the header exactly (same names, same
    shapes; order free); it is checked before any payload byte is read. ``max_abs`` bounds every
    value's magnitude. ``max_elements`` defaults to the most that ``max_bytes`` can hold (in
    float16). Raises a :class:`CodecError` subclass on anything else.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadHeader(f"expected bytes, got {type(data).__name__}")
    try:
        view = memoryview(data).cast("B")
    except (TypeError, ValueError):
        raise BadHeader("expected a contiguous byte buffer") from None
    if len(view) > max_bytes:
        raise LimitExceeded(f"update of {len(view)} bytes exceeds the limit of {max_bytes}")
    codec, entries, offset = _read_header(view, max_bytes // 2 if max_elements is None else max_elements)
    if expected is not None:
        _check_expected(entries, expected)
    dtype = _DTYPES[codec]
    total = sum(math.prod(shape) for _, shape in entries)
    have = len(view) - offset
    if have < total * dtype.itemsize:
        raise TruncatedBlob(f"truncated: the tensors need {total * dtype.itemsize} bytes, {have} left")
    if have > total * dtype.itemsize:
        raise TrailingBytes(f"{have - total * dtype.itemsize} trailing bytes after the last tensor")
    values = np.frombuffer(view, dtype=dtype, count=total, offset=offset).astype(np.float32)
    out: dict[str, np.ndarray] = {}
    start = 0
    for name, shape in entries:
        count = math.prod(shape)
        # The header fixed count == prod(shape) and the payload length, so this cannot raise.
        arr = values[start : start + count].reshape(shape)
        start += count
        _check_values(name, arr, max_abs)
        out[name] = arr
    return out


class _Cursor:
    """Reads fixed-size fields from the front of a buffer; running out is a TruncatedBlob."""

    def __init__(self, view: memoryview) -> None:
        self.view, self.pos = view, 0

    def take(self, fmt: struct.Struct, what: str) -> tuple[int | bytes, ...]:
        if self.pos + fmt.size > len(self.view):
            raise TruncatedBlob(f"truncated in {what}: {len(self.view)} bytes in all")
        fields = fmt.unpack_from(self.view, self.pos)
        self.pos += fmt.size
        return fields

    def raw(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.view):
            raise TruncatedBlob(f"truncated in {what}: {len(self.view)} bytes in all")
        chunk = bytes(self.view[self.pos : self.pos + n])
        self.pos += n
        return chunk


def _read_header(view: memoryview, max_elements: int) -> tuple[str, list[tuple[str, tuple[int, ...]]], int]:
    """(codec, [(name, shape)], payload offset); every limit checked as soon as its field is read."""
    cur = _Cursor(view)
    magic, version, codec_id, count = cur.take(_PREFIX, "the prefix")
    if magic != MAGIC:
        raise BadHeader(f"bad magic {magic!r}")
    if version != VERSION:
        raise BadHeader(f"unsupported version {version}; this node speaks version {VERSION}")
    codec = _CODEC_NAMES.get(int(codec_id))
    if codec is None:
        raise BadHeader(f"unknown codec id {codec_id}")
    if count > MAX_TENSORS:
        raise LimitExceeded(f"too many tensors: {count} > {MAX_TENSORS}")
    entries: list[tuple[str, tuple[int, ...]]] = []
    seen: set[str] = set()
    total = 0
    for i in range(int(count)):
        (name_len,) = cur.take(_U8, f"tensor {i}'s name length")
        raw_name = cur.raw(int(name_len), f"tensor {i}'s name")
        if not _NAME_RE.fullmatch(raw_name):
            raise BadHeader(f"bad tensor name {raw_name!r:.80}: want 1-{MAX_NAME_LEN} chars of [A-Za-z0-9_./-]")
        name = raw_name.decode("ascii")
        if name in seen:
            raise BadHeader(f"duplicate tensor name {name!r}")
        seen.add(name)
        (ndim,) = cur.take(_U8, f"tensor {name!r}'s ndim")
        if ndim > MAX_NDIM:
            raise LimitExceeded(f"tensor {name!r} has {ndim} dimensions > {MAX_NDIM}")
        shape = tuple(int(d) for d in cur.take(_DIMS[int(ndim)], f"tensor {name!r}'s dims"))
        # Zero-length dims do not excuse the others: numpy refuses [0, 2**31, 2**31] with a
        # ValueError, so the bound applies to the product of the non-zero dims too.
        if math.prod(max(d, 1) for d in shape) > max_elements:
            raise LimitExceeded(f"tensor {name!r} of shape {shape} exceeds {max_elements} elements")
        total += math.prod(shape)
        if total > max_elements:
            raise LimitExceeded(f"the tensors exceed {max_elements} elements in all")
        entries.append((name, shape))
    return codec, entries, cur.pos


def _check_expected(entries: list[tuple[str, tuple[int, ...]]], expected: Shapes) -> None:
    got = dict(entries)
    missing = [n for n in expected if n not in got]
    extra = [n for n in got if n not in expected]
    if missing or extra:
        # At most a few names each: a hostile header can carry 4096 of them.
        raise ShapeMismatch(f"tensor names do not match the model: missing {missing[:4]} ({len(missing)}), "
                            f"unexpected {extra[:4]} ({len(extra)})")
    for name, shape in expected.items():
        if got[name] != tuple(shape):
            raise ShapeMismatch(f"tensor {name!r} has shape {got[name]}, the model expects {tuple(shape)}")


def _check_values(name: str, arr: np.ndarray, bound: float) -> None:
    with np.errstate(over="ignore", invalid="ignore"):
        if np.all(np.abs(arr) <= bound):  # False for NaN too
            return
    if not np.all(np.isfinite(arr)):
        raise NonFiniteValue(f"tensor {name!r} contains NaN or Inf")
    raise ValueOutOfBounds(f"tensor {name!r} has a value beyond +-{bound:g}")
