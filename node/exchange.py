"""This node's side of the blob exchange: what it offers its peers, and getting theirs.

Announcements go out on gossip and are repeated only while a peer still lacks the blob; blobs
are fetched by digest from their sender or from any member holding a verified copy and passed
through the kind's intake (`node.pipeline`: verify, then decode and check), and dropped input
is counted against the peer that sent it. The round engine decides
what to announce and what to do with what arrives; this module moves the bytes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import trio

from incentive.ledger import LedgerError, Member
from p2p.announce import INLINE_MAX_BYTES, Announcement
from p2p.host import FetchError, FetchTimeout, NotReleased, Release, SwarmHost

from .inbox import Inbox
from .pipeline import BlobIntake, Rejected

T = TypeVar("T")
# Who may have a blob of (kind, round, the peer id of its author) yet; None = every member (node.reveal).
ReleaseFor = Callable[[str, int, str], Release | None]

# Gossip has no history for late subscribers and can lose a message, so a node re-publishes an
# update or statistics announcement until every peer has asked for the blob or the round is over
# (a peer refused an update because its own commitment is not on chain yet has the announcement:
# counting only finished fetches repeated every update to the whole swarm 3-4 times a round at 16).
# Re-publishing blindly was costly: each copy costs every peer a signature check, and at one
# per 1.5 s per kind, 8 node processes on 2 cores spent 2-3 s of each round on it. And every
# node's copies reach every node, so a swarm of N pays N^2 checks per repeat: the pause between
# repeats of one offer doubles from REANNOUNCE_SECONDS up to one second per
# REANNOUNCE_PEERS_PER_SECOND peers (1 s up to 4 peers, as before; 3.75 s at 16 nodes, 7.75 s
# at 32), at most REANNOUNCE_MAX_SECONDS. That holds for an offer meant for a few peers too (a
# sampled swarm's update, for the members that drew its author): flooded, it reaches all N - 1,
# and paced by its few readers it went out every 1.25 s while one of them was busy elsewhere
# (30-60 publishes per node per round with 24 node processes, every peer checking each).
REANNOUNCE_SECONDS = 1.0
REANNOUNCE_PEERS_PER_SECOND = 4
REANNOUNCE_MAX_SECONDS = 8.0
# Merged models are for late joiners only: the newest is repeated every 8 s or, with more than 16
# peers, every second per 2 peers (16 s at 32 nodes: each copy costs every peer a check).
MODEL_REANNOUNCE_TICKS = 8
MODEL_REANNOUNCE_PEERS_PER_SECOND = 2
AWAITED_POLL_SECONDS = 0.5  # how often `collect` re-asks a changing awaited set (nothing pokes on a disconnect)
FETCH_RETRY_SECONDS = 0.5  # pause before asking every source again for a blob nobody had yet
RELEASE_RETRY_SECONDS = 0.2  # ... or that was held back because our commitment was not seen yet
# Kinds whose small blobs travel inside their announcement (statistics, score sheets, validation
# reports: every node needs every one of them, and a swarm of N would otherwise open N^2
# transfer streams for a few hundred bytes each). Not models: a node fetches another's
# model only to adopt one the chain attested, and a model inline would go to every node each time.
INLINE_KINDS = frozenset({"stats", "scores", "val"})
# One source's try: a few seconds plus the blob at a slow 5 MB/s (loopback does 70-160 MB/s).
SOURCE_SECONDS, SOURCE_MIN_RATE = 5.0, 5e6


@dataclass(frozen=True)
class Offer:
    """A blob this node serves, and how long its announcement is worth repeating."""

    ann: Announcement
    until: float  # trio time; after it no peer can still use the blob in its round
    wanted_by: frozenset[str] | None = None  # the peers that will fetch it (None: every peer)


class Exchange:
    """Offers this node's blobs and fetches its peers' (one per node, on the node's trio loop)."""

    def __init__(self, host: SwarmHost, inbox: Inbox, swarm: str, members: Callable[[], dict[str, Member]],
                 log: logging.LoggerAdapter, max_blob: int, release_for: ReleaseFor = lambda kind, r, owner: None,
                 source_seconds: float = SOURCE_SECONDS) -> None:
        self.host = host
        self.inbox = inbox
        self.swarm = swarm
        self._members = members
        self.log = log
        self.max_blob = max_blob
        self.source_seconds = source_seconds  # one source's try, before the blob's own time
        self._release_for = release_for
        self.offers: dict[str, list[Offer]] = {}  # kind -> the blobs this node serves, oldest first
        self.strikes: dict[str, int] = {}  # peer id -> inputs dropped
        self.bytes_in = 0  # blob bytes fetched from peers, all kinds
        self._relayed: dict[int, list[str]] = {}  # round -> digests of peers' blobs this node serves
        self._repeats: dict[Announcement, tuple[float, float]] = {}  # offer -> (next repeat due, pause after it)
        self._reached: dict[Announcement, set[str]] = {}  # inline offer -> gossip peers when it went out

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
                       until: float = math.inf, wanted_by: frozenset[str] | None = None,
                       blob_digest: str | None = None) -> str:
        """Serve `blob`, announce it, and keep offering it until `until` while one of `wanted_by`
        (default: every peer) lacks it (see `reannounce_forever`). `blob_digest`: the blob's
        digest when the caller has just computed it (a 1M-parameter blob takes ~17 ms to hash).

        The previous blob of each kind stays served and offered too: a slow peer may still be
        fetching last round's update when this node has moved on. A small blob of an
        INLINE_KINDS kind that every member may have at once travels inside its announcement
        (no peer fetches it).
        """
        release = self._release_for(kind, round_no, self.host.peer_id)
        blob_digest = self.host.serve(blob, verified_digest=blob_digest, release=release)
        fields = dict(swarm=self.swarm, round=round_no, kind=kind, samples=samples, codec=codec,
                      sender=self.host.peer_id)
        if kind in INLINE_KINDS and release is None and len(blob) <= INLINE_MAX_BYTES:
            ann = Announcement.carrying(blob, **fields)
        else:
            ann = Announcement(**fields, digest=blob_digest, size=len(blob))  # type: ignore[arg-type]
        offers = self.offers.setdefault(kind, [])
        offers.append(Offer(ann, until, wanted_by))
        while len(offers) > 2:
            self._release(offers.pop(0).ann.digest)
        await self._publish(ann)
        return blob_digest

    async def _publish(self, ann: Announcement) -> None:
        if ann.inline:
            self._reached.setdefault(ann, set()).update(self.host.topic_peers())
        await self.host.publish(ann)

    def _holders(self, ann: Announcement) -> frozenset[str] | set[str]:
        """Peers that have `ann`: those that asked for its blob (served or not: one held back by the
        release rule asks again on its own, so a repeat would tell it nothing) or, for an inline
        blob, those subscribed to the swarm's gossip when it went out (it reached them with the
        announcement)."""
        return self._reached.get(ann, set()) if ann.inline else self.host.asked_by(ann.digest)

    async def reannounce_forever(self) -> None:
        """Repeat each offer while some peer still lacks its blob, less often the longer it lasts
        and the larger the swarm (merged models: now and then)."""
        ticks = 0
        while True:
            await trio.sleep(REANNOUNCE_SECONDS)
            ticks += 1
            now = trio.current_time()
            live = {offer.ann for offers in self.offers.values() for offer in offers}
            self._repeats = {a: v for a, v in self._repeats.items() if a in live}
            self._reached = {a: v for a, v in self._reached.items() if a in live}
            for kind, offers in self.offers.items():
                for offer in offers:
                    if kind == "model":  # the newest only, now and then
                        due = offer is offers[-1] and ticks % self._model_pause() == 0
                    else:
                        wanting = set(self.peers) if offer.wanted_by is None else offer.wanted_by
                        # the pause grows with the swarm, not with `wanting`: every copy reaches every peer
                        due = (now <= offer.until and bool(wanting - self._holders(offer.ann))
                               and self._repeat_due(offer.ann, now, len(self.peers)))
                    if due:
                        await self._publish(offer.ann)

    def _model_pause(self) -> int:
        """Seconds (reannounce ticks) between repeats of the newest merged model."""
        return max(MODEL_REANNOUNCE_TICKS, math.ceil(len(self.peers) / MODEL_REANNOUNCE_PEERS_PER_SECOND))

    def _repeat_due(self, ann: Announcement, now: float, peers: int) -> bool:
        """Whether `ann`'s next repeat is due now; if so, the one after waits twice as long (up to
        a pause that grows with the number of peers it is for, see REANNOUNCE_PEERS_PER_SECOND)."""
        due, pause = self._repeats.get(ann, (now, REANNOUNCE_SECONDS))
        if now < due:
            return False
        longest = min(REANNOUNCE_MAX_SECONDS, max(REANNOUNCE_SECONDS, peers / REANNOUNCE_PEERS_PER_SECOND))
        self._repeats[ann] = (now + pause, min(2 * pause, longest))
        return True

    async def fetch_blob(self, ann: Announcement) -> bytes:
        """Fetch `ann`'s blob from its sender or, failing that, from any other member holding it.

        Blobs are addressed by digest, so any peer's copy is as good as the sender's: nodes serve
        the updates they verified (`relay`) and nodes that agree serve the same merged model.
        When a peer dies mid-round, the bytes that reached some nodes then reach all of them,
        and every node merges the same set. Each source gets a bounded try (`_from`), so a
        sender that stalls (paused, or hostile) costs seconds, not the round. Raises the
        sender's error if nobody has the blob. An inline blob is there already (checked against
        the digest when the announcement was parsed).
        """
        if (inline := ann.blob) is not None:
            return inline
        try:
            return await self._from(ann.sender, ann)
        except FetchError as exc:
            sender_error = exc
        members = self.peers
        for relay in (p for p in self.host.peers() if p in members and p != ann.sender):
            try:
                blob = await self._from(relay, ann)
            except FetchError:
                continue
            self.log.info("%s r%d of %s fetched from %s (%s)", ann.kind, ann.round, self.name(ann.sender),
                          self.name(relay), type(sender_error).__name__)
            return blob
        raise sender_error

    async def _from(self, source: str, ann: Announcement) -> bytes:
        limit = min(ann.size, self.max_blob)
        with trio.move_on_after(self.source_seconds + ann.size / SOURCE_MIN_RATE):
            return await self.host.fetch(source, ann.digest, max_bytes=limit)
        raise FetchTimeout(f"{self.name(source)} did not deliver {ann.digest[:10]} in time")

    async def fetch_accepted(self, ann: Announcement, intake: BlobIntake[T],
                             retry_until: float = -math.inf) -> tuple[bytes, T] | None:
        """Verify `ann`, fetch its blob and pass it through `intake`; None (and a strike) if it fails.

        Sources that do not have the blob yet are retried until `retry_until`: a node that
        verified a blob starts serving it a moment later, so a first miss on every source is
        worth another try while the round lasts. A rejected announcement or blob is final.
        """
        if ann.size > min(self.max_blob, intake.max_bytes):
            self.strike(ann.sender, f"{ann.kind} r{ann.round}: announced {ann.size} bytes, more than the model's")
            return None
        try:
            await intake.verify(ann)
            blob = await self._fetch_until(ann, retry_until)
            self.bytes_in += len(blob)
            return blob, intake.accept(ann, blob)
        except (Rejected, LedgerError) as exc:
            self.strike(ann.sender, f"{ann.kind} r{ann.round}: {exc}")
            return None

    async def _fetch_until(self, ann: Announcement, retry_until: float) -> bytes:
        """Fetch from any source, retrying until `retry_until`, which also bounds each attempt:
        a source that stalls its stream (a paused or hostile peer) cannot hold the node longer."""
        with trio.move_on_at(retry_until if math.isfinite(retry_until) else math.inf):
            while True:
                try:
                    return await self.fetch_blob(ann)
                except FetchError as exc:
                    pause = RELEASE_RETRY_SECONDS if isinstance(exc, NotReleased) else FETCH_RETRY_SECONDS
                    if trio.current_time() + pause >= retry_until:
                        raise Rejected(f"fetch failed: {exc}") from None
                await trio.sleep(pause)
        raise Rejected("no source delivered it before the round's deadline")

    async def collect(self, kind: str, round_no: int, intake: BlobIntake[T], deadline: float,
                      awaited: set[str] | Callable[[], set[str]] | None = None, grace: float = 0.0,
                      stop: Callable[[], bool] = lambda: False, senders: set[str] | None = None) -> dict[str, T]:
        """Fetch and admit peers' blobs of (kind, round); accepted blobs are relayed.

        Waits for every awaited peer (default: all) and every peer that announced so far to be
        either in or failed; then, while some member is still missing, `grace` seconds more for
        latecomers (a member coming back after an absence); and never past `stop()` or the
        deadline. Every fetch ends by the deadline, so a stalling peer cannot hold the node. A
        peer that already announced a later round gets the grace period too, not the round: an
        honest one served this round's blob before it could move on, and one that never serves
        it would otherwise hold this node to the deadline while the next round's clock runs.
        `awaited` may be a function: then it is asked again at every check (and at least every
        AWAITED_POLL_SECONDS), for a set that changes while collecting (who is alive).
        With `senders`, only their blobs are fetched (a sampled swarm's drawn partners).
        """
        results: dict[str, T] = {}
        tried: set[str] = set()
        done: set[str] = set()
        members = set(self.peers) if senders is None else set(self.peers) & senders  # fixed for the call
        ask = (lambda: members) if awaited is None else (lambda: awaited) if isinstance(awaited, set) else awaited
        poll = AWAITED_POLL_SECONDS if callable(awaited) else math.inf

        def waiting_for() -> set[str]:
            return ask() & members

        grace_end = math.inf

        async def take(ann: Announcement) -> None:
            # A peer not waited for gets the grace period, not the round: one that announces and
            # never serves would otherwise hold every round to its deadline.
            until = deadline if ann.sender in waiting_for() else min(deadline, trio.current_time() + max(grace, 1.0))
            try:
                fetched = await self.fetch_accepted(ann, intake, retry_until=until)
                if fetched is not None:
                    blob, results[ann.sender] = fetched
                    self.relay(kind, round_no, blob, ann.digest, ann.sender)
            finally:
                done.add(ann.sender)
                self.inbox.poke()

        def fresh() -> list[Announcement]:
            return [a for s, a in self.inbox.get(kind, round_no).items() if s not in tried and s in members]

        def settled() -> bool:
            return (waiting_for() | tried) - self.inbox.ahead(kind, round_no) <= done

        def finished() -> bool:
            now = trio.current_time()
            return stop() or now >= deadline or members <= done or (settled() and now >= grace_end)

        async with trio.open_nursery() as nursery:
            while True:
                for ann in fresh():
                    tried.add(ann.sender)
                    nursery.start_soon(take, ann)
                if settled() and grace_end == math.inf:
                    grace_end = trio.current_time() + grace
                if finished():
                    break
                # Unsettled, it waits for a fetch to finish (that pokes the inbox) or, with an
                # awaited function, for the awaited set to shrink (nothing pokes: polled).
                wake = grace_end if settled() else trio.current_time() + poll
                await self.inbox.wait_until(
                    lambda: finished() or bool(fresh()) or (settled() and grace_end == math.inf),
                    min(deadline, wake))
            nursery.cancel_scope.cancel()  # only fetches cut off by the deadline or `stop()` remain
        late = sorted(waiting_for() - set(results))
        if late:
            self.log.info("%s r%d: no valid %s from %s", kind, round_no, kind, ", ".join(map(self.name, late)))
        return results

    def relay(self, kind: str, r: int, blob: bytes, verified_digest: str, owner: str) -> None:
        """Serve a peer's (`owner`'s) verified blob of round r too, until round r + 2 (see
        `fetch_blob`), under the same release rule as its sender's copy."""
        self._relayed.setdefault(r, []).append(self.host.serve(blob, verified_digest,
                                                               self._release_for(kind, r, owner)))
        for old in [k for k in self._relayed if k < r - 1]:
            for d in self._relayed.pop(old):
                self._release(d)

    def _release(self, blob_digest: str) -> None:
        """Stop serving a blob unless it is still offered or relayed for another round.

        The server knows blobs by digest only, and identical bytes can come back in a later round
        (an all-zero update is the same every round): unserving the old round's copy would take
        the current one away, and only the peers that fetched it in time would merge it.
        """
        offered = {o.ann.digest for offers in self.offers.values() for o in offers}
        relayed = {d for ds in self._relayed.values() for d in ds}
        if blob_digest not in offered | relayed:
            self.host.unserve(blob_digest)

    def strike(self, sender: str, why: str) -> None:
        """Count dropped input against `sender` and say why in the log."""
        self.strikes[sender] = self.strikes.get(sender, 0) + 1
        self.log.warning("dropped input from %s: %s", self.name(sender), why)
