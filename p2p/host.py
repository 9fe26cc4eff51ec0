"""SwarmHost: one node's libp2p presence (identity, peers, announcements, update transfer).

Built on py-libp2p 0.8.1 with TCP + Noise + Yamux and GossipSub. It

- keeps a persistent Ed25519 identity in an owner-only key file (p2p.identity);
- listens on a configurable multiaddr, dials a bootstrap list in the background until each
  peer is connected (lifting the library's negative dial cache before every retry) and
  optionally runs mDNS;
- publishes and receives :class:`~p2p.announce.Announcement` on the swarm's gossip topic,
  behind a topic validator (size, parse, allowlist, sender == signer);
- admits only allowlisted peers at all (p2p.membership): a non-member's connection is closed
  right after the security handshake, before any stream, and it never enters the gossip mesh;
- serves and fetches update bytes by digest over the transfer protocol (p2p.transfer).

Everything runs on trio. Library workarounds live in p2p.libp2p_patches.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncContextManager

import multiaddr
import trio
from libp2p import new_host
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import PROTOCOL_ID, PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from p2p import libp2p_patches
from p2p.announce import MAX_ANNOUNCEMENT_BYTES, Announcement, AnnouncementError
from p2p.identity import base58, load_or_create_keypair, peer_id_for_key_file
from p2p.membership import guard as guard_membership
from p2p.transfer import (
    PROTOCOL_ID as TRANSFER_PROTOCOL_ID,
    BadResponse,
    BlobServer,
    BlobTooLarge,
    DigestMismatch,
    FetchError,
    FetchTimeout,
    NotFound,
    NotReleased,
    PeerUnavailable,
    Release,
    digest_to_bytes,
    read_blob,
)

__all__ = [
    "BadResponse", "BlobTooLarge", "DigestMismatch", "FetchError", "FetchTimeout", "HostConfig",
    "NotFound", "NotReleased", "PeerUnavailable", "Release", "SwarmHost", "TRANSFER_PROTOCOL_ID", "peer_id_for_key_file",
    "topic_for_swarm",
]

logger = logging.getLogger(__name__)

#: GossipSub settings (see docs/p2p.md): 1 s heartbeat, no adaptive gossip (it silently
#: stretches the heartbeat to 30-60 s), and a per-topic, per-forwarder rate limit high
#: enough that relays in a 16+ node swarm do not drop announcements. A node's own messages go
#: to every subscribed peer (flood publishing, libp2p_patches 13), so the mesh only forwards
#: copies for redundancy: degree 3 (2..4), not the usual 6 (4..12), under which a node of 8 read
#: each announcement about 6 times (about 2 now; measured in-process with 8 and 16 hosts).
GOSSIP_DEGREE = (3, 2, 4)
GOSSIP_HEARTBEAT_S = 1
GOSSIP_RATE_LIMIT_PER_S = 1000.0
#: GossipSub v1.1 at most: v1.2 adds IDONTWANT, which py-libp2p sends to every mesh peer for
#: every message received, whatever its size. Announcements are a few hundred bytes, so that
#: only multiplied the RPCs (each with a signed peer record to check) by the mesh degree.
GOSSIP_PROTOCOLS = (PROTOCOL_ID_V11, PROTOCOL_ID)
ANNOUNCEMENT_QUEUE = 1024
#: Messages GossipSub holds for a peer that is connected but whose subscription it has not read
#: yet (the library's 100 dropped the oldest while 32 processes started on 2 cores).
GOSSIP_PENDING_PER_PEER = 1024
#: How often the host looks for connected members without a gossip stream (see _keep_gossip_streams).
GOSSIP_STREAM_CHECK_S = 5.0
CONNECT_TIMEOUT_S = 10.0
BOOTSTRAP_BACKOFF_S = (0.25, 5.0)


def topic_for_swarm(swarm: str) -> str:
    """The gossip topic that carries one swarm's announcements."""
    return f"/medswarm/{swarm}/announce/1"


@dataclass(frozen=True)
class HostConfig:
    """How one node's libp2p host runs."""

    key_file: Path
    listen: str = "/ip4/127.0.0.1/tcp/0"
    bootstrap: tuple[str, ...] = ()
    mdns: bool = False
    swarm: str = "medswarm"
    max_blob_bytes: int = 256 * 2**20
    fetch_timeout: float = 30.0
    max_concurrent_fetches: int = 4


class SwarmHost:
    """A node's libp2p host. Use ``async with host.run(): ...``."""

    def __init__(
        self, config: HostConfig, *, name: str = "", allowlist: Iterable[str] | None = None
    ) -> None:
        libp2p_patches.apply()
        self.config = config
        self._key_pair = load_or_create_keypair(Path(config.key_file))
        self._id = ID.from_pubkey(self._key_pair.public_key)
        self.peer_id: str = self._id.to_base58()
        self.name = name or self.peer_id[-6:]
        # Records carry the node's name as `node`, like every other layer's (see node/logs.py).
        self.log = logging.LoggerAdapter(logger, {"node": self.name})
        self.topic = topic_for_swarm(config.swarm)
        self.listen_addrs: list[str] = []
        self._allow: frozenset[str] | None = None
        self._server = BlobServer(is_allowed=self._is_allowed, log=self.log)
        self._fetch_slots = trio.Semaphore(config.max_concurrent_fetches)
        self._ann_send, self._ann_recv = trio.open_memory_channel[Announcement](ANNOUNCEMENT_QUEUE)
        self._host: Any = None
        self._pubsub: Pubsub | None = None
        self._nursery: trio.Nursery | None = None
        self.set_allowlist(allowlist)
        self.dropped_announcements = 0
        self.rejected_announcements = 0
        # What the swarm's size costs a node, counted for its metrics: gossip messages checked
        # (first copies only: the library drops repeats before the validator), own publishes,
        # and blob fetches started.
        self.gossip_checked = 0
        self.gossip_published = 0
        self.fetches = 0

    # ------------------------------------------------------------------ lifecycle
    def run(self) -> AsyncContextManager["SwarmHost"]:
        """Start listening, gossip, transfer and bootstrap; stop everything on exit."""
        return self._run()

    @asynccontextmanager
    async def _run(self) -> AsyncIterator["SwarmHost"]:
        if self._host is not None:
            raise RuntimeError("SwarmHost.run() is not re-entrant")
        listen = multiaddr.Multiaddr(self.config.listen)
        host = new_host(
            key_pair=self._key_pair,
            listen_addrs=[listen],
            enable_mDNS=self.config.mdns,
            muxer_preference="YAMUX",
        )
        degree, low, high = GOSSIP_DEGREE
        gossipsub = GossipSub(
            protocols=list(GOSSIP_PROTOCOLS),
            degree=degree,
            degree_low=low,
            degree_high=high,
            heartbeat_interval=GOSSIP_HEARTBEAT_S,
            heartbeat_initial_delay=0.1,
            adaptive_gossip_enabled=False,
            max_messages_per_topic_per_second=GOSSIP_RATE_LIMIT_PER_S,
            max_pending_messages_per_peer=GOSSIP_PENDING_PER_PEER,
        )
        pubsub = Pubsub(host, gossipsub, strict_signing=True)
        host.set_stream_handler(TRANSFER_PROTOCOL_ID, self._server.handle)
        guard_membership(host, pubsub, self._is_allowed, self.log)
        self._host, self._pubsub = host, pubsub
        try:
            # Order matters (platform notes): Pubsub and GossipSub must be running before
            # the host accepts streams, or an early inbound pubsub stream crashes it.
            async with background_trio_service(pubsub), background_trio_service(gossipsub):
                async with host.run(listen_addrs=[listen]):
                    await pubsub.wait_until_ready()
                    pubsub.set_topic_validator(self.topic, self._validate_gossip, False)
                    subscription = await pubsub.subscribe(self.topic)
                    self.listen_addrs = [str(a) for a in host.get_addrs()]
                    self.log.info("listening on %s", ", ".join(self.listen_addrs))
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._pump_announcements, subscription)
                        nursery.start_soon(self._keep_gossip_streams)
                        for addr in self.config.bootstrap:
                            nursery.start_soon(self._keep_connected, addr)
                        try:
                            yield self
                        finally:
                            self._nursery = None
                            nursery.cancel_scope.cancel()
        finally:
            self._ann_send.close()
            self._host = self._pubsub = None
            self.log.info("stopped")

    # ------------------------------------------------------------------ peers
    def set_allowlist(self, peer_ids: Iterable[str] | None) -> None:
        """Accept only these peer ids (None: everyone). Takes effect immediately.

        While running, peers already connected that are no longer allowed are disconnected.
        """
        self._allow = None if peer_ids is None else frozenset(peer_ids) | {self.peer_id}
        if self._nursery is not None and self._host is not None:
            for pid in self._host.get_connected_peers():
                if not self._is_allowed(pid.to_base58()):
                    self.log.warning("disconnecting peer %s: no longer on the allowlist", pid)
                    self._nursery.start_soon(self._drop_peer, pid)

    def _is_allowed(self, peer_id: str) -> bool:
        return self._allow is None or peer_id in self._allow

    async def connect(self, multiaddr_str: str) -> None:
        """Dial a full multiaddr (with /p2p/<id>); raises PeerUnavailable on failure."""
        host = self._require_running()
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(multiaddr_str))
        except Exception as exc:  # noqa: BLE001 - bad user input
            raise ValueError(f"not a full multiaddr with /p2p/<id>: {multiaddr_str!r}: {exc}") from None
        host.get_network().unblock_peer(info.peer_id)  # lift the library's negative dial cache
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                await host.connect(info)
        except trio.TooSlowError:
            raise PeerUnavailable(f"connecting to {multiaddr_str} timed out") from None
        except Exception as exc:  # noqa: BLE001 - the library raises many types here
            raise PeerUnavailable(f"cannot connect to {multiaddr_str}: {type(exc).__name__}: {exc}") from None

    def peers(self) -> list[str]:
        """Peer ids with an open connection."""
        host = self._host
        return [] if host is None else sorted(p.to_base58() for p in host.get_connected_peers())

    def pubsub_peers(self) -> list[str]:
        """Peers this host has an open outbound gossip stream to."""
        pubsub = self._pubsub
        return [] if pubsub is None else sorted(p.to_base58() for p in pubsub.peers)

    def topic_peers(self) -> list[str]:
        """Peers known to be subscribed to our announcement topic (gossip is ready to them)."""
        pubsub = self._pubsub
        if pubsub is None:
            return []
        return sorted(p.to_base58() for p in pubsub.peer_topics.get(self.topic, ()))

    async def _keep_connected(self, addr: str) -> None:
        """Background bootstrap: dial ``addr`` until connected, and again whenever it drops."""
        try:
            info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        except Exception as exc:  # noqa: BLE001
            self.log.error("ignoring bad bootstrap address %r: %s", addr, exc)
            return
        if info.peer_id == self._id:
            return
        delay, max_delay = BOOTSTRAP_BACKOFF_S
        attempts = 0
        while True:
            host = self._host
            if host is None:
                return
            if host.get_network().connections.get(info.peer_id):
                delay = BOOTSTRAP_BACKOFF_S[0]
                await trio.sleep(1.0)
                continue
            attempts += 1
            try:
                await self.connect(addr)
                self.log.info("connected to bootstrap peer %s (attempt %d)", info.peer_id, attempts)
                attempts = 0
                continue
            except PeerUnavailable as exc:
                log = self.log.info if attempts in (1, 10) or attempts % 50 == 0 else self.log.debug
                log("bootstrap peer not reachable yet (attempt %d, retry in %.2f s): %s", attempts, delay, exc)
            await trio.sleep(delay)
            delay = min(delay * 2, max_delay)

    async def _keep_gossip_streams(self) -> None:
        """Re-open the gossip stream to a member that stayed connected without one for two whole checks.

        py-libp2p opens it when a connection comes up and retries while connected, but under
        start-up churn (connections dialled both ways, streams failing to open) a peer can be
        left connected with no gossip stream, and then no announcement of ours reaches it.
        """
        pubsub = self._pubsub
        assert pubsub is not None
        missing: list[set[ID]] = [set(), set()]  # the last two checks' findings
        opening: set[ID] = set()

        async def reopen(pid: ID) -> None:
            try:
                await pubsub.ensure_peer_stream(pid, GOSSIP_STREAM_CHECK_S * 5)
            finally:
                opening.discard(pid)

        while True:
            await trio.sleep(GOSSIP_STREAM_CHECK_S)
            host, nursery = self._host, self._nursery
            if host is None or nursery is None:
                return
            now = {p for p in host.get_connected_peers() if p not in pubsub.peers and self._is_allowed(base58(p))}
            # under start-up churn the library's own retries need a while: leave them to it
            for pid in (now & missing[0] & missing[1]) - opening:
                self.log.info("no gossip stream to connected peer %s; opening one", pid)
                opening.add(pid)
                nursery.start_soon(reopen, pid)
            missing = [missing[1], now]

    # ------------------------------------------------------------------ announcements
    async def publish(self, ann: Announcement) -> None:
        """Publish on the swarm topic. ``ann.sender`` must be this host's peer id."""
        self._require_running()
        pubsub = self._pubsub
        assert pubsub is not None
        if ann.sender != self.peer_id:
            raise AnnouncementError(f"sender {ann.sender} is not this host ({self.peer_id})")
        if ann.swarm != self.config.swarm:
            raise AnnouncementError(f"swarm {ann.swarm!r} is not this host's {self.config.swarm!r}")
        self.gossip_published += 1
        await pubsub.publish(self.topic, ann.to_bytes())

    def announcements(self) -> AsyncIterator[Announcement]:
        """Validated announcements from allowed peers (own ones filtered).

        All iterators share one queue (each announcement goes to one of them); iteration
        ends when the host stops. Safe to abandon mid-way (no generator to finalise).
        """
        return _AnnouncementStream(self._ann_recv)

    def _validate_gossip(self, forwarder: ID, msg: rpc_pb2.Message) -> bool:
        """Topic validator: runs before anything else sees a message. Never raises."""
        self.gossip_checked += 1
        try:
            if len(msg.data) > MAX_ANNOUNCEMENT_BYTES:
                return self._reject(forwarder, f"oversize message of {len(msg.data)} bytes")
            signer = base58(ID(msg.from_id))
            if not self._is_allowed(signer):
                return self._reject(forwarder, f"signer {signer} is not on the allowlist")
            forwarder_b58 = base58(forwarder)
            if not self._is_allowed(forwarder_b58):
                return self._reject(forwarder, f"forwarder {forwarder_b58} is not on the allowlist")
            ann = Announcement.from_bytes(msg.data)
            if ann.sender != signer:
                return self._reject(forwarder, f"sender field {ann.sender} differs from signer {signer}")
            if ann.swarm != self.config.swarm:
                return self._reject(forwarder, f"announcement for swarm {ann.swarm!r}")
            return True
        except Exception as exc:  # noqa: BLE001 - unparsable input from a peer
            return self._reject(forwarder, f"{type(exc).__name__}: {exc}")

    def _reject(self, forwarder: ID, why: str) -> bool:
        self.rejected_announcements += 1
        self.log.warning("rejected gossip forwarded by %s: %.300s", forwarder, why)
        return False

    async def _pump_announcements(self, subscription: Any) -> None:
        async for msg in subscription:
            if msg.from_id == self._id.to_bytes():
                continue  # our own publish echoed back
            try:
                ann = Announcement.from_bytes(msg.data)  # already validated; parse again for the value
            except AnnouncementError:
                continue
            try:
                self._ann_send.send_nowait(ann)
            except trio.WouldBlock:
                self.dropped_announcements += 1
                self.log.warning(
                    "announcement queue full (%d); dropped %s r%d from %s",
                    ANNOUNCEMENT_QUEUE, ann.kind, ann.round, ann.sender,
                )

    # ------------------------------------------------------------------ transfer
    def serve(self, data: bytes, verified_digest: str | None = None, release: Release | None = None) -> str:
        """Make ``data`` fetchable by its digest; returns the digest.

        ``verified_digest``: the digest ``fetch`` already checked these bytes against (a
        40 MB model takes ~0.1 s to hash again). ``release``: who may have it yet (see
        p2p.transfer.Release); a peer it refuses gets NotReleased and may ask again.
        """
        return self._server.add(data, verified_digest, release)

    def unserve(self, digest: str) -> None:
        """Stop serving ``digest`` (no-op if unknown)."""
        self._server.remove(digest)

    def fetched_by(self, digest: str) -> frozenset[str]:
        """Peer ids that have fetched the blob ``digest`` from this host in full."""
        return self._server.fetched_by(digest)

    def asked_by(self, digest: str) -> frozenset[str]:
        """Peer ids that requested the blob ``digest`` from this host, served or refused."""
        return self._server.asked_by(digest)

    @property
    def bytes_served(self) -> int:
        """Blob payload bytes this host has sent to peers so far."""
        return self._server.bytes_served

    async def fetch(self, peer_id: str, digest: str, max_bytes: int | None = None) -> bytes:
        """Fetch and verify the blob ``digest`` from ``peer_id``.

        Raises a FetchError subclass: FetchTimeout, DigestMismatch, BlobTooLarge, NotFound, NotReleased,
        PeerUnavailable, BadResponse. A peer that sends a wrong digest or breaks the
        protocol is disconnected.
        """
        host = self._require_running()
        digest_to_bytes(digest)  # ValueError early for a malformed digest
        limit = self.config.max_blob_bytes if max_bytes is None else min(max_bytes, self.config.max_blob_bytes)
        if not self._is_allowed(peer_id):
            raise PeerUnavailable(f"peer {peer_id} is not on the allowlist")
        try:
            pid = ID.from_base58(peer_id)
        except Exception:  # noqa: BLE001
            raise ValueError(f"not a peer id: {peer_id!r}") from None
        self.fetches += 1
        async with self._fetch_slots:
            stream = None
            try:
                with trio.fail_after(self.config.fetch_timeout):
                    try:
                        stream = await host.new_stream(pid, [TRANSFER_PROTOCOL_ID])
                    except Exception as exc:  # noqa: BLE001 - dial/negotiation errors of many types
                        raise PeerUnavailable(
                            f"cannot open a transfer stream to {peer_id}: {type(exc).__name__}: {exc}"
                        ) from None
                    data = await read_blob(stream, digest, limit)
            except trio.TooSlowError:
                raise FetchTimeout(
                    f"fetching {digest} from {peer_id} took longer than {self.config.fetch_timeout} s"
                ) from None
            except (DigestMismatch, BadResponse) as exc:
                if isinstance(exc, BadResponse) and await self._connection_lost(pid, stream):
                    raise PeerUnavailable(f"lost {peer_id} while fetching {digest}: {exc}") from None
                self.log.warning("peer %s misbehaved on a fetch; disconnecting: %s", peer_id, exc)
                await self._drop_peer(pid)
                raise
            except FetchError:
                raise
            except Exception as exc:  # noqa: BLE001 - stream reset / connection lost
                raise PeerUnavailable(
                    f"lost {peer_id} while fetching {digest}: {type(exc).__name__}: {exc}"
                ) from None
            finally:
                if stream is not None:
                    await _close_quietly(stream)
        self.log.debug("fetched %d bytes of %s from %s", len(data), digest, peer_id)
        return data

    async def _connection_lost(self, pid: ID, stream: Any) -> bool:
        """Did the connection die (rather than the peer ending the stream early on purpose)?

        A killed peer shows up as EOF on its streams slightly before the connection is
        torn down, so give the teardown a moment to become visible.
        """
        muxed = getattr(stream, "muxed_conn", None)
        shutting_down = getattr(muxed, "event_shutting_down", None)
        with trio.move_on_after(0.5):
            while True:
                if getattr(muxed, "is_closed", False) is True or (
                    shutting_down is not None and shutting_down.is_set()
                ):
                    return True
                if not self._require_running().get_network().connections.get(pid):
                    return True
                await trio.sleep(0.05)
        return False

    async def _drop_peer(self, pid: ID) -> None:
        host = self._host
        if host is None:
            return
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            try:
                await host.disconnect(pid)
            except Exception:  # noqa: BLE001
                self.log.debug("disconnect from %s failed", pid, exc_info=True)

    @property
    def libp2p_host(self) -> Any:
        """The underlying py-libp2p host while running (escape hatch for tests and tools)."""
        return self._require_running()

    def _require_running(self) -> Any:
        if self._host is None:
            raise RuntimeError("SwarmHost is not running; use `async with host.run():`")
        return self._host


class _AnnouncementStream:
    """Async iterator over the host's announcement queue."""

    def __init__(self, channel: trio.MemoryReceiveChannel[Announcement]) -> None:
        self._channel = channel

    def __aiter__(self) -> "_AnnouncementStream":
        return self

    async def __anext__(self) -> Announcement:
        try:
            return await self._channel.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise StopAsyncIteration from None


async def _close_quietly(stream: Any) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        try:
            await stream.reset()
        except Exception:  # noqa: BLE001
            pass
