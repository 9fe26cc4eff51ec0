"""Misbehaviour a node can be told to show, for robustness experiments and tests only.

Each attack is a small `Behaviour` whose hooks the round engine calls where an honest node would
do its own thing: what bytes to send as its update, whether to commit them, whether to serve
them, and what else to announce each round. `Honest` does nothing unusual. The others are the
hostile member of the robustness tests: a registered institution with valid keys that

- rewrites its update: scaled (x factor), sign-flipped, all zero (free riding);
- trains nothing and copies: it first asks for a peer's update of the same round before
  committing its own (commit-then-reveal refuses that, see `node.reveal`), then re-sends a peer's
  update of the previous round with noise of relative scale 1e-6 (`copy`), 0.5 (`noisycopy`,
  |cos| about 0.9 with its source: far from the copy flag) or scaled by 1e-3 (`scaledcopy`);
  `noisy` adds noise of 1e-6 to its own update (the second identity of a sybil pair, run on its
  partner's data);
- trains nothing and sends a random vector as long as the median of the last round's updates
  (`noise`);
- lies in its score vote: everyone else 0 (`liar`), or 10000 for itself and the members named
  in `attack_partners` and 0 for the rest (`collude`);
- sends bytes that must never crash a peer: random garbage, a truncated blob, a header of deeply
  nested JSON, values of 1e30, NaN (`garbage`, a different kind each round);
- announces updates it never committed (`uncommitted`) or commits and never serves (`noserve`);
- announces a fabricated merged model for round 1 and for the last round, as if the swarm had
  made it (`hijack`; two hijackers fabricate the same model and so vote for the same digest).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import trio

from p2p.codec import encode_update
from p2p.host import FetchError, SwarmHost

from .exchange import Exchange
from .inbox import Inbox
from .merge import Update
from .scoring import tensor_norm

Tensors = dict[str, np.ndarray]
MAX_VOTE = 10_000


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
    previous: Callable[[], Sequence[Update]] = tuple  # the updates merged in the last round, own included
    partners: tuple[str, ...] = field(default=())  # member names a colluder favours


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

    def vote(self, scores: dict[str, int], ctx: Context) -> dict[str, int]:
        """The score vector this node votes for (peer id -> score), given the honest one."""
        return scores


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


def add_noise(delta: Tensors, scale: float, seed: Sequence[int]) -> Tensors:
    """`delta` plus Gaussian noise of `scale` times its own RMS value per tensor."""
    rng = np.random.default_rng(list(seed))
    out = {}
    for k, v in delta.items():
        rms = float(np.sqrt(np.mean(np.square(v, dtype=np.float64)))) if v.size else 0.0
        out[k] = (v + rng.normal(0.0, scale * rms, size=v.shape)).astype(np.float32)
    return out


class Copy(Behaviour):
    """Trains nothing: tries to get a peer's update of this round before committing, and failing
    that (the honest rule) re-sends a peer's update of the previous round times `scale`, with noise
    of relative scale 1e-6 (an all-zero update in round 1)."""

    name = "copy"
    scale = 1.0
    noise = 1e-6

    async def update_blob(self, r: int, delta: Tensors, ctx: Context) -> bytes:
        # Patient: up to half the round for a peer's announcement (a peer whose commit is still
        # being mined is not late), leaving the other half to commit its own before the deadline.
        await ctx.inbox.wait_until(lambda: bool(ctx.inbox.get("update", r)),
                                   trio.current_time() + ctx.round_duration / 2)
        for ann in ctx.inbox.get("update", r).values():
            try:
                return await ctx.host.fetch(ann.sender, ann.digest, max_bytes=ctx.exchange.max_blob)
            except FetchError as exc:
                ctx.log.info("copy attack: could not fetch %s's round %d update (%s)",
                             ctx.exchange.name(ann.sender), r, exc)
        theirs = sorted((u for u in ctx.previous() if u.sender != ctx.host.peer_id), key=lambda u: u.sender)
        if not theirs:
            return ctx.encode(Zero().rewrite(delta), r)
        source = theirs[r % len(theirs)]
        ctx.log.info("copy attack: sending %s's round %d update x%g with noise", ctx.exchange.name(source.sender),
                     r - 1, self.scale)
        stale = {k: (np.asarray(v, dtype=np.float32) * np.float32(self.scale)) for k, v in source.tensors.items()}
        return ctx.encode(add_noise(stale, self.noise, (ctx.seed, r, 7)), r)


class ScaledCopy(Copy):
    name = "scaledcopy"
    scale = 1e-3


class NoisyCopy(Copy):
    name = "noisycopy"
    noise = 0.5


class Noise(Behaviour):
    """Trains nothing: sends Gaussian noise as long as the median of the previous round's updates
    (round 1: as long as its own, which a free rider could read off any earlier task)."""

    name = "noise"

    async def update_blob(self, r: int, delta: Tensors, ctx: Context) -> bytes:
        norms = [tensor_norm(u.tensors) for u in ctx.previous()]
        length = float(np.median(norms)) if norms else tensor_norm(delta)
        rng = np.random.default_rng([ctx.seed, r, 13])
        noise = {k: rng.standard_normal(np.shape(v)) for k, v in delta.items()}
        scale = length / max(tensor_norm(noise), 1e-30)
        ctx.log.info("noise attack: sending a random vector of length %.4g", length)
        return ctx.encode({k: (v * scale).astype(np.float32) for k, v in noise.items()}, r)


class Noisy(Behaviour):
    """Its own update plus noise of relative scale 1e-6: run on a partner's data, a sybil twin."""

    name = "noisy"

    def rewrite(self, delta: Tensors) -> Tensors:
        return add_noise(delta, 1e-6, (len(delta), 11))


class Liar(Behaviour):
    """Votes 0 for every other member and the top score for itself."""

    name = "liar"

    def vote(self, scores: dict[str, int], ctx: Context) -> dict[str, int]:
        return {p: (MAX_VOTE if p == ctx.host.peer_id else 0) for p in scores}


class Collude(Behaviour):
    """Votes the top score for itself and its `partners`, 0 for everyone else."""

    name = "collude"

    def vote(self, scores: dict[str, int], ctx: Context) -> dict[str, int]:
        friends = set(ctx.partners)
        return {p: (MAX_VOTE if p == ctx.host.peer_id or ctx.exchange.name(p) in friends else 0) for p in scores}


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
    cls.name: cls for cls in (Honest, Scale, SignFlip, Zero, Copy, ScaledCopy, NoisyCopy, Noise, Noisy, Liar,
                              Collude, Garbage, Uncommitted, NoServe, Hijack)
}
ATTACKS: tuple[str, ...] = tuple(BEHAVIOURS)


def behaviour_by_name(name: str, factor: float = 100.0) -> Behaviour:
    try:
        return BEHAVIOURS[name](factor)
    except KeyError:
        raise ValueError(f"unknown attack {name!r}; expected one of {ATTACKS}") from None
