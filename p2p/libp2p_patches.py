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
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
import weakref
from typing import Any

import trio
from libp2p.peer.id import ID
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH as _NOISE_MAX_PLAINTEXT
from libp2p.stream_muxer.yamux import yamux as _yamux
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub import floodsub as _floodsub
from libp2p.pubsub import gossipsub as _gossipsub
from libp2p.pubsub import pubsub as _pubsub
from libp2p.pubsub.pubsub import Pubsub

__all__ = ["ORIGINALS", "apply", "applied"]

logger = logging.getLogger(__name__)

ORIGINALS: dict[str, Any] = {
    "Pubsub.write_msg": Pubsub.write_msg,
    "Pubsub.stream_handler": Pubsub.stream_handler,
    "Pubsub.push_msg": Pubsub.push_msg,
    "GossipSub._check_equivocation": GossipSub._check_equivocation,
    "yamux._yamux_release_on_read": _yamux._yamux_release_on_read,
    "maybe_consume_signed_record": _pubsub.maybe_consume_signed_record,
    "yamux.MAX_MESSAGE_SIZE": _yamux.MAX_MESSAGE_SIZE,
}
#: Modules that call ``maybe_consume_signed_record`` through their own global name.
_RECORD_CALLERS = (_pubsub, _gossipsub, _floodsub)
#: How long identical record bytes from a peer are trusted without a new signature check
#: (the peerstore's copy of the record is refreshed then; its TTL is 2 hours).
RECORD_RECHECK_S = 600.0
_accepted_records: "weakref.WeakKeyDictionary[Any, dict[ID, tuple[bytes, float]]]" = weakref.WeakKeyDictionary()
_LOCK_ATTR = "_medswarm_write_lock"
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
    for module in _RECORD_CALLERS:
        module.maybe_consume_signed_record = _cached_consume_signed_record  # type: ignore[attr-defined]
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
