"""Round checkpoints on disk: the merged model and input scaling after a round, no pickle.

A checkpoint is the same tensor encoding that travels between peers (`p2p.codec`), plus a small
JSON file naming the round, the model's digest and the task it belongs to (a checkpoint from
another ledger or task is never resumed). Both are written to a temporary name and
renamed, so a node killed mid-write leaves the previous checkpoint intact. Where the two files
live is the run folder's business (`node.rundir`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from p2p.codec import CodecError, decode_update, digest, encode_update


class CheckpointError(ValueError):
    """A checkpoint on disk is missing a part, corrupt, or for another model."""


class StaleCheckpoint(CheckpointError):
    """A checkpoint left by a run of another ledger or task."""


@dataclass(frozen=True, eq=False)
class Checkpoint:
    round: int
    tensors: dict[str, np.ndarray]

    def encode(self) -> bytes:
        return encode_update(self.tensors, "f32")

    @property
    def digest(self) -> str:
        return digest(self.encode())


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


def read_checkpoint(blob_path: Path, meta_path: Path, expected: Mapping[str, tuple[int, ...]],
                    task: str) -> Checkpoint | None:
    """The checkpoint of `task`, or None if there is none; CheckpointError if unusable."""
    folder = meta_path.parent
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        blob = blob_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint in {folder} unreadable: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("round"), int) or meta["round"] < 0:
        raise CheckpointError(f"checkpoint in {folder}: bad {meta_path.name}")
    if meta.get("task") != task:
        raise StaleCheckpoint(f"checkpoint in {folder} belongs to task {meta.get('task')}, not {task}")
    if digest(blob) != meta.get("digest"):
        raise CheckpointError(f"checkpoint in {folder}: {blob_path.name} does not match its digest")
    try:
        tensors = decode_update(blob, expected=expected)
    except CodecError as exc:
        raise CheckpointError(f"checkpoint in {folder} is for another model: {exc}") from None
    return Checkpoint(round=meta["round"], tensors=tensors)
