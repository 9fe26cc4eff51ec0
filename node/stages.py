"""The `TensorStage` interface: one transform of an update's tensors in the update pipeline.

Privacy and compression stages (node.pipeline's PRIVACY and COMPRESSION registries) extend it. A
stage object lives as long as its node, so it may keep state across rounds (error feedback).
"""

from __future__ import annotations

from abc import ABC

import numpy as np

__all__ = ["TensorStage", "Tensors"]

Tensors = dict[str, np.ndarray]


class TensorStage(ABC):
    """`outgoing` before encoding, `incoming` after decoding.

    `OPTIONS` names the settings the stage's constructor takes (keyword arguments, from the
    node's config); `wire_codec` may replace the task's codec with the one the stage's output
    needs; `sent` is told what the peers decode of the node's own outgoing update.
    """

    name: str = ""
    OPTIONS: tuple[str, ...] = ()

    def outgoing(self, tensors: Tensors, round_no: int) -> Tensors:
        return tensors

    def incoming(self, tensors: Tensors) -> Tensors:
        return tensors

    def wire_codec(self, codec: str) -> str:
        return codec

    def sent(self, decoded: Tensors) -> None:
        """What this node's peers decoded of the tensors `outgoing` last returned."""
