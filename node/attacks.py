"""Misbehaviour a node can be told to show, for robustness experiments and tests only.

Each attack is a small `Behaviour` whose hooks the round engine calls where an honest node would
do its own thing: what bytes to send as its update, whether to commit them, whether to serve
them, and what else to announce each round. `Honest` does nothing unusual. The others are the
hostile member of the robustness tests: a registered institution with valid keys that

- rewrites its update: scaled (x factor), sign-flipped, all zero (free riding), a copy of a
  peer's update of the same round;
- sends bytes that must never crash a peer: random garbage, a truncated blob, a header of deeply
  nested JSON, values of 1e30, NaN (`garbage`, a different kind each round);
- announces updates it never committed (`uncommitted`) or commits and never serves (`noserve`);
- announces a fabricated merged model for round 1 and for the last round, as if the swarm had
  made it (`hijack`; two hijackers fabricate the same model and so vote for the same digest).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import numpy as np
import trio

from p2p.codec import encode_update
from p2p.host import FetchError, SwarmHost

from .exchange import Exchange
from .inbox import Inbox

Tensors = dict[str, np.ndarray]


@dataclass(frozen=True)
class Context:
    """What a behaviour may use: the node's view of the swarm, not its model or its chain keys."""

    inbox: Inbox
    host: SwarmHost
    exchange: Exchange
    encode: Callable[[Tensors, int], bytes]  # the honest pipeline's outgoing stages
    bundle_shapes: Mapping[str, tuple[int, ...]]
    rounds: int
    seed: int
    round_duration: float
    log: logging.LoggerAdapter


class Behaviour:
    """The honest protocol; subclasses override the hooks their attack needs."""

    name = "none"
    commits = True  # put the update's digest on chain before sharing it
    serves = True  # answer peers' requests for the update's bytes

    def __init__(self, factor: float = 100.0) -> None:
        self.factor = factor

    async def update_blob(self, r: int, delta: Tensors, ctx: Context) -> bytes:
        return ctx.encode(self.rewrite(delta), r)

    def rewrite(self, delta: Tensors) -> Tensors:
        return delta

    async def each_round(self, r: int, ctx: Context) -> None:
        """Anything else announced in round r, before the node's own update."""


Honest = Behaviour


class Scale(Behaviour):
    name = "scale"

    def rewrite(self, delta: Tensors) -> Tensors:
        return {k: (v * np.float32(self.factor)).astype(np.float32) for k, v in delta.items()}


class SignFlip(Behaviour):
    name = "signflip"

    def rewrite(self, delta: Tensors) -> Tensors:
        return {k: (-v * np.float32(self.factor)).astype(np.float32) for k, v in delta.items()}


class Zero(Behaviour):
    name = "zero"

    def rewrite(self, delta: Tensors) -> Tensors:
        return {k: np.zeros_like(v) for k, v in delta.items()}


class Copy(Behaviour):
    """Re-sends the first peer update of the round it can get hold of, training nothing (an
    all-zero update when it gets none)."""

    name = "copy"

    async def update_blob(self, r: int, delta: Tensors, ctx: Context) -> bytes:
        await ctx.inbox.wait_until(lambda: bool(ctx.inbox.get("update", r)),
                                   trio.current_time() + ctx.round_duration)
        for ann in ctx.inbox.get("update", r).values():
            try:
                return await ctx.host.fetch(ann.sender, ann.digest, max_bytes=ctx.exchange.max_blob)
            except FetchError as exc:
                ctx.log.info("copy attack: could not fetch %s's update (%s)", ctx.exchange.name(ann.sender), exc)
        return ctx.encode(Zero().rewrite(delta), r)


class Garbage(Behaviour):
    """Commits and serves bytes a decoder must refuse, a different kind each round."""

    name = "garbage"

    async def update_blob(self, r: int, delta: Tensors, ctx: Context) -> bytes:
        honest = ctx.encode(delta, r)
        rng = np.random.default_rng([ctx.seed, r])
        kind = r % 5
        if kind == 0:
            return rng.bytes(len(honest))
        if kind == 1:
            return honest[: len(honest) // 2]
        if kind == 2:  # the wire format of the first version with a recursive 70 KB JSON header
            header = b"[" * 35_000 + b"]" * 35_000
            return b"MSWU" + struct.pack("<BBI", 1, 0, len(header)) + header
        if kind == 3:
            return encode_update({k: np.full_like(v, 1e30) for k, v in delta.items()}, max_abs=float("inf"))
        nan = bytearray(honest)
        nan[-4:] = struct.pack("<f", float("nan"))
        return bytes(nan)


class Uncommitted(Behaviour):
    """Announces and serves updates it never put on chain."""

    name = "uncommitted"
    commits = False


class NoServe(Behaviour):
    """Commits and announces its updates but never hands out the bytes."""

    name = "noserve"
    serves = False


class Hijack(Behaviour):
    """Announces a fabricated merged model for round 1 and the last round, every round.

    The model is derived from the swarm seed alone, so every hijacker in a swarm fabricates the
    same bytes: together they vote for one digest, the strongest form of this attack.
    """

    name = "hijack"

    async def each_round(self, r: int, ctx: Context) -> None:
        rng = np.random.default_rng([ctx.seed, 666])
        fake = {k: rng.normal(0, 1, size=s).astype(np.float32) * 10 for k, s in ctx.bundle_shapes.items()}
        blob = encode_update(fake, "f32", max_abs=float("inf"))
        for target in sorted({1, ctx.rounds}):
            await ctx.exchange.announce("model", target, blob, 1, "f32")


BEHAVIOURS: dict[str, type[Behaviour]] = {
    cls.name: cls for cls in (Honest, Scale, SignFlip, Zero, Copy, Garbage, Uncommitted, NoServe, Hijack)
}
ATTACKS: tuple[str, ...] = tuple(BEHAVIOURS)


def behaviour_by_name(name: str, factor: float = 100.0) -> Behaviour:
    try:
        return BEHAVIOURS[name](factor)
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; expected one of {ATTACKS}") from None
