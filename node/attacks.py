"""Misbehaviour a node can be told to show, for robustness experiments and tests only.

An attack rewrites the node's own update just before it is encoded and committed, the way a
faulty or hostile hospital would: scaled (x factor), sign-flipped, all-zero (free riding), or
an exact copy of a peer's update from the previous round.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

Tensors = dict[str, np.ndarray]
ATTACKS: tuple[str, ...] = ("none", "scale", "signflip", "zero", "copy")


def apply_attack(kind: str, update: Mapping[str, np.ndarray], factor: float,
                 copied: Mapping[str, np.ndarray] | None = None) -> Tensors:
    """Return the update a node with attack `kind` would send instead of `update`."""
    if kind == "none":
        return dict(update)
    if kind == "scale":
        return {k: (v * np.float32(factor)).astype(np.float32) for k, v in update.items()}
    if kind == "signflip":
        return {k: (-v * np.float32(factor)).astype(np.float32) for k, v in update.items()}
    if kind == "zero":
        return {k: np.zeros_like(v) for k, v in update.items()}
    if kind == "copy":
        return dict(copied) if copied is not None else {k: np.zeros_like(v) for k, v in update.items()}
    raise ValueError(f"unknown attack {kind!r}")
