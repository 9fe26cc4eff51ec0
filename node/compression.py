"""Compression stages of the update pipeline: fewer bytes per update, the loss fed back next round.

- ``q8``: every value as a signed byte times one float32 scale per tensor (p2p.codec "q8"): 4x
  fewer bytes than float32.
- ``topk``: per tensor, only the ``fraction`` largest-magnitude entries travel, as float16 values
  at Rice-coded positions (codec "sparse16"). Top-k sparsification, as in Aji and Heafield,
  "Sparse Communication for Distributed Gradient Descent", EMNLP 2017, arXiv:1704.05021.
- ``ternary``: the same positions, each sent as one sign bit times the tensor's mean kept
  magnitude (codec "ternary"): Sattler, Wiedemann, Mueller and Samek, "Robust and
  Communication-Efficient Federated Learning from Non-IID Data" (sparse ternary compression),
  IEEE TNNLS 2019, arXiv:1903.02891.

Each keeps an error-feedback residual per node (Seide et al. 2014; Karimireddy et al., "Error
Feedback Fixes SignSGD", ICML 2019, arXiv:1901.09847): what a round's update did not carry to the
peers is added to the next round's update, so nothing a node learned is dropped, only delayed. The
residual is corrected with exactly what the peers decode (`sent`), float16 and ternary rounding
included. The residual is private to the node; the commitment covers the compressed bytes.
"""

from __future__ import annotations

import math

import numpy as np

from .stages import TensorStage, Tensors

__all__ = ["COMPRESSION_STAGES", "ErrorFeedback", "Quantise8", "Ternary", "TopK"]

F16_MAX = float(np.finfo(np.float16).max)  # 65504: the largest value sparse16 carries


class ErrorFeedback(TensorStage):
    """Adds last round's untransmitted remainder to the update, and keeps what is left this round."""

    def __init__(self) -> None:
        self._residual: Tensors = {}

    def outgoing(self, tensors: Tensors, round_no: int) -> Tensors:
        self._residual = {k: self._residual.get(k, 0) + np.asarray(v, dtype=np.float32) for k, v in tensors.items()}
        return self.select(self._residual)

    def sent(self, decoded: Tensors) -> None:
        self._residual = {k: (v - decoded[k]).astype(np.float32) for k, v in self._residual.items()}

    def select(self, tensors: Tensors) -> Tensors:
        """What of the accumulated update goes on the wire (the codec then rounds it)."""
        return dict(tensors)


class Quantise8(ErrorFeedback):
    """Every entry, as one byte (codec q8); rounding errors fed back."""

    name = "q8"

    def wire_codec(self, codec: str) -> str:
        return "q8"


class TopK(ErrorFeedback):
    """The `fraction` largest-magnitude entries of each tensor (at least one), at float16."""

    name = "topk"
    OPTIONS = ("fraction",)

    def __init__(self, fraction: float = 0.01) -> None:
        super().__init__()
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        self.fraction = fraction

    def wire_codec(self, codec: str) -> str:
        return "sparse16"

    def select(self, tensors: Tensors) -> Tensors:
        # Clipped to what float16 holds: an entry beyond it would make every later round's
        # update unsendable; clipped, the excess stays in the residual and goes out later.
        return {k: np.clip(self._largest(v), -F16_MAX, F16_MAX) for k, v in tensors.items()}

    def _largest(self, value: np.ndarray) -> np.ndarray:
        flat = value.ravel()
        k = min(flat.size, max(1, math.ceil(self.fraction * flat.size)))
        out = np.zeros_like(flat)
        if k:
            keep = np.argpartition(np.abs(flat), flat.size - k)[flat.size - k:]
            out[keep] = flat[keep]
        return out.reshape(value.shape)


class Ternary(TopK):
    """Top-k positions, each as sign x the tensor's mean kept magnitude (codec ternary)."""

    name = "ternary"

    def wire_codec(self, codec: str) -> str:
        return "ternary"


COMPRESSION_STAGES: tuple[type[TensorStage], ...] = (Quantise8, TopK, Ternary)
