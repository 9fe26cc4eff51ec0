"""Wire codec for model updates: a flat binary header plus raw little-endian tensor bytes.

Layout, version 2 (all integers little-endian)::

    magic    4 bytes  b"MSWU"
    version  u8       2
    codec    u8       0 = f32, 1 = f16, 2 = q8, 3 = sparse16, 4 = ternary
    count    u16      number of tensors (<= MAX_TENSORS)
    count times:
        name_len  u8              1..MAX_NAME_LEN
        name      name_len bytes  ASCII from [A-Za-z0-9_./-]
        ndim      u8              0..MAX_NDIM
        dims      ndim x u32
    payload  per codec, the tensors in header order:
        f32, f16   their raw bytes back to back ("<f4" or "<f2")
        q8         per tensor: scale f32, then one i8 per element; value = i8 x scale
        sparse16   per tensor: the non-zero positions (below), then one "<f2" value per position
        ternary    per tensor: the non-zero positions, scale f32, then one sign bit per position
                   (1 = negative, MSB first, zero-padded to a byte); value = +-scale

Non-zero positions (p2p.rice), for n elements: nnz u32 (<= n), Rice parameter u8 (<= 31),
quotient-stream length u32 and the stream, then ceil(nnz x k / 8) bytes of remainders.

Compact layout, version 3, for the sparse codecs only (what a task's pipeline sends: every
member knows the model, so the update need not name its tensors)::

    magic    4 bytes  b"MSWU"
    version  u8       3
    codec    u8       3 = sparse16, 4 = ternary
    layout   8 bytes  layout_tag(the model's shapes)
    payload  the non-zero positions of all tensors flattened in name order (one stream), then
        sparse16   one "<f2" value per position
        ternary    one "<f2" scale per tensor holding a position (name order), then one sign bit
                   per position; value = +-its tensor's scale

On a 1,858-parameter mlp at 1% that is 62 bytes, against 234 in version 2 (names, shapes and a
position header per tensor) and 7,554 in float32.

The dense codecs are exact (f32) or round to float16; q8 is lossy by design (per-tensor scale
max|x| / 127, round to nearest); sparse16 keeps every non-zero entry at float16 precision, and
ternary replaces each non-zero entry by its sign times the mean magnitude of the tensor's non-zero
entries. Which entries are non-zero, and what to do with what is left out, is the sender's
compression stage's business (node.pipeline); the codec only writes what it is given.

The header is flat on purpose. Peers are hostile input, and every node process runs with a
recursion limit of 100,000 (py_ecc, pulled in by web3, raises it at import), so a recursive
parser fed deeply nested bytes overflows the C stack and kills the process: version 1's JSON
header did exactly that. Here the header is read field by field with fixed-size integers, every
limit is checked before anything is allocated, and `expected` shapes are compared before the
payload is touched. A sparse tensor decodes to the dense float32 array the header declares, so
its size is bounded by the same element limit as a dense one.

Every failure raises a named subclass of :class:`CodecError`; nothing else escapes
:func:`decode_update`. Nothing here ever unpickles.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Callable, Mapping

import numpy as np
import sha3

from .rice import RiceError, decode_indices, encode_indices, max_unary_bytes, rice_parameter

__all__ = [
    "CODECS", "COMPACT_VERSION", "DENSE", "MAX_ABS", "SPARSE", "BadHeader", "BadPositions", "CodecError", "LimitExceeded", "NonFiniteValue", "ShapeMismatch",
    "TrailingBytes", "TruncatedBlob", "ValueOutOfBounds", "decode_update", "digest", "encode_update", "keccak256", "layout_tag",
]

CODECS = ("f32", "f16", "q8", "sparse16", "ternary")
DENSE = ("f32", "f16")
SPARSE = ("sparse16", "ternary")
MAGIC = b"MSWU"
VERSION = 2
COMPACT_VERSION = 3  # sparse codecs only: the layout is the model's, named by a tag
MAX_TENSORS = 4096
MAX_NAME_LEN = 128
MAX_NDIM = 8
# Model weights and updates stay many orders of magnitude below this. Without a bound, an update
# scaled by 1e36 was accepted, merged, and then overflowed float32 on the honest nodes when they
# re-encoded their model: one member's bytes broke everyone's next round.
MAX_ABS = 1e6
_NAME_RE = re.compile(rb"[A-Za-z0-9_./-]{1,%d}" % MAX_NAME_LEN)
_DTYPES = {"f32": np.dtype("<f4"), "f16": np.dtype("<f2")}
_CODEC_IDS = {name: i for i, name in enumerate(CODECS)}
_CODEC_NAMES = {v: k for k, v in _CODEC_IDS.items()}
_HEAD = struct.Struct("<4sBB")  # magic, version, codec id: how both versions begin
_COUNT = struct.Struct("<H")
_TAG = struct.Struct("<8s")
_U8 = struct.Struct("<B")
_F32 = struct.Struct("<f")
_POSITIONS = struct.Struct("<IBI")  # nnz, Rice parameter, quotient-stream length
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


class BadPositions(CodecError):
    """A sparse tensor's position code or sign bits are not canonical (p2p.rice)."""


class TrailingBytes(CodecError):
    """Bytes left over after the last tensor."""


def keccak256() -> "sha3.keccak_256":
    """A fresh keccak256 hasher (Ethereum's, not SHA3-256: the padding differs).

    safe-pysha3's C keccak: 1.5-1.8x pycryptodome's here, and it releases the GIL on large
    inputs, so a fetch can verify in a worker thread while the next frames arrive.
    """
    return sha3.keccak_256()


def digest(data: bytes | bytearray | memoryview) -> str:
    """keccak256 of ``data`` as ``"0x" + 64 lowercase hex`` (the project's digest format)."""
    h = keccak256()
    h.update(data)
    return "0x" + h.hexdigest()


def encode_update(tensors: Mapping[str, np.ndarray], codec: str = "f32", max_abs: float = MAX_ABS,
                  compact: bool = False) -> bytes:
    """Encode named tensors (insertion order kept) as header + raw little-endian bytes.

    ``compact`` (sparse codecs only) writes version 3: no names or shapes, only the layout's
    tag, and the tensors' non-zero positions as one stream over all of them in name order; the
    receiver supplies the layout (``expected``). Refuses (with the CodecError subclass
    :func:`decode_update` would raise) anything a peer could not decode: an unknown codec, bad
    names, too many tensors or dimensions, non-finite values, values beyond ``max_abs`` and
    values that overflow float16.
    """
    if codec not in CODECS:
        raise BadHeader(f"unknown codec {codec!r}; expected one of {CODECS}")
    if compact and codec not in SPARSE:
        raise BadHeader(f"the compact frame carries the sparse codecs {SPARSE}, not {codec}")
    if len(tensors) > MAX_TENSORS:
        raise LimitExceeded(f"too many tensors: {len(tensors)} > {MAX_TENSORS}")
    arrays = {name: _checked_array(name, value, max_abs) for name, value in tensors.items()}
    if compact:
        return _encode_compact(arrays, codec)
    header = [_HEAD.pack(MAGIC, VERSION, _CODEC_IDS[codec]) + _COUNT.pack(len(arrays))]
    blobs: list[bytes] = []
    for name, arr in arrays.items():
        raw_name = name.encode("ascii")
        header.append(_U8.pack(len(raw_name)) + raw_name + struct.pack(f"<B{arr.ndim}I", arr.ndim, *arr.shape))
        blobs.append(_WRITERS[codec](name, arr, max_abs))
    return b"".join(header + blobs)


def layout_tag(shapes: Shapes) -> bytes:
    """8 bytes naming a model layout: keccak256 of "name:d1xd2;..." over the names in sorted order."""
    text = ";".join(f"{name}:{'x'.join(str(int(d)) for d in shapes[name])}" for name in sorted(shapes))
    h = keccak256()
    h.update(text.encode("ascii", "replace"))
    return h.digest()[:_TAG.size]


def _checked_array(name: object, value: np.ndarray, max_abs: float) -> np.ndarray:
    raw_name = name.encode("ascii", "replace") if isinstance(name, str) else b""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(raw_name):
        raise BadHeader(f"bad tensor name {name!r:.80}: want 1-{MAX_NAME_LEN} chars of [A-Za-z0-9_./-]")
    arr = np.asarray(value)
    if arr.ndim > MAX_NDIM or any(d > _MAX_DIM for d in arr.shape):
        raise LimitExceeded(f"tensor {name!r} has shape {arr.shape}: want <= {MAX_NDIM} dims of < 2**32")
    if arr.dtype.kind not in "fiu":
        raise BadHeader(f"tensor {name!r} has non-numeric dtype {arr.dtype}")
    _check_values(name, arr, max_abs)
    return arr


def _encode_compact(arrays: dict[str, np.ndarray], codec: str) -> bytes:
    names = sorted(arrays)
    flat = np.concatenate([np.asarray(arrays[n], dtype=np.float32).ravel() for n in names] or [np.zeros(0, np.float32)])
    positions, idx = _write_positions(flat)
    head = _HEAD.pack(MAGIC, COMPACT_VERSION, _CODEC_IDS[codec]) + layout_tag({n: arrays[n].shape for n in names})
    with np.errstate(over="ignore"):
        if codec == "sparse16":
            values = flat[idx].astype("<f2")
            if not np.all(np.isfinite(values)):
                raise ValueOutOfBounds("a kept value overflows float16")
            return head + positions + values.tobytes()
        counts = _per_tensor_counts(idx, [arrays[n].size for n in names])
        starts = np.cumsum(counts) - counts
        scales = np.array([np.abs(flat[idx[a:a + c]]).mean(dtype=np.float64) for a, c in zip(starts, counts) if c],
                          dtype=np.float64).astype("<f2")
    if not np.all(np.isfinite(scales)):
        raise ValueOutOfBounds("a tensor's mean kept magnitude overflows float16")
    return head + positions + scales.tobytes() + np.packbits(flat[idx] < 0).tobytes()


def _per_tensor_counts(idx: np.ndarray, sizes: list[int]) -> np.ndarray:
    """How many of the sorted flat positions `idx` fall in each tensor of `sizes` (in order)."""
    bounds = np.concatenate(([0], np.cumsum(sizes, dtype=np.int64)))
    return np.diff(np.searchsorted(idx, bounds))


def decode_update(
    data: bytes | bytearray | memoryview,
    expected: Shapes | None = None,
    max_bytes: int = 256 * 2**20,
    max_abs: float = MAX_ABS,
    max_elements: int | None = None,
    codec: str | None = None,
) -> dict[str, np.ndarray]:
    """Strictly decode bytes made by :func:`encode_update`; always returns float32 arrays.

    ``expected`` (name -> shape), when given, must match the header exactly (same names, same
    shapes; order free); it is checked before any payload byte is read. A compact (version 3)
    update names no tensors: it decodes only with ``expected``, whose layout tag it must carry. ``max_abs`` bounds every
    value's magnitude. ``max_elements`` defaults to the most that ``max_bytes`` can hold (in
    float16). ``codec``, when given, is the only codec accepted (a task fixes its codec).
    Raises a :class:`CodecError` subclass on anything else.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise BadHeader(f"expected bytes, got {type(data).__name__}")
    try:
        view = memoryview(data).cast("B")
    except (TypeError, ValueError):
        raise BadHeader("expected a contiguous byte buffer") from None
    if len(view) > max_bytes:
        raise LimitExceeded(f"update of {len(view)} bytes exceeds the limit of {max_bytes}")
    limit = max_bytes // 2 if max_elements is None else max_elements
    found, version, cur = _read_head(view)
    if codec is not None and found != codec:
        raise BadHeader(f"codec {found} where this task uses {codec}")
    codec = found
    if version == COMPACT_VERSION:
        return _read_compact(cur, codec, expected, limit, max_abs)
    entries, offset = _read_entries(cur, limit)
    if expected is not None:
        _check_expected(entries, expected)
    if codec in DENSE:
        return _read_dense(view, offset, codec, entries, max_abs)
    cur = _Cursor(view, offset)
    out: dict[str, np.ndarray] = {}
    for name, shape in entries:
        arr = _READERS[codec](cur, name, math.prod(shape)).reshape(shape)
        _check_values(name, arr, max_abs)
        out[name] = arr
    if cur.pos != len(view):
        raise TrailingBytes(f"{len(view) - cur.pos} trailing bytes after the last tensor")
    return out


def _read_dense(view: memoryview, offset: int, codec: str, entries: list[tuple[str, tuple[int, ...]]],
                max_abs: float) -> dict[str, np.ndarray]:
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


# ---------------------------------------------------------------------- per-codec payloads

def _write_dense(dtype: np.dtype) -> "Writer":
    def write(name: str, arr: np.ndarray, max_abs: float) -> bytes:
        with np.errstate(over="ignore"):
            out = np.ascontiguousarray(arr, dtype=dtype)
        if dtype.itemsize == 2 and not np.all(np.isfinite(out)):
            raise ValueOutOfBounds(f"tensor {name!r} overflows float16")
        return out.tobytes()
    return write


def _write_q8(name: str, arr: np.ndarray, max_abs: float) -> bytes:
    flat = np.asarray(arr, dtype=np.float32).ravel()
    scale = np.float32(np.abs(flat).max() / 127) if flat.size else np.float32(0)
    q = np.rint(flat / scale).astype(np.int8) if scale > 0 else np.zeros(flat.size, np.int8)
    _check_values(name, q.astype(np.float32) * scale, max_abs)  # what the peers will decode
    return _F32.pack(scale) + q.tobytes()


def _write_positions(flat: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The non-zero positions of `flat`, Rice coded, and the positions themselves."""
    idx = np.flatnonzero(flat)
    k = rice_parameter(idx.size, flat.size)
    unary, remainders = encode_indices(idx, k)
    return _POSITIONS.pack(idx.size, k, len(unary)) + unary + remainders, idx


def _write_sparse16(name: str, arr: np.ndarray, max_abs: float) -> bytes:
    positions, idx = _write_positions(np.asarray(arr, dtype=np.float32).ravel())
    with np.errstate(over="ignore"):
        values = np.asarray(arr, dtype=np.float32).ravel()[idx].astype("<f2")
    if not np.all(np.isfinite(values)):
        raise ValueOutOfBounds(f"tensor {name!r} overflows float16")
    return positions + values.tobytes()


def _write_ternary(name: str, arr: np.ndarray, max_abs: float) -> bytes:
    flat = np.asarray(arr, dtype=np.float32).ravel()
    positions, idx = _write_positions(flat)
    scale = np.float32(np.abs(flat[idx]).mean(dtype=np.float64)) if idx.size else np.float32(0)
    return positions + _F32.pack(scale) + np.packbits(flat[idx] < 0).tobytes()


def _read_q8(cur: "_Cursor", name: str, count: int) -> np.ndarray:
    scale = _read_scale(cur, name)
    return cur.array(count, np.dtype("i1"), f"tensor {name!r}'s values").astype(np.float32) * scale


def _read_scale(cur: "_Cursor", name: str) -> np.float32:
    (scale,) = cur.take(_F32, f"tensor {name!r}'s scale")
    if not math.isfinite(scale):
        raise NonFiniteValue(f"tensor {name!r} has a non-finite scale")
    if scale < 0:
        raise BadHeader(f"tensor {name!r} has a negative scale")
    return np.float32(scale)


def _read_positions(cur: "_Cursor", what: str, count: int) -> np.ndarray:
    """The Rice-coded non-zero positions of `what` (a tensor, or a compact update's flat vector)."""
    nnz, k, unary_len = cur.take(_POSITIONS, f"{what}'s positions")
    if nnz > count:
        raise LimitExceeded(f"{what} claims {nnz} non-zero entries of {count}")
    # Checked before the streams are read: unpacking takes 8 bytes of memory per stream byte.
    if k > 31 or unary_len > max_unary_bytes(nnz, count, k):
        raise BadPositions(f"{what}: Rice parameter {k} / stream of {unary_len} bytes impossible "
                           f"for {nnz} of {count} entries")
    unary = cur.slice(unary_len, f"{what}'s positions")
    remainders = cur.slice((nnz * k + 7) // 8, f"{what}'s positions")
    try:
        return decode_indices(unary, remainders, nnz, k, count)
    except RiceError as exc:
        raise BadPositions(f"{what}: {exc}") from None


def _read_sparse16(cur: "_Cursor", name: str, count: int) -> np.ndarray:
    idx = _read_positions(cur, f"tensor {name!r}", count)
    dense = np.zeros(count, np.float32)
    dense[idx] = cur.array(idx.size, np.dtype("<f2"), f"tensor {name!r}'s values")
    return dense


def _read_ternary(cur: "_Cursor", name: str, count: int) -> np.ndarray:
    idx = _read_positions(cur, f"tensor {name!r}", count)
    scale = _read_scale(cur, name)
    negative = _read_signs(cur, f"tensor {name!r}", idx.size)
    dense = np.zeros(count, np.float32)
    dense[idx] = np.where(negative, -scale, scale)
    return dense


def _read_signs(cur: "_Cursor", what: str, n: int) -> np.ndarray:
    signs = np.unpackbits(cur.array((n + 7) // 8, np.dtype("u1"), f"{what}'s signs"))
    if signs[n:].any():
        raise BadPositions(f"{what}: non-zero padding after its sign bits")
    return signs[:n].astype(bool)


Writer = Callable[[str, np.ndarray, float], bytes]
Reader = Callable[["_Cursor", str, int], np.ndarray]
_WRITERS: dict[str, Writer] = {"f32": _write_dense(_DTYPES["f32"]), "f16": _write_dense(_DTYPES["f16"]),
                               "q8": _write_q8, "sparse16": _write_sparse16, "ternary": _write_ternary}
_READERS: dict[str, Reader] = {"q8": _read_q8, "sparse16": _read_sparse16, "ternary": _read_ternary}


class _Cursor:
    """Reads fixed-size fields from the front of a buffer; running out is a TruncatedBlob."""

    def __init__(self, view: memoryview, pos: int = 0) -> None:
        self.view, self.pos = view, pos

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

    def slice(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.view):
            raise TruncatedBlob(f"truncated in {what}: {len(self.view)} bytes in all")
        chunk = self.view[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def array(self, n: int, dtype: np.dtype, what: str) -> np.ndarray:
        return np.frombuffer(self.slice(n * dtype.itemsize, what), dtype=dtype)


def _read_head(view: memoryview) -> tuple[str, int, "_Cursor"]:
    """(codec, version, cursor after the head) of either version."""
    cur = _Cursor(view)
    magic, version, codec_id = cur.take(_HEAD, "the prefix")
    if magic != MAGIC:
        raise BadHeader(f"bad magic {magic!r}")
    if version not in (VERSION, COMPACT_VERSION):
        raise BadHeader(f"unsupported version {version}; this node speaks versions {VERSION} and {COMPACT_VERSION}")
    codec = _CODEC_NAMES.get(int(codec_id))
    if codec is None:
        raise BadHeader(f"unknown codec id {codec_id}")
    return codec, int(version), cur


def _read_entries(cur: "_Cursor", max_elements: int) -> tuple[list[tuple[str, tuple[int, ...]]], int]:
    """Version 2's ([(name, shape)], payload offset); every limit checked as soon as its field is read."""
    (count,) = cur.take(_COUNT, "the prefix")
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
    return entries, cur.pos


def _read_compact(cur: "_Cursor", codec: str, expected: Shapes | None, max_elements: int,
                  max_abs: float) -> dict[str, np.ndarray]:
    """Version 3: the layout tag, then one position stream over the flat vector (tensors in name
    order), then per codec: sparse16 one float16 per position; ternary one float16 scale per
    tensor holding a position, then one sign bit per position."""
    if codec not in SPARSE:
        raise BadHeader(f"a compact update carries a sparse codec {SPARSE}, not {codec}")
    if expected is None:
        raise BadHeader("a compact update names no tensors: decoding it needs the model's layout")
    (tag,) = cur.take(_TAG, "the layout tag")
    if tag != layout_tag(expected):
        raise ShapeMismatch(f"the update's layout tag {bytes(tag).hex()} is not the model's {layout_tag(expected).hex()}")
    names = sorted(expected)
    sizes = [math.prod(expected[n]) for n in names]
    total = sum(sizes)
    if total > max_elements:
        raise LimitExceeded(f"the model's {total} elements exceed {max_elements}")
    idx = _read_positions(cur, "the update", total)
    if codec == "sparse16":
        values = cur.array(idx.size, np.dtype("<f2"), "the update's values").astype(np.float32)
    else:
        counts = _per_tensor_counts(idx, sizes)
        scales = cur.array(int(np.count_nonzero(counts)), np.dtype("<f2"), "the update's scales").astype(np.float32)
        if not np.all(np.isfinite(scales)):
            raise NonFiniteValue("a tensor has a non-finite scale")
        if np.any(np.signbit(scales)):
            raise BadHeader("a tensor has a negative scale")
        magnitudes = np.repeat(scales, counts[counts > 0])
        values = np.where(_read_signs(cur, "the update", idx.size), -magnitudes, magnitudes)
    if cur.pos != len(cur.view):
        raise TrailingBytes(f"{len(cur.view) - cur.pos} trailing bytes after the last tensor")
    flat = np.zeros(total, np.float32)
    flat[idx] = values
    out: dict[str, np.ndarray] = {}
    start = 0
    for name, size in zip(names, sizes):
        arr = flat[start:start + size].reshape(tuple(expected[name]))
        start += size
        _check_values(name, arr, max_abs)
        out[name] = arr
    return out


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
