"""Round checkpoints on disk: the merged model and input scaling after a round, no pickle.

A checkpoint is the same tensor encoding that travels between peers (`p2p.codec`), plus a small
JSON file naming the round, the model's digest and the task it belongs to (a checkpoint from
another ledger or task is never resumed). Both are written to a temporary name and
renamed, so a node killed mid-write leaves the previous checkpoint intact. Where the two files
live is the run folder's business (`node.rundir`).

Loading treats both files as untrusted: the JSON must be one small flat object with exactly the
expected fields (parsed without recursion, see `p2p.flatjson`), the blob's size is checked
against the JSON before it is read, and every failure is one `CheckpointError` line.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from p2p.codec import MAX_ABS, CodecError, decode_update, digest, encode_update
from p2p.flatjson import FlatJSONError, parse_flat_object

MAX_META_BYTES = 4096
MAX_BLOB_BYTES = 256 * 2**20  # the codec's default limit
_META_FIELDS = ("bytes", "digest", "round", "task")
_DIGEST_RE = re.compile(r"0x[0-9a-f]{64}")


class CheckpointError(ValueError):
    """A checkpoint on disk is missing a part, corrupt, or for another model."""


class StaleCheckpoint(CheckpointError):
    """A checkpoint left by a run of another ledger or task."""


@dataclass(frozen=True, eq=False)
class Checkpoint:
    round: int
    tensors: dict[str, np.ndarray]
    max_abs: float = MAX_ABS  # the codec's bound on values, for writing and reading alike

    def encode(self) -> bytes:
        return encode_update(self.tensors, "f32", max_abs=self.max_abs)

    @property
    def digest(self) -> str:
        return digest(self.encode())


@dataclass(frozen=True)
class _Meta:
    round: int
    digest: str
    bytes: int
    task: str


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def write_checkpoint(blob_path: Path, meta_path: Path, ckpt: Checkpoint, task: str) -> bytes:
    """Write `ckpt` for `task` (e.g. "<ledger address>/<task id>"); returns the encoded bytes."""
    blob = ckpt.encode()
    _atomic_write(blob_path, blob)
    meta = {"round": ckpt.round, "digest": digest(blob), "bytes": len(blob), "task": task}
    _atomic_write(meta_path, json.dumps(meta).encode())
    return blob


def read_checkpoint(blob_path: Path, meta_path: Path, expected: Mapping[str, tuple[int, ...]], task: str,
                    max_abs: float = MAX_ABS) -> Checkpoint | None:
    """The checkpoint of `task`, or None if there is none; CheckpointError if unusable."""
    folder = meta_path.parent
    if not meta_path.exists():
        return None
    meta = _read_meta(meta_path, folder)
    if meta.task != task:
        raise StaleCheckpoint(f"checkpoint in {folder} belongs to task {meta.task[:100]!r}, not {task!r}")
    try:
        size = blob_path.stat().st_size
        if size != meta.bytes:
            raise CheckpointError(f"checkpoint in {folder}: {blob_path.name} has {size} bytes, "
                                  f"{meta_path.name} says {meta.bytes}")
        blob = blob_path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"checkpoint in {folder} unreadable: {_reason(exc)}") from None
    if digest(blob) != meta.digest:
        raise CheckpointError(f"checkpoint in {folder}: {blob_path.name} does not match its digest")
    try:
        tensors = decode_update(blob, expected=expected, max_bytes=MAX_BLOB_BYTES, max_abs=max_abs)
    except CodecError as exc:
        raise CheckpointError(f"checkpoint in {folder} is for another model: {exc}") from None
    return Checkpoint(round=meta.round, tensors=tensors, max_abs=max_abs)


def _read_meta(path: Path, folder: Path) -> _Meta:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_META_BYTES + 1)  # never more than the limit, whatever the file's size
    except OSError as exc:
        raise CheckpointError(f"checkpoint in {folder} unreadable: {_reason(exc)}") from None
    try:
        obj = parse_flat_object(raw, MAX_META_BYTES)
    except FlatJSONError as exc:
        raise CheckpointError(f"checkpoint in {folder}: bad {path.name}: {exc}") from None
    if sorted(obj) != sorted(_META_FIELDS):
        raise CheckpointError(f"checkpoint in {folder}: {path.name} has fields {sorted(obj)[:8]}, "
                              f"expected {list(_META_FIELDS)}")
    round_no, blob_digest, size, task = obj["round"], obj["digest"], obj["bytes"], obj["task"]
    if type(round_no) is not int or not 0 <= round_no < 2**63:
        raise CheckpointError(f"checkpoint in {folder}: round {round_no!r:.40} is not a round number")
    if type(size) is not int or not 0 < size <= MAX_BLOB_BYTES:
        raise CheckpointError(f"checkpoint in {folder}: bytes {size!r:.40} is not a size up to {MAX_BLOB_BYTES}")
    if not isinstance(blob_digest, str) or not _DIGEST_RE.fullmatch(blob_digest):
        raise CheckpointError(f"checkpoint in {folder}: digest {blob_digest!r:.80} is not a keccak256 digest")
    if not isinstance(task, str):
        raise CheckpointError(f"checkpoint in {folder}: task {task!r:.40} is not a string")
    return _Meta(round_no, blob_digest, size, task)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__
