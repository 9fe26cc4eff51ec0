"""Input generators for the fuzz harness: structure-blind byte mutations and layout-aware ones.

Everything here is seeded by the `random.Random` it is given and bounded in size (the largest
input is about 140 KB of nested brackets), so a run is reproducible from its seed.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from p2p.codec import MAGIC, MAX_ABS, encode_update

Shapes = dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class Case:
    label: str  # the mutation that made it, for reports
    data: Any


INTERESTING_INTS = (0, 1, 2, 7, 8, 9, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x10000, 2**31 - 1, 2**31, 2**32 - 1)
HUGE_FLOATS = (math.nan, math.inf, -math.inf, 1e36, -1e36, 3.4e38, MAX_ABS * 1.0001, 1e7, 6.6e4)


def mutate_bytes(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """One random structure-blind mutation of `data`."""
    op = rng.choice(("bitflip", "truncate", "extend", "splice", "delete", "repeat", "int", "random"))
    buf = bytearray(data)
    if op == "bitflip" and buf:
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
    elif op == "truncate":
        del buf[rng.randrange(len(buf) + 1):]
    elif op == "extend":
        buf += rng.choice((bytes(rng.randint(1, 64)), rng.randbytes(rng.randint(1, 64)), buf[-8:]))
    elif op == "splice" and buf:
        i = rng.randrange(len(buf))
        buf[i:i + rng.randint(1, 16)] = rng.randbytes(rng.randint(0, 16))
    elif op == "delete" and buf:
        i = rng.randrange(len(buf))
        del buf[i:i + rng.randint(1, 16)]
    elif op == "repeat" and buf:
        i = rng.randrange(len(buf))
        buf[i:i] = buf[i:i + rng.randint(1, 32)] * rng.randint(1, 8)
    elif op == "int" and buf:
        width = rng.choice((1, 2, 4))
        value = rng.choice(INTERESTING_INTS) % (1 << (8 * width))
        i = rng.randrange(len(buf))
        buf[i:i + width] = value.to_bytes(width, "little")
    else:
        buf = bytearray(rng.randbytes(rng.randint(0, 256)))
        op = "random"
    return op, bytes(buf)


def nested(rng: random.Random) -> bytes:
    """Deeply nested JSON-ish junk, the input that once overflowed the C stack."""
    depth = rng.choice((100, 5_000, 70_000))
    opener, closer = rng.choice(((b"[", b"]"), (b"{", b"}"), (b'{"a":', b"}"), (b"[1,", b"]")))
    return opener * depth + closer * rng.choice((0, depth))


# --------------------------------------------------------------------------- codec blobs


def raw_blob(entries: list[tuple[bytes, list[int]]], payload: bytes, *, version: int = 2, codec: int = 0,
             count: int | None = None, ndims: list[int] | None = None) -> bytes:
    """A blob with a hand-written header; `count` and `ndims` may lie about what follows."""
    head = struct.pack("<4sBBH", MAGIC, version, codec, len(entries) if count is None else count)
    for i, (name, dims) in enumerate(entries):
        ndim = len(dims) if ndims is None else ndims[i]
        head += struct.pack("<B", len(name) % 256) + name + struct.pack("<B", ndim % 256)
        head += struct.pack(f"<{len(dims)}I", *(d % 2**32 for d in dims))
    return head + payload


def random_tensors(rng: random.Random, shapes: Shapes, scale: float) -> dict[str, np.ndarray]:
    gen = np.random.default_rng(rng.randrange(2**32))
    return {k: (gen.standard_normal(s) * scale).astype(np.float32) for k, s in shapes.items()}


def blob_cases(rng: random.Random, shapes: Shapes, scale: float, bound: float) -> Iterator[Case]:
    """Valid blobs of `shapes`, and header- and payload-aware mutations of them."""
    while True:
        codec = rng.choice(("f32", "f16")) if scale * 4 < 6e4 else "f32"
        tensors = random_tensors(rng, shapes, scale)
        entries = [(k.encode(), list(v.shape)) for k, v in tensors.items()]
        dtype = "<f4" if codec == "f32" else "<f2"
        payload = b"".join(v.astype(dtype).tobytes() for v in tensors.values())
        cid = 0 if codec == "f32" else 1
        op = rng.choice(("valid", "bytes", "bytes", "bytes", "version", "codec", "count", "name", "ndim", "dims",
                         "zero_dims", "values", "nested", "v1_json", "reorder", "other_model"))
        if op == "valid":
            yield Case("valid", encode_update(tensors, codec, max_abs=bound))
        elif op == "bytes":
            label, data = mutate_bytes(rng, encode_update(tensors, codec, max_abs=bound))
            yield Case(f"bytes:{label}", data)
        elif op == "version":
            yield Case(op, raw_blob(entries, payload, version=rng.choice((0, 1, 3, 255)), codec=cid))
        elif op == "codec":
            yield Case(op, raw_blob(entries, payload, codec=rng.choice((1 - cid, 2, 255))))
        elif op == "count":
            count = rng.choice((0, len(entries) - 1, len(entries) + 1, 4096, 4097, 65535))
            yield Case(op, raw_blob(entries, payload, codec=cid, count=count))
        elif op == "name":
            i = rng.randrange(len(entries))
            bad = rng.choice((b"", b"x" * 129, b"x" * 255, b"a b", b"w\n", b"\xff\xfe", b"caf\xc3\xa9",
                              entries[i - 1][0], b"../../etc/passwd", b"\x00"))
            entries[i] = (bad, entries[i][1])
            yield Case(op, raw_blob(entries, payload, codec=cid))
        elif op == "ndim":
            ndims = [len(d) for _, d in entries]
            ndims[rng.randrange(len(ndims))] = rng.choice((0, 9, 255, ndims[0] + 1))
            yield Case(op, raw_blob(entries, payload, codec=cid, ndims=ndims))
        elif op == "dims":
            i = rng.randrange(len(entries))
            dims = [rng.choice(INTERESTING_INTS) for _ in range(rng.randint(0, 8))]
            entries[i] = (entries[i][0], dims)
            yield Case(op, raw_blob(entries, payload, codec=cid))
        elif op == "zero_dims":
            i = rng.randrange(len(entries))
            entries[i] = (entries[i][0], [0, 2**32 - 1, 2**32 - 1][: rng.randint(2, 3)])
            yield Case(op, raw_blob(entries, payload, codec=cid))
        elif op == "values":
            arr = np.frombuffer(payload, dtype=dtype).copy()
            with np.errstate(over="ignore"):
                for _ in range(rng.randint(1, 3)):
                    arr[rng.randrange(len(arr))] = rng.choice(HUGE_FLOATS + (bound * 1.01, bound * 0.99))
            yield Case(op, raw_blob(entries, arr.tobytes(), codec=cid))
        elif op == "nested":
            junk = nested(rng)
            yield Case(op, rng.choice((raw_blob(entries, junk, codec=cid), junk, MAGIC + junk)))
        elif op == "v1_json":
            header = rng.choice((nested(rng), json.dumps({"t": [["w", [0, 2**39, 2**39]]]}).encode()))
            yield Case(op, struct.pack("<4sBBI", MAGIC, 1, 0, len(header)) + header)
        elif op == "reorder":
            entries.reverse()
            yield Case(op, raw_blob(entries, payload, codec=cid))  # shapes and payload now disagree
        else:
            other = {f"extra.{i}": (rng.randint(0, 4),) for i in range(rng.randint(1, 3))}
            yield Case(op, encode_update(random_tensors(rng, other, scale), max_abs=bound))


def compressed_cases(rng: random.Random, shapes: Shapes, scale: float, bound: float) -> Iterator[Case]:
    """Valid q8, sparse16 and ternary blobs of sparse tensors, and mutations of them: blind ones,
    lying integer fields anywhere past the prefix (counts, Rice parameters, stream lengths), and
    sparse payloads put under another codec id."""
    while True:
        codec = rng.choice(("q8", "sparse16", "ternary"))
        gen = np.random.default_rng(rng.randrange(2**32))
        density = rng.choice((0.0, 0.001, 0.01, 0.3, 1.0))
        tensors = {k: ((gen.standard_normal(s) * scale) * (gen.random(s) < density)).astype(np.float32)
                   for k, s in shapes.items()}
        compact = codec != "q8" and rng.random() < 0.5
        blob = encode_update(tensors, codec, max_abs=bound, compact=compact)
        op = rng.choice(("valid", "bytes", "bytes", "field", "field", "codec", "truncate"))
        if op == "valid":
            yield Case(f"valid:{codec}{':compact' if compact else ''}", blob)
        elif op == "bytes":
            label, data = mutate_bytes(rng, blob)
            yield Case(f"bytes:{label}", data)
        elif op == "field":
            width = rng.choice((1, 4))
            i = rng.randrange(8, max(9, len(blob) - width))
            value = rng.choice(INTERESTING_INTS) % (1 << (8 * width))
            yield Case(f"field:{codec}", blob[:i] + value.to_bytes(width, "little") + blob[i + width:])
        elif op == "codec":
            yield Case(op, blob[:5] + bytes([rng.randrange(6)]) + blob[6:])
        else:
            yield Case(op, blob[: rng.randrange(len(blob))])


# --------------------------------------------------------------------------- flat JSON objects

TRICKY_JSON = ("true", "false", "null", "1.5", "-1", "0", str(2**63), str(2**64), "1" + "0" * 30, '""',
               '"' + "x" * 2000 + '"', "[]", "{}", "[[[[1]]]]", '"NaN"', "NaN", "Infinity", "-Infinity",
               "1e999", "-0", "1E2", '"\\u0000"', '"\\ud800"')


def mutate_json_object(rng: random.Random, base: dict[str, Any]) -> Case:
    """A serialized mutation of a flat JSON object: field values, duplicates, nesting, raw bytes."""
    pairs = [(k, json.dumps(v)) for k, v in base.items()]
    op = rng.choice(("valid", "value", "value", "value", "drop", "add", "duplicate", "nested", "bytes",
                     "wrap", "utf8"))
    if op == "nested":
        return Case(op, nested(rng))
    if op == "value":
        i = rng.randrange(len(pairs))
        pairs[i] = (pairs[i][0], rng.choice(TRICKY_JSON))
    elif op == "drop":
        pairs.pop(rng.randrange(len(pairs)))
    elif op == "add":
        pairs.append((rng.choice(("extra", "", "round ", "\u0000")), rng.choice(TRICKY_JSON)))
    elif op == "duplicate":
        key, value = rng.choice(pairs)
        pairs.append((key, rng.choice((value, *TRICKY_JSON[:8]))))
    data = ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}").encode()
    if op == "bytes":
        label, data = mutate_bytes(rng, data)
        op = f"bytes:{label}"
    elif op == "wrap":
        data = rng.choice((b"[" + data + b"]", data + data, b'"' + data + b'"', b" " * 900 + data))
    elif op == "utf8":
        data = insert_bad_utf8(rng, data)
    return Case(op, data)


def insert_bad_utf8(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    return data[:i] + rng.choice((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00")) + data[i:]
