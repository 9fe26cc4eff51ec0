"""A node's output folder: where every file of a run lives, and how to write and read each one.

One folder per node holds its config, keys, log, checkpoint, one metrics line per round, the
scores the chain accepted from it, and its final summary. The node, the launcher, the report,
the benchmarks and the tests all go through `RunFolder`, so the layout is written down once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from p2p.codec import MAX_ABS

from .checkpoint import Checkpoint, read_checkpoint, write_checkpoint

__all__ = ["RunFolder", "read_jsonl"]


@dataclass(frozen=True)
class RunFolder:
    """The output folder of one node (`NodeConfig.output_dir`)."""

    path: Path

    # ------------------------------------------------------------------ layout

    @property
    def config(self) -> Path:
        return self.path / "node.toml"

    @property
    def log(self) -> Path:
        return self.path / "node.log"

    @property
    def p2p_key(self) -> Path:
        return self.path / "p2p.key"

    @property
    def eth_key(self) -> Path:
        return self.path / "eth.key"

    @property
    def metrics(self) -> Path:
        """One JSON line per round (`records.RoundReport`)."""
        return self.path / "metrics.jsonl"

    @property
    def scores(self) -> Path:
        """One JSON line per round whose scores the chain accepted from this node."""
        return self.path / "scores.jsonl"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoint_blob(self) -> Path:
        return self.path / "checkpoint.bin"

    @property
    def checkpoint_meta(self) -> Path:
        return self.path / "checkpoint.json"

    @property
    def grouping(self) -> Path:
        """A grouped swarm's groups (peer ids), kept so a restarted node merges with its group."""
        return self.path / "grouping.json"

    def run_files(self) -> tuple[Path, ...]:
        """What a run leaves behind (keys and config excluded): stale once the chain is new."""
        return (self.metrics, self.scores, self.summary, self.log, self.checkpoint_blob, self.checkpoint_meta,
                self.grouping)

    # ------------------------------------------------------------------ writers

    def create(self) -> "RunFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def clear_run_files(self) -> None:
        for stale in self.run_files():
            stale.unlink(missing_ok=True)

    def append_metrics(self, row: Mapping[str, Any]) -> None:
        _append_jsonl(self.metrics, row)

    def append_scores(self, round_no: int, scores: Mapping[str, int]) -> None:
        """Scores (by peer name) that the chain accepted from this node for `round_no`."""
        _append_jsonl(self.scores, {"round": round_no, "scores": dict(scores)})

    def write_summary(self, summary: Mapping[str, Any]) -> None:
        self.summary.write_text(json.dumps(_jsonable(summary), indent=2))

    def save_checkpoint(self, ckpt: Checkpoint, task: str) -> bytes:
        """Write `ckpt` of `task` atomically; returns its encoded bytes (what peers are offered)."""
        self.create()
        return write_checkpoint(self.checkpoint_blob, self.checkpoint_meta, ckpt, task)

    def write_grouping(self, task: str, groups: list[list[str]], own: int) -> None:
        """The groups (peer ids) of `task`'s grouped swarm and the index of this node's own."""
        self.create()
        tmp = self.grouping.with_suffix(".tmp")
        tmp.write_text(json.dumps({"task": task, "groups": groups, "own": own}))
        tmp.replace(self.grouping)

    # ------------------------------------------------------------------ readers

    def read_grouping(self, task: str) -> tuple[list[list[str]], int] | None:
        """The groups written for `task` and this node's group index, or None (no file, or another
        task's)."""
        if not self.grouping.exists():
            return None
        saved = json.loads(self.grouping.read_text())
        if not isinstance(saved, dict) or saved.get("task") != task or not isinstance(saved.get("own"), int):
            return None
        return saved.get("groups"), saved["own"]

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_jsonl(self.metrics)

    def read_scores(self) -> list[dict[str, Any]]:
        return read_jsonl(self.scores)

    def read_summary(self) -> dict[str, Any] | None:
        """The node's summary, or None while it has not finished."""
        return json.loads(self.summary.read_text()) if self.summary.exists() else None

    def load_checkpoint(self, expected: Mapping[str, tuple[int, ...]], task: str,
                        max_abs: float = MAX_ABS) -> Checkpoint | None:
        """The checkpoint of `task`, None if there is none; CheckpointError if it is unusable."""
        return read_checkpoint(self.checkpoint_blob, self.checkpoint_meta, expected, task, max_abs)

    def checkpoint_round(self) -> int | None:
        """The round of the checkpoint on disk, without decoding it (None if there is none)."""
        if not self.checkpoint_meta.exists():
            return None
        return int(json.loads(self.checkpoint_meta.read_text())["round"])


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON-lines file a node may still be appending to."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line still being written
    return rows


def _append_jsonl(path: Path, row: Mapping[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(_jsonable(row)) + "\n")


def _jsonable(value: Any) -> Any:
    """Plain JSON: non-finite floats become null, numpy scalars plain numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
