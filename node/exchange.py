"""This node's side of the blob exchange: what it offers its peers, and getting theirs.

Announcements go out on gossip and are repeated only while a peer still lacks the blob; blobs
are fetched by digest from their sender or from any member holding a verified copy, decoded
strictly, and dropped input is counted against the peer that sent it. The round engine decides
what to announce and what to do with what arrives; this module moves the bytes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import trio

from incentive.ledger import LedgerError, Member
from p2p.announce import Announcement
from p2p.codec import MAX_ABS, CodecError, decode_update
from p2p.host import FetchError, SwarmHost

from .inbox import Inbox
from .learner import Tensors

T = TypeVar("T")

# Gossip has no history for late subscribers and can lose a message, so a node re-publishes an
# update or statistics announcement until every peer has fetched the blob or the round is over.
# Re-publishing blindly was costly: each copy costs every peer a signature check, and at one
# per 1.5 s per kind, 8 node processes on 2 cores spent 2-3 s of each round on it.
REANNOUNCE_SECONDS = 1.0
MODEL_REANNOUNCE_TICKS = 8  # merged models are for late joiners only: every 8 s
FETCH_RETRY_SECONDS = 0.5  # pause before asking every source again for a blob nobody had yet


@dataclass(frozen=True)
class Offer:
    """A blob this node serves, and how long its announcement is worth repeating."""

    ann: Announcement
    until: float  # trio time; after it no peer can still use the blob in its round


class Exchange:
    """Offers this node's blobs and fetches its peers' (one per node, on the node's trio loop)."""

    def __init__(self, host: SwarmHost, inbox: Inbox, swarm: str, members: Callable[[], dict[str, Member]],
                 log: logging.LoggerAdapter, max_blob: int, max_abs: Mapping[str, float]) -> None:
        self.host = host
        self.inbox = inbox
        self.swarm = swarm
        self._members = members
        self.log = log
        self.max_blob = max_blob
        self.max_abs = dict(max_abs)  # kind -> bound on decoded values (p2p.codec's max_abs)
        self.offers: dict[str, list[Offer]] = {}  # kind -> the blobs this node serves, oldest first
        self.strikes: dict[str, int] = {}  # peer id -> inputs dropped
        self.bytes_in = 0  # blob bytes fetched from peers, all kinds
        self._relayed: dict[int, list[str]] = {}  # round -> digests of peers' blobs this node serves

    @property
    def peers(self) -> dict[str, Member]:
        return {pid: m for pid, m in self._members().items() if pid != self.host.peer_id}

    def name(self, peer_id: str) -> str:
        member = self._members().get(peer_id)
        return member.name if member else peer_id[:12]

    def latest_offer(self, kind: str) -> Announcement | None:
        offers = self.offers.get(kind)
        return offers[-1].ann if offers else None

    async def announce(self, kind: str, round_no: int, blob: bytes, samples: int, codec: str,
                       until: float = math.inf) -> str:
        """Serve `blob`, announce it, and keep offering it until `until` (see `reannounce_forever`).

        The previous blob of each kind stays served and offered too: a slow peer may still be
        fetching last round's update when this node has moved on.
        """
        blob_digest = self.host.serve(blob)
        ann = Announcement(swarm=self.swarm, round=round_no, kind=kind, digest=blob_digest,
                           size=len(blob), samples=samples, codec=codec, sender=self.host.peer_id)
        offers = self.offers.setdefault(kind, [])
        offers.append(Offer(ann, until))
        while len(offers) > 2:
            self.host.unserve(offers.pop(0).ann.digest)
        await self.host.publish(ann)
        return blob_digest

    async def reannounce_forever(self) -> None:
        """Repeat each offer while some peer still lacks its blob (merged models: now and then)."""
        ticks = 0
        while True:
            await trio.sleep(REANNOUNCE_SECONDS)
            ticks += 1
            now = trio.current_time()
            for kind, offers in self.offers.items():
                for offer in offers:
                    if kind == "model":  # the newest only, now and then
                        due = offer is offers[-1] and ticks % MODEL_REANNOUNCE_TICKS == 0
                    else:
                        due = now <= offer.until and bool(set(self.peers) - self.host.fetched_by(offer.ann.digest))
                    if due:
                        await self.host.publish(offer.ann)

    async def fetch_blob(self, ann: Announcement) -> bytes:
        """Fetch `ann`'s blob from its sender or, failing that, from any other member holding it.

        Blobs are addressed by digest, so any peer's copy is as good as the sender's: nodes serve
        the updates they verified (`relay`) and nodes that agree serve the same merged model.
        When a peer dies mid-round, the bytes that reached some nodes then reach all of them,
        and every node merges the same set. Raises the sender's error if nobody has the blob.
        """
        limit = min(ann.size, self.max_blob)
        try:
            return await self.host.fetch(ann.sender, ann.digest, max_bytes=limit)
        except FetchError as exc:
            sender_error = exc
        members = self.peers
        for relay in (p for p in self.host.peers() if p in members and p != ann.sender):
            try:
                blob = await self.host.fetch(relay, ann.digest, max_bytes=limit)
            except FetchError:
                continue
            self.log.info("%s r%d of %s fetched from %s (%s)", ann.kind, ann.round, self.name(ann.sender),
                          self.name(relay), type(sender_error).__name__)
            return blob
        raise sender_error

    async def fetch_decoded(self, ann: Announcement, shapes: dict[str, tuple[int, ...]],
                            retry_until: float = -math.inf) -> tuple[bytes, Tensors] | None:
        """Fetch and strictly decode `ann`'s blob, retrying unavailable sources until `retry_until`.

        A node that verified a blob starts serving it a moment later, so a first miss on every
        source is worth another try while the round lasts. Bytes that fail to decode are final.
        """
        if ann.size > self.max_blob:
            self.strike(ann.sender, f"announced {ann.size} bytes, more than a {self.max_blob}-byte model")
            return None
        while True:
            try:
                blob = await self.fetch_blob(ann)
                self.bytes_in += len(blob)
                return blob, decode_update(blob, expected=shapes, max_bytes=self.max_blob,
                                           max_abs=self.max_abs.get(ann.kind, MAX_ABS))
            except CodecError as exc:
                self.strike(ann.sender, f"{ann.kind} r{ann.round}: {exc}")
                return None
            except FetchError as exc:
                if trio.current_time() + FETCH_RETRY_SECONDS >= retry_until:
                    self.strike(ann.sender, f"{ann.kind} r{ann.round}: {exc}")
                    return None
            await trio.sleep(FETCH_RETRY_SECONDS)

    async def collect(self, kind: str, round_no: int, shapes: dict[str, tuple[int, ...]], deadline: float,
                      convert: Callable[[Announcement, Tensors], Awaitable[T] | T],
                      stop: Callable[[], bool] = lambda: False) -> dict[str, T]:
        """Fetch and check every peer's blob of (kind, round) until all arrived, `stop()`, or the deadline.

        `convert` turns a decoded blob into the result kept for its sender; raising ValueError or
        LedgerError rejects the blob (a strike against the sender). Accepted blobs are relayed.

        A blob announced before the deadline is still fetched to the end (each fetch has its own
        timeout), so a peer that was in time is not dropped because its bytes were slow.
        """
        results: dict[str, T] = {}
        tried: set[str] = set()

        async def take(ann: Announcement) -> None:
            fetched = await self.fetch_decoded(ann, shapes, retry_until=deadline)
            if fetched is None:
                return
            blob, tensors = fetched
            try:
                value = convert(ann, tensors)
                if isinstance(value, Awaitable):
                    value = await value
            except (ValueError, LedgerError) as exc:
                self.strike(ann.sender, f"{kind} r{round_no}: {exc}")
                return
            results[ann.sender] = value
            self.relay(round_no, blob, ann.digest)
            self.inbox.poke()

        def fresh() -> list[Announcement]:
            return [a for s, a in self.inbox.get(kind, round_no).items() if s not in tried]

        expected = set(self.peers)  # members are fixed for the run (loaded at start)

        def finished() -> bool:
            return stop() or expected <= set(results) or trio.current_time() >= deadline

        async with trio.open_nursery() as nursery:
            while True:
                for ann in fresh():
                    tried.add(ann.sender)
                    nursery.start_soon(take, ann)
                if finished():
                    break
                await self.inbox.wait_until(lambda: finished() or bool(fresh()), deadline)
            if stop():
                nursery.cancel_scope.cancel()
        late = sorted(expected - set(results))
        if late:
            self.log.info("%s r%d: no valid %s from %s", kind, round_no, kind, ", ".join(map(self.name, late)))
        return results

    def relay(self, r: int, blob: bytes, verified_digest: str) -> None:
        """Serve a peer's verified blob of round r too, until round r + 2 (see `fetch_blob`)."""
        self._relayed.setdefault(r, []).append(self.host.serve(blob, verified_digest))
        expired = [k for k in self._relayed if k < r - 1]
        own = {o.ann.digest for offers in self.offers.values() for o in offers} if expired else set()
        for old in expired:
            for d in self._relayed.pop(old):
                if d not in own:
                    self.host.unserve(d)

    def strike(self, sender: str, why: str) -> None:
        """Count dropped input against `sender` and say why in the log."""
        self.strikes[sender] = self.strikes.get(sender, 0) + 1
        self.log.warning("dropped input from %s: %s", self.name(sender), why)
