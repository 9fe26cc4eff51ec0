"""Members-only mesh: an independent py-libp2p host that is not a member gets nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import multiaddr
import pytest
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.pubsub.gossipsub import GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from p2p.host import GOSSIP_PROTOCOLS, TRANSFER_PROTOCOL_ID, PeerUnavailable, SwarmHost
from tests.p2p.conftest import run_trio, running_hosts, wait_gossip_ready, wait_until
from tests.p2p.test_hosts import ann, collect


@asynccontextmanager
async def outsider() -> AsyncIterator[tuple[object, Pubsub]]:
    """A plain py-libp2p host with its own GossipSub: what a curious stranger would run."""
    listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    host = new_host(key_pair=create_new_key_pair(b"\x07" * 32), listen_addrs=[listen], muxer_preference="YAMUX")
    gossipsub = GossipSub(protocols=list(GOSSIP_PROTOCOLS), degree=6, degree_low=4, degree_high=12,
                          heartbeat_interval=1, heartbeat_initial_delay=0.1)
    pubsub = Pubsub(host, gossipsub, strict_signing=True)
    async with background_trio_service(pubsub), background_trio_service(gossipsub):
        async with host.run(listen_addrs=[listen]):
            await pubsub.wait_until_ready()
            yield host, pubsub


@asynccontextmanager
async def members(tmp, n: int) -> AsyncIterator[list[SwarmHost]]:
    async with running_hosts(tmp, n, connect=False) as hosts:
        for h in hosts:
            h.set_allowlist(o.peer_id for o in hosts)
        for i, h in enumerate(hosts):
            for other in hosts[:i]:
                await h.connect(other.listen_addrs[0])
        await wait_gossip_ready(hosts)
        yield hosts


def test_a_non_member_that_dials_a_member_receives_nothing_and_is_logged(tmp, caplog) -> None:
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with members(tmp, 2) as (member, other), outsider() as (host, pubsub):
            stranger = host.get_id().to_base58()
            subscription = await pubsub.subscribe(member.topic)
            d = member.serve(b"for members only")
            info = info_from_p2p_addr(multiaddr.Multiaddr(member.listen_addrs[0]))
            with pytest.raises(Exception):  # the member closes the link right after the handshake
                with trio.fail_after(10):
                    await host.connect(info)
            received: list[bytes] = []

            async def listen() -> None:
                async for msg in subscription:
                    received.append(msg.data)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(listen)
                for r in range(1, 4):  # the members keep gossiping for 3 s
                    await member.publish(ann(member, r))
                    await other.publish(ann(other, r))
                    await trio.sleep(1.0)
                nursery.cancel_scope.cancel()
            assert received == []
            assert len(await collect(other, 3)) == 3  # members still hear each other
            assert stranger not in member.peers() and stranger not in member.topic_peers()
            with pytest.raises(Exception):  # no blob either: there is no connection to open a stream on
                with trio.fail_after(10):
                    await host.new_stream(ID.from_base58(member.peer_id), [TRANSFER_PROTOCOL_ID])
            assert member.fetched_by(d) == frozenset()
            assert f"refused inbound connection of non-member peer {stranger}" in caplog.text

    run_trio(main)


def test_a_member_neither_dials_a_non_member_nor_keeps_one_it_stops_allowing(tmp, caplog) -> None:
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with members(tmp, 2) as (member, other), outsider() as (host, _):
            stranger_addr = f"{host.get_addrs()[0]}"
            if "/p2p/" not in stranger_addr:
                stranger_addr += f"/p2p/{host.get_id().to_base58()}"
            with pytest.raises(PeerUnavailable):
                await member.connect(stranger_addr)
            assert "refused outbound connection of non-member peer" in caplog.text
            member.set_allowlist([])  # the other node is deregistered
            await wait_until(lambda: other.peer_id not in member.peers(), 5)
            assert "no longer on the allowlist" in caplog.text

    run_trio(main)
