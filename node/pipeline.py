"""The update pipeline: ordered stages between local training and the wire, and their mirror.

Outgoing, on the node that trained::

    delta -> privacy -> compression -> encode      (the engine then commits the digest and shares)

Incoming, for every peer's announced update::

    verify -> fetch -> decode -> decompress -> validate      (then merge)

`verify` checks the announcement against the sender's on-chain commitment before a byte is
fetched; the transfer protocol checks keccak256(bytes) against the announced digest, so bytes
that reach `decode` are exactly the committed ones. The commitment always covers the bytes on
the wire: whatever the stages do to the tensors happens before encoding. A node merges its own
update as its peers decode it (`own_update`), so every node merges the same numbers.

Privacy and compression are small swappable `TensorStage` objects (node.stages) chosen per task
by name (`PRIVACY`, `COMPRESSION`). A compression stage (node.compression) picks the wire codec its
output needs (q8, sparse16, ternary) and keeps an error-feedback residual, corrected after each
`prepare` with exactly what the peers will decode.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Awaitable, Callable, Mapping
from typing import Generic, TypeVar

from p2p.announce import Announcement
from p2p.codec import MAX_ABS, SPARSE, CodecError, decode_update, encode_update

from .compression import COMPRESSION_STAGES
from .merge import Update
from .stages import TensorStage, Tensors

__all__ = ["COMPRESSION", "PRIVACY", "BlobIntake", "Outgoing", "Rejected", "TensorStage", "UpdatePipeline", "stage_by_name"]

T = TypeVar("T")
MAX_SAMPLES = 10_000_000  # an announcement claiming more training rows than this is a lie


@dataclass(frozen=True, eq=False)
class Outgoing:
    """This node's update for a round: the bytes to commit and share, and what peers decode."""

    blob: bytes
    digest: str
    update: Update


class Rejected(ValueError):
    """An incoming blob failed a stage; the message says which check and why."""


class NoPrivacy(TensorStage):
    """The update leaves as trained."""

    name = "none"


class NoCompression(TensorStage):
    """Every tensor travels whole, at the codec's precision."""

    name = "none"


PRIVACY: dict[str, type[TensorStage]] = {cls.name: cls for cls in (NoPrivacy,)}
COMPRESSION: dict[str, type[TensorStage]] = {cls.name: cls for cls in (NoCompression, *COMPRESSION_STAGES)}


def stage_by_name(registry: Mapping[str, type[TensorStage]], name: str, **options: float) -> TensorStage:
    """The named stage, given those of `options` that it takes (its `OPTIONS`)."""
    try:
        cls = registry[name]
    except KeyError:
        raise ValueError(f"unknown stage {name!r}; expected one of {tuple(registry)}") from None
    return cls(**{k: v for k, v in options.items() if k in cls.OPTIONS})


class BlobIntake(Generic[T]):
    """How the exchange admits one kind of blob: `verify` the announcement, then `accept` its bytes.

    Both raise `Rejected`; the exchange then drops the blob and strikes its sender.
    """

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], max_bytes: int,
                 convert: Callable[[Announcement, Tensors], T],
                 verify: Callable[[Announcement], Awaitable[None]] | None = None, max_abs: float = MAX_ABS) -> None:
        self.shapes = dict(shapes)
        self.max_bytes = max_bytes
        self.max_abs = max_abs  # bound on every decoded value (p2p.codec)
        self.codec: str | None = None  # when set, the only wire codec accepted
        self._convert = convert
        self._verify = verify

    async def verify(self, ann: Announcement) -> None:
        if self._verify is not None:
            await self._verify(ann)

    def decode(self, blob: bytes) -> Tensors:
        try:
            return decode_update(blob, expected=self.shapes, max_bytes=self.max_bytes, max_abs=self.max_abs,
                                 codec=self.codec)
        except CodecError as exc:
            raise Rejected(f"undecodable: {exc}") from None

    def accept(self, ann: Announcement, blob: bytes) -> T:
        tensors = self.decode(blob)
        try:
            return self._convert(ann, tensors)
        except ValueError as exc:  # well-formed tensors whose values make no sense (e.g. statistics)
            raise Rejected(f"unusable: {exc}") from None


class UpdatePipeline(BlobIntake[Update]):
    """The stages for model updates, outgoing and incoming (see the module docstring)."""

    def __init__(self, shapes: Mapping[str, tuple[int, ...]], max_bytes: int, codec: str,
                 committed: Callable[[Announcement], Awaitable[str | None]],
                 privacy: TensorStage | None = None, compression: TensorStage | None = None) -> None:
        super().__init__(shapes, max_bytes, self._validate, self._check_commitment)
        self.privacy = privacy or NoPrivacy()
        self.compression = compression or NoCompression()
        self.codec = self.compression.wire_codec(codec)  # the only codec sent and accepted
        self._committed = committed
        self._last: tuple[bytes, Tensors] | None = None  # the last prepared blob, decoded

    def describe(self) -> str:
        return f"privacy {self.privacy.name}, compression {self.compression.name}, codec {self.codec}"

    # ------------------------------------------------------------------ outgoing

    def prepare(self, delta: Tensors, round_no: int) -> bytes:
        """The bytes to commit and share for this node's `delta`."""
        private = self.privacy.outgoing(delta, round_no)
        # a sparse update names no tensors (the compact frame): every member knows the task's model
        blob = encode_update(self.compression.outgoing(private, round_no), self.codec, compact=self.codec in SPARSE)
        # CodecError, not Rejected, as from encoding: the caller sits the round out.
        decoded = decode_update(blob, expected=self.shapes, max_bytes=self.max_bytes, max_abs=self.max_abs,
                                codec=self.codec)
        self.compression.sent(decoded)
        self._last = (blob, decoded)
        return blob

    def own_update(self, blob: bytes, samples: int, sender: str) -> Update:
        """This node's update as its peers will decode it."""
        last = self._last
        decoded = last[1] if last is not None and last[0] is blob else self.decode(blob)
        return Update(self.compression.incoming(decoded), samples, sender)

    # ------------------------------------------------------------------ incoming

    async def _check_commitment(self, ann: Announcement) -> None:
        on_chain = await self._committed(ann)
        if on_chain is None or on_chain.lower() != ann.digest.lower():
            raise Rejected(f"announced digest does not match the on-chain commitment ({on_chain})")

    def _validate(self, ann: Announcement, tensors: Tensors) -> Update:
        if not 0 < ann.samples <= MAX_SAMPLES:
            raise Rejected(f"implausible sample count {ann.samples}")
        return Update(self.compression.incoming(tensors), ann.samples, ann.sender)
