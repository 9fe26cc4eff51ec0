"""Workarounds for py-libp2p 0.8.1 defects that crash a host or waste memory.

Every patch here is applied by :func:`apply` (idempotent, process-wide; SwarmHost calls it
before it builds any Pubsub). Each one has a test in tests/p2p/test_libp2p_patches.py that
shows the failure it prevents. Remove a patch once the library fixes the defect.

1. ``Pubsub.write_msg`` is called concurrently for one stream (by the per-peer writer and
   by ``GossipSub.send_recent_messages`` / ``flush_pending_messages``). Yamux only locks
   per 64 KiB frame, so two RPCs larger than that interleave on the wire; the receiver
   fails with ``google.protobuf.message.DecodeError``. Fix: a lock per stream.
2. ``Pubsub.stream_handler`` only catches a few error types: a peer that writes a
   malformed RPC (DecodeError) or anything else unexpected kills the whole host. Fix:
   catch any Exception, log it, reset that peer's stream and forget the peer.
3. ``Pubsub.push_msg`` runs as a service task per received message; an exception in it
   (e.g. a message whose ``key`` field is garbage, which ``signature_validator`` re-raises)
   cancels the whole Pubsub service. Fix: drop such a message and log it.
4. ``GossipSub._check_equivocation`` keeps full copies of the last 500-1000 messages.
   Fix: keep a 32-byte digest of (data, topics) per (from, seqno) instead.
5. Yamux sends a WINDOW_UPDATE frame after *every* read (``PY_YAMUX_RELEASE_ON_READ``
   defaults to on), about one per 64 KiB frame: the receiver spends a quarter of a bulk
   transfer's time on these tiny writes. Fix: batch them like go-yamux (one update per
   half window) unless the user set ``PY_YAMUX_RELEASE_ON_READ`` explicitly.
   (Tried and rejected: opening the receive window to 16 MiB up front made transfers
   2x slower here.)
6. Every pubsub RPC, control messages included, carries the sender's signed peer record,
   and ``maybe_consume_signed_record`` checks its Ed25519 signature each time, although a
   peer sends the same record bytes until its addresses change. With 8 node processes on 2
   cores that was the largest single cost of each event loop (py-spy: 11% of the main
   thread in ``crypto_sign_open``). Fix: per host, remember the record bytes last accepted
   from each peer and skip the check for identical bytes for ``RECORD_RECHECK_S``;
   different bytes, or a record that failed, are always checked in full.
7. A Yamux data frame is 64 KiB with its header, but a Noise transport message carries at
   most 65519 bytes of plaintext, so every full frame went out as two Noise messages (the
   second one 17 bytes): twice the length prefixes, AEAD calls and socket reads per frame.
   Fix: cap Yamux frames at one Noise message (``MAX_MESSAGE_SIZE = 65519``). Blob
   throughput on loopback went from about 72 to 95 MB/s (python -m scripts.bench.p2p).
8. ``YamuxStream.write`` waits for send credit by polling the window every 10 ms. A blob
   sender exhausts the 256 KiB window in a few ms, so it slept most of the time (blob
   throughput 15-30 MB/s). Fix: ``send_window`` becomes a property that wakes the waiting
   writer the moment a WINDOW_UPDATE raises it; the writer also stops copying each frame's
   payload out of the caller's buffer before joining it to the header.
9. The Noise transport reads each message with two socket reads (its 2-byte length, then
   its body), each a trio checkpoint and a system call, and ``read_exactly`` copies even
   a read that returned everything at once. Fix: the transport reader keeps a buffer
   refilled up to ``NOISE_RECV_BYTES`` a read (several messages a system call; bounded, as
   it is filled only while a whole message is missing), and ``read_exactly`` returns a
   complete first read as it is. Only the transport reader buffers: the handshake reader
   must not read past its last message. ``SecureSession`` kept the rest of a message in a
   BytesIO (two more copies of every Yamux frame body): it now keeps the bytes and an offset.
   And a bulk ``YamuxStream.write`` seals up to ``WRITE_BATCH_FRAMES`` frames and sends them
   with one socket write, under the connection's write lock that orders Noise messages.
10. After every read that leaves the stream's receive window short by less than half of it
   (the "partial slack" case: every small read), ``YamuxStream`` sent a WINDOW_UPDATE, and
   one for twice the bytes read. A gossip stream carries RPCs of a few hundred bytes, so
   about every second RPC a node read cost it a frame back (sealed, written, read, opened
   and handled by the peer): with 32 node processes a sizeable share of all frames. Fix: go-yamux's rule
   only, one update once the consumed credit reaches half the window (bulk transfers
   unchanged: they cross half a window every few frames).
11. Gossip queues of 32 at both ends drop what does not fit: ``Pubsub`` hands validated
   messages to a subscription through a channel of 32 (``SUBSCRIPTION_CHANNEL_SIZE``), and
   queues at most 32 RPCs for each peer's writer (``RpcQueue``, ``OutBoundQueueSize``). A
   message dropped there is already marked seen, so gossip never offers it again. A node busy
   for a moment while a swarm of 16 or 32 announces its statistics, updates or score sheets
   lost most of them (only a re-announcement brought them back, seconds later), and a burst
   of more than 32 publishes reached a peer as 32. Fix: ``SUBSCRIPTION_QUEUE`` and
   ``OUTBOUND_QUEUE`` (announcements are at most 1 KiB: a few MiB at worst per peer).
12. Every gossip message a node receives is handled in a task of its own (``Pubsub`` calls
   ``manager.run_task(push_msg, ...)``), and ``TrioManager.run_task`` finds the new task's parent
   by walking the service's whole task tree (``_find_parent_task``): per message, one step per
   running task, and a node runs a few tasks per peer (stream readers and writers), so a swarm of
   N paid O(N) per message, O(N^2) per round. Fix: remember the answer per calling trio task (a
   trio task runs one managed task for its whole life); the first call from a task, and a call
   after its managed task finished, still walk the tree.
13. GossipSub sends a node's own messages to its mesh peers only, and py-libp2p keeps that mesh
   poorly: in a swarm larger than the mesh's upper degree, nodes ended up with an empty mesh
   (their GRAFTs answered by PRUNEs and "GRAFT flood" penalties) and heard only what a
   publisher sent them directly, while IHAVE gossip never repaired it (8 hosts at degree
   4..6: one of them checked 3 of 21 announcements; 16 at the default 6..12: most checked 18 or
   27 of 45). Fix: flood publishing, go-libp2p's default since GossipSub v1.1: a node's own
   message goes to every peer subscribed to its topic; forwarding still follows the mesh, which
   is then only redundancy.
14. Every pubsub RPC a node sends (each forward, each control message) carries its signed peer
   record, and ``env_to_send_in_RPC`` rebuilds the host's address list to compare it with the
   record's before reusing it: about 0.5 ms per RPC (``host.get_addrs``). Fix: per host, reuse
   the envelope bytes for ``ENVELOPE_RECHECK_S`` before asking the library again (listen
   addresses do not change while a node runs; a new record would only be sent seconds later).
15. When a peer's gossip stream dies while the peer stays connected (a stream on one of two
   connections to it: two nodes that start together dial each other, and one connection later
   closes), ``Pubsub._handle_dead_peer`` re-opens the stream but first forgets the peer's
   subscriptions. Only the peer's hello (sent when *it* opens a stream) tells them again, and its
   own stream to us is still alive, so it never does: the peer stays connected, with a gossip
   stream, but out of ``peer_topics`` for good, and flood publishing (patch 13) and the mesh
   skip it (24 node processes: 23 peers connected, 19-23 of them known subscribed). Fix:
   go-libp2p's rule: a peer still connected keeps its subscriptions while its stream is re-opened.
16. ``Yamux.handle_incoming`` spends most of its time per frame on work a plain DATA frame does not
   need: about five f-strings for ``logger.debug`` built whether or not debug is on, a list of flag
   names, the connection-wide ``streams_lock``. A blob arrives as 16 such frames a MB. Fix: the
   header read the loop does (its module-global ``read_exactly``) takes plain DATA frames (no
   flags, for an open stream, within the library's size guard) itself: it reads the body under the
   library's timeout and does what the library does with it (append to the stream's buffer,
   charge the receive window, wake the reader); every other frame (SYN, ACK, FIN, RST, window
   updates, pings, GO_AWAY, unknown streams, oversize) reaches the library's loop as before.
17. ``YamuxStream.read(n)`` goes through ``Yamux.read_stream``: the connection-wide lock and four
   more debug f-strings per call, and two copies of what it returns (``bytes(buffer[:n])``). Fix:
   when the stream's buffer holds data and the stream is neither closed nor reset, take up to
   ``n`` bytes with one copy and grant credit as before; any other case goes to the library.
18. Not a defect but the library's shape: a fetched blob was copied five times after decryption
   (the rest of the Noise message, the stream's buffer, ``bytes(buffer[:n])`` twice over, the
   fetch buffer) in 64 KiB reads, each a pass through ``NetStream.read``. ``read_direct`` lets a
   reader hand its own buffer to the muxer: while it waits, patch 16 copies each plain DATA frame
   for that stream straight from the decrypted message into it (one copy), and wakes the reader
   only every MiB or half window (to report progress to the hashing thread and grant credit, from
   the reader's task as a library read would) or when the buffer is full. Frames that arrive while bytes are still buffered, or that do not fit,
   go to the stream's buffer as before, so order is kept; the wire is untouched. The buffer backs
   the credit, so the stream's receive window is opened to its size (up to the library's 16 MiB
   maximum) at once instead of growing from 256 KiB: fewer window updates, fewer stalls.
"""

from __future__ import annotations

import functools
import hashlib
import struct
import logging
import os
import time
import weakref
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.io import msgio as _msgio
from libp2p.io.exceptions import IncompleteReadError
from libp2p.io.utils import DEFAULT_RETRY_READ_COUNT
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH as _NOISE_MAX_PLAINTEXT
from libp2p.security.noise.io import SIZE_NOISE_MESSAGE_LEN, NoisePacketReadWriter, NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.exceptions import MuxedStreamError
from libp2p.stream_muxer.yamux import yamux as _yamux
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub import floodsub as _floodsub
from libp2p.pubsub import gossipsub as _gossipsub
from libp2p.pubsub import pubsub as _pubsub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.pubsub.rpc_queue import DefaultMaxMessageSize, RpcQueue as _RpcQueue
from libp2p.tools.anyio_service.trio_manager import TrioManager

__all__ = ["ORIGINALS", "apply", "applied", "read_direct"]

logger = logging.getLogger(__name__)

ORIGINALS: dict[str, Any] = {
    "Pubsub.write_msg": Pubsub.write_msg,
    "Pubsub.stream_handler": Pubsub.stream_handler,
    "Pubsub.push_msg": Pubsub.push_msg,
    "GossipSub._check_equivocation": GossipSub._check_equivocation,
    "yamux._yamux_release_on_read": _yamux._yamux_release_on_read,
    "maybe_consume_signed_record": _pubsub.maybe_consume_signed_record,
    "yamux.MAX_MESSAGE_SIZE": _yamux.MAX_MESSAGE_SIZE,
    "YamuxStream.write": _yamux.YamuxStream.write,
    "read_exactly": _yamux.read_exactly,
    "NoiseTransportReadWriter.__init__": NoiseTransportReadWriter.__init__,
    "SecureSession._fill": SecureSession._fill,
    "SecureSession._drain": SecureSession._drain,
    "YamuxStream._auto_tune_and_send_window_update": _yamux.YamuxStream._auto_tune_and_send_window_update,
    "pubsub.SUBSCRIPTION_CHANNEL_SIZE": _pubsub.SUBSCRIPTION_CHANNEL_SIZE,
    "pubsub.RpcQueue": _pubsub.RpcQueue,
    "TrioManager._find_parent_task": TrioManager._find_parent_task,
    "GossipSub._get_peers_to_send": GossipSub._get_peers_to_send,
    "env_to_send_in_RPC": _pubsub.env_to_send_in_RPC,
    "Pubsub._handle_dead_peer": Pubsub._handle_dead_peer,
    "Yamux.__init__": _yamux.Yamux.__init__,
    "Yamux._read_data_body": _yamux.Yamux._read_data_body,
    "YamuxStream.read": _yamux.YamuxStream.read,
}
#: Validated gossip messages a subscription holds, and RPCs queued for one peer's writer,
#: before the library drops them (patch 11).
SUBSCRIPTION_QUEUE = 4096
OUTBOUND_QUEUE = 1024
#: Modules that call ``read_exactly`` through their own global name.
_READ_EXACTLY_CALLERS = (_msgio,)
#: Upper bound of one socket read of the Noise transport reader.
NOISE_RECV_BYTES = 256 * 2**10
#: Modules that call ``maybe_consume_signed_record`` through their own global name.
_RECORD_CALLERS = (_pubsub, _gossipsub, _floodsub)
#: How long identical record bytes from a peer are trusted without a new signature check
#: (the peerstore's copy of the record is refreshed then; its TTL is 2 hours).
RECORD_RECHECK_S = 600.0
#: Modules that call ``env_to_send_in_RPC`` through their own global name (patch 14).
_ENVELOPE_CALLERS = (_pubsub, _gossipsub)
#: How long a host's own envelope bytes are reused before the library checks its addresses again.
ENVELOPE_RECHECK_S = 10.0
_envelopes: "weakref.WeakKeyDictionary[Any, tuple[bytes, float]]" = weakref.WeakKeyDictionary()
_accepted_records: "weakref.WeakKeyDictionary[Any, dict[ID, tuple[bytes, float]]]" = weakref.WeakKeyDictionary()
#: Per service manager: trio task -> (a weak reference to) the managed task it runs, or None for a
#: trio task the manager does not run (patch 12). Weak both ways: a managed task holds its trio task.
_parents: "weakref.WeakKeyDictionary[Any, weakref.WeakKeyDictionary[Any, Any]]" = weakref.WeakKeyDictionary()
_UNKNOWN = object()
_LOCK_ATTR = "_medswarm_write_lock"
_CREDIT_ATTR = "_medswarm_send_window"
_CREDIT_EVENT_ATTR = "_medswarm_credit_event"
#: How long a writer waits for send credit before giving up (the library's own limit).
SEND_CREDIT_TIMEOUT_S = 5.0
#: Yamux frames a bulk write seals and sends with one socket write.
WRITE_BATCH_FRAMES = 4
#: A writer waiting for credit re-checks this often whether its stream was closed meanwhile.
CLOSED_RECHECK_S = 0.05
#: Attribute of a secured connection naming (weakly) the Yamux muxer that reads it (patch 16).
_MUXER_ATTR = "_medswarm_muxer"
_YAMUX_HEADER = struct.Struct(_yamux.YAMUX_HEADER_FORMAT)
#: Attribute of a Yamux connection: stream id -> the direct reader's buffer (patch 18).
_SINKS_ATTR = "_medswarm_sinks"
_applied = False


def applied() -> bool:
    """True once :func:`apply` has run in this process."""
    return _applied


def apply() -> None:
    """Install all patches (safe to call many times)."""
    global _applied
    if _applied:
        return
    Pubsub.write_msg = _serialised_write_msg  # type: ignore[method-assign]
    Pubsub.stream_handler = _guarded_stream_handler  # type: ignore[method-assign]
    Pubsub.push_msg = _guarded_push_msg  # type: ignore[method-assign]
    GossipSub._check_equivocation = _digest_check_equivocation  # type: ignore[method-assign]
    if "PY_YAMUX_RELEASE_ON_READ" not in os.environ:
        _yamux._yamux_release_on_read = lambda: False
    _yamux.MAX_MESSAGE_SIZE = min(_yamux.MAX_MESSAGE_SIZE, _NOISE_MAX_PLAINTEXT)
    _yamux.YamuxStream.send_window = property(_send_window, _set_send_window)  # type: ignore[assignment]
    _yamux.YamuxStream.write = _credit_waiting_write  # type: ignore[method-assign]
    for module in _READ_EXACTLY_CALLERS:
        module.read_exactly = _read_exactly  # type: ignore[attr-defined]
    # In yamux.py the module-global read_exactly now reads frame headers only (bodies go through
    # _read_body), so the header reader can take plain DATA frames itself (patch 16).
    _yamux.Yamux.__init__ = _registering_yamux_init  # type: ignore[method-assign]
    _yamux.Yamux._read_data_body = _read_body  # type: ignore[method-assign]
    _yamux.read_exactly = _header_after_data_frames  # type: ignore[attr-defined]
    _yamux.YamuxStream.read = _buffered_read  # type: ignore[method-assign]
    NoiseTransportReadWriter.__init__ = _buffered_transport_init  # type: ignore[method-assign]
    SecureSession._fill = _keep_rest  # type: ignore[method-assign]
    SecureSession._drain = _take_from_rest  # type: ignore[method-assign]
    for module in _RECORD_CALLERS:
        module.maybe_consume_signed_record = _cached_consume_signed_record  # type: ignore[attr-defined]
    _yamux.YamuxStream._auto_tune_and_send_window_update = _half_window_update  # type: ignore[method-assign]
    _pubsub.SUBSCRIPTION_CHANNEL_SIZE = max(_pubsub.SUBSCRIPTION_CHANNEL_SIZE, SUBSCRIPTION_QUEUE)
    _pubsub.RpcQueue = _DeeperRpcQueue  # type: ignore[misc]
    TrioManager._find_parent_task = _remembered_parent_task  # type: ignore[method-assign]
    GossipSub._get_peers_to_send = _flood_own_messages  # type: ignore[method-assign]
    for module in _ENVELOPE_CALLERS:
        module.env_to_send_in_RPC = _reused_envelope  # type: ignore[attr-defined]
    Pubsub._handle_dead_peer = _dead_peer_keeping_subscriptions  # type: ignore[method-assign]
    _applied = True
    logger.debug("py-libp2p workarounds applied")


@functools.wraps(ORIGINALS["Pubsub.write_msg"])
async def _serialised_write_msg(self: Pubsub, stream: Any, rpc_msg: rpc_pb2.RPC) -> bool:
    lock = getattr(stream, _LOCK_ATTR, None)
    if lock is None:
        lock = trio.Lock()
        setattr(stream, _LOCK_ATTR, lock)
    async with lock:
        return await ORIGINALS["Pubsub.write_msg"](self, stream, rpc_msg)


@functools.wraps(ORIGINALS["Pubsub.stream_handler"])
async def _guarded_stream_handler(self: Pubsub, stream: Any) -> None:
    try:
        await ORIGINALS["Pubsub.stream_handler"](self, stream)
    except Exception as exc:  # noqa: BLE001 - anything a peer can trigger must not kill the host
        peer_id = stream.muxed_conn.peer_id
        logger.warning(
            "dropping pubsub stream of peer %s after a malformed or unexpected RPC: %s: %.200s",
            peer_id, type(exc).__name__, exc,
        )
        try:
            await stream.reset()
        except Exception:  # noqa: BLE001 - the stream may already be gone
            pass
        try:
            self._handle_dead_peer(peer_id)
        except Exception:  # noqa: BLE001
            logger.debug("forgetting peer %s failed", peer_id, exc_info=True)


@functools.wraps(ORIGINALS["Pubsub.push_msg"])
async def _guarded_push_msg(self: Pubsub, msg_forwarder: ID, msg: rpc_pb2.Message) -> None:
    if msg_forwarder == self.my_id:  # our own publish: let errors reach the caller
        await ORIGINALS["Pubsub.push_msg"](self, msg_forwarder, msg)
        return
    try:
        await ORIGINALS["Pubsub.push_msg"](self, msg_forwarder, msg)
    except Exception as exc:  # noqa: BLE001
        logger.warning(
            "dropping a malformed gossip message forwarded by %s: %s: %.200s",
            msg_forwarder, type(exc).__name__, exc,
        )


def _digest_check_equivocation(self: GossipSub, msg: rpc_pb2.Message) -> bool:
    h = hashlib.sha256(msg.data)
    for topic in msg.topicIDs:
        h.update(b"\x00" + topic.encode())
    fingerprint = h.digest()
    key = msg.from_id + msg.seqno
    seen = self.equivocation_detection.get(key)
    if seen is None:
        self.equivocation_detection[key] = fingerprint  # type: ignore[assignment]
        return True
    if seen != fingerprint:
        logger.warning("equivocation detected from peer %s", ID(msg.from_id))
        if self.scorer is not None:
            self.scorer.penalize_equivocation(ID(msg.from_id), 100.0)
        return False
    return True



def _cached_consume_signed_record(msg: rpc_pb2.RPC, host: Any, peer_id: ID) -> bool:
    if not msg.HasField("senderRecord"):
        return True
    record = msg.senderRecord
    accepted = _accepted_records.setdefault(host, {})
    known = accepted.get(peer_id)
    now = time.monotonic()
    if known is not None and known[0] == record and now - known[1] < RECORD_RECHECK_S:
        return True
    ok = ORIGINALS["maybe_consume_signed_record"](msg, host, peer_id)
    if ok:
        accepted[peer_id] = (bytes(record), now)
    else:
        accepted.pop(peer_id, None)
    return ok


@functools.wraps(ORIGINALS["YamuxStream._auto_tune_and_send_window_update"])
async def _half_window_update(self: Any, *, bytes_read: int = 0) -> None:
    async with self.window_lock:
        buffered = len(self.conn.stream_buffers.get(self.stream_id, b""))
        credit = self.target_recv_window - (self.recv_window + buffered)  # consumed, not yet granted
        if credit <= 0 or credit < self._grow_threshold():
            return
        increment = self._grow_to_delta(buffered) + self._apply_autotune_epoch(buffered)
    # Never hold window_lock across the write: an inbound WINDOW_UPDATE needs it meanwhile.
    await self.send_window_update(increment, skip_lock=True)


@functools.wraps(ORIGINALS["TrioManager._find_parent_task"])
def _remembered_parent_task(self: TrioManager, trio_task: Any) -> Any:
    known = _parents.setdefault(self, weakref.WeakKeyDictionary())
    entry = known.get(trio_task, _UNKNOWN)
    if entry is None:
        return None
    parent = entry() if entry is not _UNKNOWN else None
    if parent is not None and not parent.is_done:  # a finished task has left the tree
        return parent
    # First call from this trio task (or its managed task finished): walk the tree.
    parent = ORIGINALS["TrioManager._find_parent_task"](self, trio_task)
    known[trio_task] = None if parent is None else weakref.ref(parent)
    return parent


@functools.wraps(ORIGINALS["env_to_send_in_RPC"])
def _reused_envelope(host: Any) -> tuple[bytes, bool]:
    now = time.monotonic()
    known = _envelopes.get(host)
    if known is not None and now - known[1] < ENVELOPE_RECHECK_S:
        return known[0], False
    envelope, fresh = ORIGINALS["env_to_send_in_RPC"](host)
    _envelopes[host] = (envelope, now)
    return envelope, fresh


@functools.wraps(ORIGINALS["GossipSub._get_peers_to_send"])
def _flood_own_messages(self: GossipSub, topic_ids: Any, msg_forwarder: ID, origin: ID,
                        msg_id: bytes | None = None) -> set[ID]:
    peers = set(ORIGINALS["GossipSub._get_peers_to_send"](self, topic_ids, msg_forwarder, origin, msg_id))
    pubsub = self.pubsub
    if pubsub is not None and origin == pubsub.my_id:
        for topic in topic_ids:
            peers.update(p for p in pubsub.peer_topics.get(topic, ()) if p in self.peer_protocol)
        peers.discard(origin)
    return peers


@functools.wraps(ORIGINALS["Pubsub._handle_dead_peer"])
def _dead_peer_keeping_subscriptions(self: Pubsub, peer_id: ID) -> None:
    topics = [topic for topic, peers in self.peer_topics.items() if peer_id in peers]
    ORIGINALS["Pubsub._handle_dead_peer"](self, peer_id)
    if topics and self._peer_is_connected(peer_id):  # the stream is being re-opened
        for topic in topics:
            self.peer_topics.setdefault(topic, set()).add(peer_id)
        self._peer_subscription_count[peer_id] = len(topics)


class _DeeperRpcQueue(_RpcQueue):
    """A peer's outbound gossip queue, OUTBOUND_QUEUE deep unless told otherwise (patch 11)."""

    def __init__(self, max_size: int = 0, max_message_size: int = DefaultMaxMessageSize) -> None:
        super().__init__(max_size or OUTBOUND_QUEUE, max_message_size)


def _send_window(stream: Any) -> int:
    return stream.__dict__.get(_CREDIT_ATTR, 0)


def _set_send_window(stream: Any, value: int) -> None:
    grew = value > stream.__dict__.get(_CREDIT_ATTR, 0)
    stream.__dict__[_CREDIT_ATTR] = value
    if grew and (event := stream.__dict__.pop(_CREDIT_EVENT_ATTR, None)) is not None:
        event.set()


async def _await_send_credit(stream: Any) -> None:
    """Return once ``stream`` has send credit or is closed; MuxedStreamError after the timeout."""
    with trio.move_on_after(SEND_CREDIT_TIMEOUT_S):
        while True:
            # The event exists before the check, so credit granted after it wakes us.
            event = stream.__dict__.setdefault(_CREDIT_EVENT_ATTR, trio.Event())
            if stream.send_window > 0 or stream.closed:
                return
            with trio.move_on_after(CLOSED_RECHECK_S):
                await event.wait()
    raise MuxedStreamError("Timed out waiting for window update after 5 seconds.")


@functools.wraps(ORIGINALS["YamuxStream.write"])
async def _credit_waiting_write(self: Any, data: bytes) -> None:
    view = memoryview(data).cast("B")
    total, sent = len(view), 0
    payload_max = _yamux.MAX_MESSAGE_SIZE - _yamux.HEADER_SIZE
    while sent < total:
        size = 0
        async with self.rw_lock.write_lock():
            if self.send_closed:
                raise MuxedStreamError("Stream is closed for sending")
            async with self.window_lock:
                if self.closed:
                    raise MuxedStreamError("Stream is closed")
                size = min(self.send_window, WRITE_BATCH_FRAMES * payload_max, total - sent)
                if size > 0:
                    self.send_window -= size
        if size <= 0:
            await _await_send_credit(self)
            continue
        frames = []
        for start in range(sent, sent + size, payload_max):
            piece = view[start : min(start + payload_max, sent + size)]
            header = struct.pack(_yamux.YAMUX_HEADER_FORMAT, 0, _yamux.TYPE_DATA, 0, self.stream_id, len(piece))
            frames.append(b"".join((header, piece)))
        await _write_frames(self.conn, frames)
        sent += size


async def _write_frames(conn: Any, frames: list[bytes]) -> None:
    """Yamux frames in order; over Noise, sealed one message each and sent in one socket write."""
    session = getattr(getattr(conn, "secured_conn", None), "conn", None)
    whole = all(len(frame) <= _NOISE_MAX_PLAINTEXT for frame in frames)  # else write_msg splits them
    if len(frames) == 1 or not whole or not isinstance(session, NoiseTransportReadWriter):
        for frame in frames:
            await conn._write_frame(frame)
        return
    # Yamux's connection-wide write lock is what orders Noise messages (and their nonces) on
    # the wire; holding it across the batch keeps every other writer's frames whole.
    async with conn._write_lock:
        wire = []
        for frame in frames:
            sealed = session.encrypt(frame)
            wire += (len(sealed).to_bytes(SIZE_NOISE_MESSAGE_LEN, "big"), sealed)
        await session.read_writer.read_write_closer.write(b"".join(wire))
    await trio.lowlevel.checkpoint()


async def _read_exactly(reader: Any, n: int, retry_count: int = DEFAULT_RETRY_READ_COUNT) -> bytes:
    data = await reader.read(n)
    if len(data) == n:
        return data
    buffer = bytearray(data)
    for _ in range(retry_count):
        if len(buffer) >= n:
            break
        buffer.extend(await reader.read(n - len(buffer)))
    if len(buffer) < n:
        raise IncompleteReadError(
            f"Connection closed during read operation: expected {n} bytes but received {len(buffer)} bytes",
            expected_bytes=n, received_bytes=len(buffer),
        )
    return bytes(buffer)


class _BufferedNoisePackets(NoisePacketReadWriter):
    """Noise transport messages (2-byte big-endian length + body) cut from a read buffer."""

    def __init__(self, conn: Any) -> None:
        super().__init__(conn)
        self._pending = bytearray()

    async def read_msg(self) -> bytes:
        pending = self._pending
        await self._fill(SIZE_NOISE_MESSAGE_LEN)
        end = SIZE_NOISE_MESSAGE_LEN + int.from_bytes(pending[:SIZE_NOISE_MESSAGE_LEN], "big")
        await self._fill(end)
        with memoryview(pending) as view:
            msg = bytes(view[SIZE_NOISE_MESSAGE_LEN:end])
        del pending[:end]
        return msg

    async def _fill(self, need: int) -> None:
        """Read until at least ``need`` bytes are buffered; IncompleteReadError at EOF."""
        while len(self._pending) < need:
            chunk = await self.read_write_closer.read(NOISE_RECV_BYTES)
            if not chunk:
                raise IncompleteReadError(
                    f"Connection closed during read operation: expected {need} bytes but "
                    f"received {len(self._pending)} bytes",
                    expected_bytes=need, received_bytes=len(self._pending),
                )
            self._pending.extend(chunk)


@functools.wraps(ORIGINALS["NoiseTransportReadWriter.__init__"])
def _buffered_transport_init(self: NoiseTransportReadWriter, conn: Any, noise_state: Any) -> None:
    ORIGINALS["NoiseTransportReadWriter.__init__"](self, conn, noise_state)
    self.read_writer = _BufferedNoisePackets(conn)


_REST_ATTR = "_medswarm_rest"


def _keep_rest(self: SecureSession, msg: bytes) -> None:
    setattr(self, _REST_ATTR, (msg, 0))


def _take_from_rest(self: SecureSession, n: int | None) -> bytes:
    msg, start = getattr(self, _REST_ATTR, (b"", 0))
    end = len(msg) if n is None else min(len(msg), start + n)
    if start >= end:
        return b""
    setattr(self, _REST_ATTR, (msg, end) if end < len(msg) else (b"", 0))
    return msg if start == 0 and end == len(msg) else msg[start:end]


@functools.wraps(ORIGINALS["Yamux.__init__"])
def _registering_yamux_init(self: Any, secured_conn: Any, *args: Any, **kwargs: Any) -> None:
    ORIGINALS["Yamux.__init__"](self, secured_conn, *args, **kwargs)
    try:  # weakly: the muxer holds the connection, which must not keep the muxer alive
        setattr(secured_conn, _MUXER_ATTR, weakref.ref(self))
    except (AttributeError, TypeError):  # a connection type without attributes: library path
        pass


@functools.wraps(ORIGINALS["Yamux._read_data_body"])
async def _read_body(self: Any, length: int) -> bytes:
    with trio.fail_after(_yamux._yamux_data_read_timeout()):
        return await _read_exactly(self.secured_conn, length)


async def _header_after_data_frames(reader: Any, n: int, retry_count: int = DEFAULT_RETRY_READ_COUNT) -> bytes:
    """The next frame header for ``Yamux.handle_incoming``, after handling the plain DATA frames
    before it (patch 16). Errors reading a body end the connection, as in the library."""
    ref = getattr(reader, _MUXER_ATTR, None)
    muxer = ref() if ref is not None else None
    if muxer is None or n != _yamux.HEADER_SIZE:
        return await _read_exactly(reader, n, retry_count)
    while True:
        header = await _read_exactly(reader, n, retry_count)
        if not await _took_data_frame(muxer, header):
            return header


async def _took_data_frame(muxer: Any, header: bytes) -> bool:
    """Handle ``header``'s frame if it is a plain DATA frame for an open stream; True if it was.

    The body goes to the stream's direct reader when one waits and nothing is buffered before
    it (patch 18), else to the stream's buffer, as in the library.
    """
    version, typ, flags, stream_id, length = _YAMUX_HEADER.unpack(header)
    if version or typ != _yamux.TYPE_DATA or flags or not 0 < length <= _yamux.MAX_WINDOW_SIZE:
        return False
    stream = muxer.streams.get(stream_id)
    if stream is None or stream.closed or muxer.event_shutting_down.is_set():
        return False
    body = _body_at_hand(muxer.secured_conn, length)
    if body is None:
        body = await muxer._read_data_body(length)
    # The stream may have gone while the body was read: then the bytes are dropped, as the library does.
    stream = muxer.streams.get(stream_id)
    buffer = muxer.stream_buffers.get(stream_id)
    if stream is None or buffer is None:
        return True
    stream.recv_window -= length
    if stream.recv_window < 0:
        logger.warning("Yamux stream %d: peer %s exceeded the receive window by %d bytes",
                       stream_id, muxer.peer_id, -stream.recv_window)
        stream.recv_window = 0
    sink = muxer.__dict__.get(_SINKS_ATTR, {}).get(stream_id)
    taken = sink.take(body) if sink is not None and not buffer else 0
    if taken < length:
        buffer.extend(body[taken:])
    if sink is None or taken < length or sink.due():
        if (event := muxer.stream_events.get(stream_id)) is not None:
            event.set()
    if stream.closed:
        muxer._finalize_stream_locked(stream, fully_closed=True)
    return True


def _body_at_hand(session: Any, length: int) -> memoryview | None:
    """The next ``length`` bytes of ``session`` without a copy, if its current message holds
    them all (a DATA frame is cut to fit one Noise message, patch 7); None otherwise."""
    msg, start = getattr(session, _REST_ATTR, (b"", 0))
    end = start + length
    if end > len(msg):
        return None
    setattr(session, _REST_ATTR, (msg, end) if end < len(msg) else (b"", 0))
    return memoryview(msg)[start:end]


class _Sink:
    """A buffer a direct read fills straight from a stream's DATA frames (patch 18)."""

    __slots__ = ("view", "filled", "seen", "wake_at")

    def __init__(self, view: memoryview) -> None:
        self.view = view
        self.filled = 0
        self.seen = 0  # what the reader has been told of
        self.wake_at = 0  # wake the reader once this much is filled

    def take(self, data: Any) -> int:
        """Copy what fits of ``data``; how many bytes that was."""
        n = min(len(data), len(self.view) - self.filled)
        self.view[self.filled : self.filled + n] = data[:n] if n < len(data) else data
        self.filled += n
        return n

    def due(self) -> bool:
        """Wake the reader: it is full, or holds what it wants to hear of (half a window it has
        not granted credit for, or ``report_every`` bytes it has not been told of)."""
        return self.filled >= self.wake_at or self.filled == len(self.view)


async def read_direct(stream: Any, view: memoryview, on_progress: Any = None, report_every: int = 2**20) -> int:
    """Fill ``view`` from ``stream``'s DATA frames as they arrive, one copy each from the
    decrypted Noise message (patch 18); returns how many bytes it filled.

    Less than ``len(view)`` when the stream ended, was reset or its connection closed, or at
    once 0 when ``stream`` is not a Yamux stream of a patched connection: the caller reads the
    rest through the stream's API, which raises what the library raises. ``on_progress(n)`` is
    told that the first ``n`` bytes are final, at least every ``report_every`` bytes. Credit is
    granted from this task, as a library read would (never from the connection's reading task,
    which must not block on writes). The wire is untouched: the peer sees the same frames and
    window updates.
    """
    muxed = getattr(stream, "muxed_stream", None)
    if not isinstance(muxed, _yamux.YamuxStream) or not len(view):
        return 0
    conn, sid = muxed.conn, muxed.stream_id
    if getattr(conn.secured_conn, _MUXER_ATTR, None) is None or conn.__dict__.get(_SINKS_ATTR, {}).get(sid):
        return 0
    sinks = conn.__dict__.setdefault(_SINKS_ATTR, {})
    sink = _Sink(view)
    if buffered := conn.stream_buffers.get(sid):
        del buffered[: sink.take(buffered)]
    sinks[sid] = sink
    try:
        # The buffer backs the credit granted for it: open the window to it at once (up to the
        # library's 16 MiB) rather than letting it grow from 256 KiB one round trip at a time.
        muxed.target_recv_window = max(muxed.target_recv_window, min(len(view), _yamux.MAX_WINDOW_SIZE))
        await muxed._auto_tune_and_send_window_update()
        sink.wake_at = sink.seen + min(report_every, muxed._grow_threshold())
        while True:
            if sink.seen != sink.filled:  # report, and grant credit for, what came since
                sink.seen = sink.filled
                if on_progress is not None:
                    on_progress(sink.filled)
                await muxed._auto_tune_and_send_window_update()
                if sink.seen == len(view):  # (more may have come during the await: reported next turn)
                    return sink.seen
                sink.wake_at = sink.seen + min(report_every, muxed._grow_threshold())
                continue
            if (muxed.closed or muxed.recv_closed or muxed.reset_received
                    or conn.event_shutting_down.is_set() or sid not in conn.streams):
                return sink.filled
            event = conn.stream_events.get(sid)
            if event is None:
                return sink.filled
            await event.wait()
            if conn.stream_events.get(sid) is event:
                conn.stream_events[sid] = trio.Event()
    finally:
        sinks.pop(sid, None)


@functools.wraps(ORIGINALS["YamuxStream.read"])
async def _buffered_read(self: Any, n: int | None = -1) -> bytes:
    conn = self.conn
    buffer = conn.stream_buffers.get(self.stream_id)
    if (n is None or n <= 0 or not buffer or self.closed or self.reset_received
            or conn.event_shutting_down.is_set() or self.stream_id not in conn.streams):
        return await ORIGINALS["YamuxStream.read"](self, n)
    with memoryview(buffer) as view:
        data = bytes(view[:n])
    del buffer[: len(data)]
    await self._auto_tune_and_send_window_update(bytes_read=len(data))
    return data
