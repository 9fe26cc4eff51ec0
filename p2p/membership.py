"""Members-only mesh: refuse a non-member's connection and keep it out of gossip.

The allowlist (the peer ids registered on the ledger) used to filter only what came *in*;
a non-member could still dial a member, subscribe to its topic, join its mesh and receive
every announcement. :func:`guard` closes that at two layers of one py-libp2p host:

1. **Connection time.** The host's transport upgrader is wrapped so that, as soon as the
   Noise handshake has authenticated the remote peer id, a non-member's connection is
   closed and the upgrade fails: no muxer is negotiated, so the peer can open no stream
   (pubsub, transfer or any other) and is sent nothing. The same check runs for our own
   dials, so a member never connects out to a non-member either.
2. **Pubsub.** In case a connection slips past (allowlist tightened while connected), the
   Pubsub instance treats every non-member as blacklisted (no outbound pubsub stream, so
   no mesh, fanout or gossip to it; its messages are rejected), drops its subscriptions
   and resets its inbound pubsub streams.

Only the given host's instances are touched; other hosts in the process (tests run
independent non-member hosts next to members) keep the library's behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from libp2p.peer.id import ID
from libp2p.pubsub.pb import rpc_pb2
from libp2p.security.exceptions import HandshakeFailure
from libp2p.transport.exceptions import SecurityUpgradeFailure

from p2p.identity import base58

__all__ = ["NotAMember", "guard"]

IsMember = Callable[[str], bool]


class NotAMember(SecurityUpgradeFailure):
    """The authenticated remote peer is not a member of the swarm."""


def guard(host: Any, pubsub: Any, is_member: IsMember, log: logging.LoggerAdapter) -> None:
    """Make ``host`` and its ``pubsub`` refuse every peer for which ``is_member`` is false."""
    _guard_connections(host.get_network().upgrader, is_member, log)
    _guard_pubsub(host, pubsub, is_member, log)


def _guard_connections(upgrader: Any, is_member: IsMember, log: logging.LoggerAdapter) -> None:
    upgrade_security = upgrader.upgrade_security

    async def members_only(raw_conn: Any, is_initiator: bool, peer_id: ID | None = None) -> Any:
        secured = await upgrade_security(raw_conn, is_initiator, peer_id)
        remote = secured.get_remote_peer()
        if is_member(remote.to_base58()):
            return secured
        direction = "outbound" if is_initiator else "inbound"
        log.warning("refused %s connection of non-member peer %s (not registered on the ledger)",
                    direction, remote)
        try:
            await secured.close()
        except Exception:  # noqa: BLE001 - the socket may already be gone
            pass
        raise NotAMember(f"peer {remote} is not a member") from HandshakeFailure("not a member")

    upgrader.upgrade_security = members_only


def _guard_pubsub(host: Any, pubsub: Any, is_member: IsMember, log: logging.LoggerAdapter) -> None:
    listed = pubsub.is_peer_blacklisted
    pubsub.is_peer_blacklisted = lambda peer_id: listed(peer_id) or not is_member(base58(peer_id))

    handle_subscription = pubsub.handle_subscription

    def members_subscriptions(origin_id: ID, sub_message: rpc_pb2.RPC.SubOpts) -> None:
        if is_member(origin_id.to_base58()):
            handle_subscription(origin_id, sub_message)
        else:
            log.warning("dropped a subscription to %r from non-member peer %s", sub_message.topicid, origin_id)

    pubsub.handle_subscription = members_subscriptions

    stream_handler = pubsub.stream_handler

    async def members_streams(stream: Any) -> None:
        peer_id = stream.muxed_conn.peer_id
        if is_member(peer_id.to_base58()):
            await stream_handler(stream)
            return
        log.warning("reset a pubsub stream from non-member peer %s", peer_id)
        try:
            await stream.reset()
        except Exception:  # noqa: BLE001 - the stream may already be gone
            pass

    for protocol in pubsub.protocols:
        host.set_stream_handler(protocol, members_streams)
