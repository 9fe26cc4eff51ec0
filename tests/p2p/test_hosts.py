"""Several SwarmHosts in one process: gossip, transfer, and hostile input."""

from __future__ import annotations

import logging
import os
import socket
import struct

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11

from p2p.announce import Announcement
from p2p.codec import CodecError, decode_update, digest, encode_update
from p2p.host import (
    TRANSFER_PROTOCOL_ID,
    BadResponse,
    BlobTooLarge,
    DigestMismatch,
    FetchTimeout,
    HostConfig,
    NotFound,
    NotReleased,
    PeerUnavailable,
    SwarmHost,
)
import p2p.host as host_module
from p2p.identity import peer_id_for_key_file
from tests.p2p.conftest import run_trio, running_hosts, wait_gossip_ready, wait_until

KiB, MiB = 2**10, 2**20


def ann(host: SwarmHost, round_: int = 1, *, sender: str | None = None, size: int = 1) -> Announcement:
    return Announcement(host.config.swarm, round_, "update", digest(f"{host.peer_id}{round_}".encode()),
                        size, 10, "f32", sender or host.peer_id)


async def collect(host: SwarmHost, n: int, timeout: float = 10.0) -> list[Announcement]:
    out: list[Announcement] = []
    with trio.fail_after(timeout):
        async for a in host.announcements():
            out.append(a)
            if len(out) == n:
                break
    return out


async def nothing_more(host: SwarmHost, wait: float = 1.0) -> list[Announcement]:
    out: list[Announcement] = []
    with trio.move_on_after(wait):
        async for a in host.announcements():
            out.append(a)
    return out


async def fetch_ok(fetcher: SwarmHost, server: SwarmHost, data: bytes) -> None:
    d = server.serve(data)
    with trio.fail_after(30):
        assert await fetcher.fetch(server.peer_id, d) == data


def test_every_announcement_reaches_every_peer_and_blobs_arrive_intact(tmp) -> None:
    async def main() -> None:
        async with running_hosts(tmp, 4) as hosts:
            for h in hosts:
                await h.publish(ann(h))
            for h in hosts:
                got = await collect(h, 3)
                assert {a.sender for a in got} == {o.peer_id for o in hosts} - {h.peer_id}
                assert all(a.round == 1 and a.kind == "update" for a in got)
            assert await nothing_more(hosts[0], 0.3) == []  # own announcement filtered, no duplicates
            sizes = {1 * KiB: [1, 2, 3], 4 * MiB: [1, 3], 64 * MiB: [2]}
            for size, fetchers in sizes.items():
                data = os.urandom(size)
                for i in fetchers:
                    await fetch_ok(hosts[i], hosts[0], data)
            assert sorted(hosts[0].peers()) == sorted(h.peer_id for h in hosts[1:])

    run_trio(main, timeout=90)


def test_update_round_trip_through_the_network_and_codec_rejections(tmp) -> None:
    import numpy as np

    async def main() -> None:
        async with running_hosts(tmp, 2) as (a, b):
            good = {"w": np.arange(12, dtype=np.float32).reshape(3, 4)}
            d = a.serve(encode_update(good))
            out = decode_update(await b.fetch(a.peer_id, d), expected={"w": (3, 4)})
            assert np.array_equal(out["w"], good["w"])
            with pytest.raises(CodecError, match="shape"):
                decode_update(await b.fetch(a.peer_id, d), expected={"w": (4, 3)})
            nan = encode_update({"w": np.zeros(4, np.float32)})
            nan = nan[:-4] + struct.pack("<f", float("nan"))  # a peer that poisons its bytes
            with pytest.raises(CodecError, match="NaN"):
                decode_update(await b.fetch(a.peer_id, a.serve(nan)))

    run_trio(main)


def test_not_found_oversize_and_unserve(tmp) -> None:
    async def main() -> None:
        async with running_hosts(tmp, 2) as (a, b):
            with pytest.raises(NotFound):
                await b.fetch(a.peer_id, digest(b"never served"))
            data = os.urandom(2 * MiB)
            d = a.serve(data)
            with pytest.raises(BlobTooLarge, match="limit is 1048576"):
                await b.fetch(a.peer_id, d, max_bytes=1 * MiB)
            assert a.fetched_by(d) == frozenset()  # an aborted fetch does not count
            assert a.asked_by(d) == {b.peer_id}  # ... but b has the digest and asks again on its own
            assert a.asked_by(digest(b"never served")) == frozenset()
            assert await b.fetch(a.peer_id, d) == data
            assert a.fetched_by(d) == {b.peer_id}
            a.unserve(d)
            assert a.fetched_by(d) == frozenset() and a.asked_by(d) == frozenset()
            with pytest.raises(NotFound):
                await b.fetch(a.peer_id, d)
            await fetch_ok(b, a, b"still serving")

    run_trio(main)


def test_a_release_rule_holds_a_blob_back_per_peer_until_it_says_yes(tmp) -> None:
    async def main() -> None:
        async with running_hosts(tmp, 3) as (a, b, c):
            asked: list[str] = []
            let_in: set[str] = set()

            async def release(peer: str) -> bool:
                asked.append(peer)
                return peer in let_in

            async def broken(peer: str) -> bool:
                raise RuntimeError("chain away")

            d = a.serve(b"round 3 update", release=release)
            with pytest.raises(NotReleased):
                await b.fetch(a.peer_id, d)
            assert a.fetched_by(d) == frozenset() and a.asked_by(d) == {b.peer_id}  # refused, but it asked
            let_in.add(b.peer_id)
            assert await b.fetch(a.peer_id, d) == b"round 3 update"
            with pytest.raises(NotReleased):  # c is still held back
                await c.fetch(a.peer_id, d)
            assert asked == [b.peer_id, b.peer_id, c.peer_id]
            assert a.fetched_by(d) == {b.peer_id} and a.asked_by(d) == {b.peer_id, c.peer_id}
            a.serve(b"round 3 update", release=broken)  # a rule that fails releases nothing
            with pytest.raises(NotReleased):
                await b.fetch(a.peer_id, d)
            a.serve(b"round 3 update")  # served again without a rule: to every member
            assert await c.fetch(a.peer_id, d) == b"round 3 update"

    run_trio(main)


# --- hostile servers ---------------------------------------------------------------

def _liar(kind: str):
    async def handler(stream) -> None:
        await stream.read(33)
        if kind == "mismatch":
            body = b"not what you asked for"
            await stream.write(struct.pack("<BQ", 0, len(body)) + body)
        elif kind == "truncated":
            await stream.write(struct.pack("<BQ", 0, 1 * MiB) + b"x" * 1000)
        elif kind == "huge":
            await stream.write(struct.pack("<BQ", 0, 2**62))
        elif kind == "status":
            await stream.write(struct.pack("<BQ", 9, 0))
        elif kind == "stall":
            await stream.write(struct.pack("<BQ", 0, 1 * MiB) + b"x" * 100)
            await trio.sleep_forever()
        await stream.close()

    return handler


@pytest.mark.parametrize(
    ("kind", "error", "message"),
    [
        ("mismatch", DigestMismatch, "hashing to 0x"),
        ("truncated", BadResponse, "truncated blob"),
        ("huge", BlobTooLarge, "announced 4611686018427387904 bytes"),
        ("status", BadResponse, "unknown status 9"),
        ("stall", FetchTimeout, "longer than 1.0 s"),
    ],
)
def test_lying_or_stalling_server_gives_a_clear_error(tmp, kind, error, message) -> None:
    async def main() -> None:
        async with running_hosts(tmp, 3, fetch_timeout=1.0) as (liar, fetcher, honest):
            liar.libp2p_host.set_stream_handler(TRANSFER_PROTOCOL_ID, _liar(kind))
            with pytest.raises(error, match=message):
                await fetcher.fetch(liar.peer_id, digest(b"anything"))
            if kind in ("mismatch", "truncated", "status"):  # a peer that lies gets dropped
                await wait_until(lambda: liar.peer_id not in fetcher.peers(), 5)
            await fetch_ok(fetcher, honest, os.urandom(64 * KiB))  # and the fetcher works on

    run_trio(main)


# --- hostile clients ---------------------------------------------------------------

def test_garbage_on_the_transfer_protocol_does_not_hurt_the_server(tmp) -> None:
    async def main() -> None:
        async with running_hosts(tmp, 3) as (victim, attacker, honest):
            pid = ID.from_base58(victim.peer_id)
            raw = attacker.libp2p_host
            for payload in (os.urandom(33), os.urandom(5000), b"\x01" + b"\x00" * 10, b""):
                s = await raw.new_stream(pid, [TRANSFER_PROTOCOL_ID])
                if payload:
                    await s.write(payload)
                await s.close()
                with trio.move_on_after(2):
                    try:
                        await s.read(100)
                    except Exception:  # noqa: BLE001 - a reset is a fine answer to garbage
                        pass
            stalled = await raw.new_stream(pid, [TRANSFER_PROTOCOL_ID])
            await stalled.write(b"\x01\x02")  # half a request, then silence
            await fetch_ok(honest, victim, os.urandom(1 * MiB))  # served meanwhile
            await stalled.reset()
            assert victim._server.rejected >= 3

    run_trio(main)


def test_malformed_gossip_rpc_drops_that_stream_not_the_host(tmp, caplog) -> None:
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with running_hosts(tmp, 3) as (victim, attacker, honest):
            s = await attacker.libp2p_host.new_stream(ID.from_base58(victim.peer_id), [PROTOCOL_ID_V11])
            await s.write(b"\x04\x0f\x0f\x0f\x0f")  # varint length 4, then an invalid wire type
            await wait_until(lambda: "malformed or unexpected RPC" in caplog.text, 5)
            await honest.publish(ann(honest, 7))
            got = await collect(victim, 1)
            assert got[0].sender == honest.peer_id and got[0].round == 7
            await fetch_ok(honest, victim, os.urandom(256 * KiB))

    run_trio(main)


def test_validator_rejects_spoofed_oversize_and_unparsable_gossip(tmp) -> None:
    async def main() -> None:
        async with running_hosts(tmp, 3) as (victim, attacker, other):
            ps = attacker._pubsub
            ps.remove_topic_validator(attacker.topic)  # a hostile peer does not check its own output
            spoof = ann(attacker, 1, sender=other.peer_id).to_bytes()
            for data in (spoof, b"x" * 5000, b"{not json", ann(attacker, 2).to_bytes().replace(b"medswarm", b"otherswarm")):
                await ps.publish(victim.topic, data)
            await attacker.publish(ann(attacker, 3))  # the only valid one
            got = await collect(victim, 1)
            assert (got[0].sender, got[0].round) == (attacker.peer_id, 3)
            assert await nothing_more(victim, 0.5) == []
            assert victim.rejected_announcements >= 4
            with pytest.raises(Exception, match="is not this host"):
                await attacker.publish(ann(attacker, 4, sender=other.peer_id))

    run_trio(main)


def test_unknown_peer_is_disconnected_ignored_and_logged(tmp, caplog) -> None:
    caplog.set_level(logging.WARNING)

    async def main() -> None:
        async with running_hosts(tmp, 3) as (victim, stranger, member):
            victim.set_allowlist([member.peer_id])
            await wait_until(lambda: stranger.peer_id not in victim.peers(), 5)
            await stranger.publish(ann(stranger, 1))
            await member.publish(ann(member, 2))
            got = await collect(victim, 1)
            assert got[0].sender == member.peer_id
            assert await nothing_more(victim, 0.5) == []
            d = victim.serve(b"for members only")
            with pytest.raises(PeerUnavailable):
                await stranger.fetch(victim.peer_id, d)
            assert await member.fetch(victim.peer_id, d) == b"for members only"
            with pytest.raises(PeerUnavailable, match="allowlist"):
                await victim.fetch(stranger.peer_id, d)
            assert "no longer on the allowlist" in caplog.text
            assert "refused inbound connection of non-member" in caplog.text
            victim.set_allowlist(None)
            await stranger.connect(victim.listen_addrs[0])
            await wait_until(lambda: stranger.peer_id in victim.topic_peers(), 10)
            await stranger.publish(ann(stranger, 3))
            assert (await collect(victim, 1))[0].sender == stranger.peer_id

    run_trio(main)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_late_peer_is_found_through_bootstrap_retries(tmp) -> None:
    async def main() -> None:
        port = _free_port()
        late_key = tmp / "late.key"
        late_addr = f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_for_key_file(late_key)}"
        early = SwarmHost(HostConfig(key_file=tmp / "early.key", bootstrap=(late_addr,)), name="early")
        late = SwarmHost(HostConfig(key_file=late_key, listen=f"/ip4/127.0.0.1/tcp/{port}"), name="late")
        async with early.run():
            await trio.sleep(2.0)  # several failed dials: the library's negative cache is now set
            assert early.peers() == []
            async with late.run():
                await wait_until(lambda: late.peer_id in early.peers(), 10)
                await wait_gossip_ready([late, early])
                await early.publish(ann(early))
                assert (await collect(late, 1))[0].sender == early.peer_id

    run_trio(main)


def test_connect_to_nobody_is_a_clear_error(tmp) -> None:
    async def main() -> None:
        async with running_hosts(tmp, 1, connect=False) as (h,):
            nobody = f"/ip4/127.0.0.1/tcp/{_free_port()}/p2p/{peer_id_for_key_file(tmp / 'x.key')}"
            with pytest.raises(PeerUnavailable, match="cannot connect"):
                await h.connect(nobody)
            with pytest.raises(PeerUnavailable):
                await h.fetch(peer_id_for_key_file(tmp / "x.key"), digest(b""))
            with pytest.raises(ValueError):
                await h.connect("/ip4/127.0.0.1/tcp/1")

    run_trio(main)


def _multicast_or_skip() -> None:
    """mDNS needs the 224.0.0.251 group; some sandboxes have no multicast at all."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                         socket.inet_aton("224.0.0.251") + socket.inet_aton("0.0.0.0"))
        except OSError as exc:
            pytest.skip(f"no IPv4 multicast here ({exc}): mDNS cannot work")


def test_mdns_finds_a_peer_with_no_bootstrap_list(tmp) -> None:
    _multicast_or_skip()

    async def main() -> None:
        hosts = [SwarmHost(HostConfig(key_file=tmp / f"{n}.key", mdns=True), name=n) for n in ("a", "b")]
        async with hosts[0].run(), hosts[1].run():
            a, b = hosts
            await wait_until(lambda: b.peer_id in a.peers() or a.peer_id in b.peers(), 30, "mDNS discovery")
            await wait_gossip_ready([a, b], 20)
            await a.publish(ann(a))
            assert (await collect(b, 1))[0].sender == a.peer_id

    run_trio(main, timeout=90)


def test_a_connected_peer_left_without_a_gossip_stream_gets_one(tmp, monkeypatch: pytest.MonkeyPatch) -> None:
    async def streams_after_a_failed_registration() -> tuple[list[str], int]:
        async with running_hosts(tmp, 2, connect=False) as (a, b):
            router, add_peer = a._pubsub.router, a._pubsub.router.add_peer

            def fails_once(peer_id, protocol) -> None:
                router.add_peer = add_peer
                raise RuntimeError("registration failed")  # py-libp2p gives up on such a peer

            router.add_peer = fails_once
            await a.connect(b.listen_addrs[0])
            await wait_until(lambda: a.peer_id in b.topic_peers(), 10)
            await trio.sleep(4.5)  # four checks of 1 s
            assert b.peer_id in a.peers() and b.peer_id in a.topic_peers()
            await a.publish(ann(a))
            return a.pubsub_peers(), len(await nothing_more(b, 1.5))

    monkeypatch.setattr(host_module, "GOSSIP_STREAM_CHECK_S", 1.0)
    with monkeypatch.context() as never:
        never.setattr(host_module, "GOSSIP_STREAM_CHECK_S", 3600.0)
        assert run_trio(streams_after_a_failed_registration) == ([], 0)  # connected, unreachable by gossip
    streams, heard = run_trio(streams_after_a_failed_registration)
    assert len(streams) == 1 and heard == 1

