"""Each workaround in p2p.libp2p_patches, with the failure it prevents shown first."""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from types import SimpleNamespace

import pytest
import trio
import trio.testing
from google.protobuf.message import DecodeError
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.peer.id import ID
from libp2p.peer.peerstore import env_to_send_in_RPC
from libp2p.pubsub import gossipsub as gossipsub_module
from libp2p.pubsub import pubsub as libp2p_pubsub
from libp2p.pubsub import utils as pubsub_utils
from libp2p.security.noise.io import MAX_PLAINTEXT_LENGTH as NOISE_MAX
from libp2p.security.noise.io import NoiseTransportReadWriter
from libp2p.pubsub.gossipsub import PROTOCOL_ID_V11, GossipSub
from libp2p.pubsub.pb import rpc_pb2
from libp2p.pubsub.pubsub import Pubsub
from libp2p.stream_muxer.yamux import yamux
from libp2p.utils.varint import encode_varint_prefixed

from p2p import libp2p_patches
from p2p.libp2p_patches import ORIGINALS
from tests.p2p.conftest import run_trio, running_hosts, wait_until
from tests.p2p.test_hosts import ann, collect, fetch_ok, nothing_more

libp2p_patches.apply()


@contextlib.contextmanager
def unpatched(cls: type, name: str):
    patched = getattr(cls, name)
    setattr(cls, name, ORIGINALS[f"{cls.__name__}.{name}"])
    try:
        yield
    finally:
        setattr(cls, name, patched)


class FrameStream:
    """Writes in 64 KiB pieces with a scheduling point between them, like Yamux."""

    def __init__(self) -> None:
        self.wire = bytearray()
        self.muxed_conn = SimpleNamespace(peer_id=ID(b"\x00\x01x"))

    async def write(self, data: bytes) -> None:
        for i in range(0, len(data), 65536):
            self.wire += data[i : i + 65536]
            await trio.sleep(0)


def _parse_all(wire: bytes) -> list[rpc_pb2.RPC]:
    out, pos = [], 0
    while pos < len(wire):
        shift = size = 0
        while True:
            b = wire[pos]
            pos += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        rpc = rpc_pb2.RPC()
        rpc.ParseFromString(bytes(wire[pos : pos + size]))
        out.append(rpc)
        pos += size
    return out


def _big_rpc(fill: bytes) -> rpc_pb2.RPC:
    return rpc_pb2.RPC(publish=[rpc_pb2.Message(data=fill * 200_000, topicIDs=["t"])])


async def _two_concurrent_writes(write_msg) -> bytes:
    stream, me = FrameStream(), SimpleNamespace(_handle_dead_peer=lambda _p: None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_msg, me, stream, _big_rpc(b"a"))
        nursery.start_soon(write_msg, me, stream, _big_rpc(b"b"))
    return bytes(stream.wire)


def test_write_msg_lock_prevents_interleaved_rpcs() -> None:
    wire = trio.run(_two_concurrent_writes, ORIGINALS["Pubsub.write_msg"])
    with pytest.raises((DecodeError, IndexError)):  # the library's failure: garbled RPCs
        _parse_all(wire)
    rpcs = _parse_all(trio.run(_two_concurrent_writes, Pubsub.write_msg))
    assert sorted(r.publish[0].data[:1] for r in rpcs) == [b"a", b"b"]
    assert all(len(r.publish[0].data) == 200_000 for r in rpcs)


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):
        for e in exc.exceptions:
            yield from _leaves(e)
    else:
        yield exc


GARBAGE_RPC = b"\x04\x0f\x0f\x0f\x0f"  # varint length 4, then an invalid protobuf wire type


def test_malformed_rpc_kills_an_unpatched_host_but_not_a_patched_one(tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING)

    async def attack(victim, attacker) -> None:
        s = await attacker.libp2p_host.new_stream(ID.from_base58(victim.peer_id), [PROTOCOL_ID_V11])
        await s.write(GARBAGE_RPC)

    async def unpatched_victim() -> None:
        with unpatched(Pubsub, "stream_handler"):
            async with running_hosts(tmp_path / "a", 2) as (victim, attacker):
                await attack(victim, attacker)
                await trio.sleep(5)  # the host dies long before this

    (tmp_path / "a").mkdir()
    with pytest.raises(BaseExceptionGroup) as info:
        run_trio(unpatched_victim, timeout=30)
    assert any(isinstance(e, DecodeError) for e in _leaves(info.value))

    async def patched_victim() -> None:
        async with running_hosts(tmp_path / "b", 3) as (victim, attacker, honest):
            await attack(victim, attacker)
            await wait_until(lambda: "malformed or unexpected RPC" in caplog.text, 5)
            await honest.publish(ann(honest))
            assert (await collect(victim, 1))[0].sender == honest.peer_id
            await fetch_ok(honest, victim, os.urandom(1000))

    (tmp_path / "b").mkdir()
    run_trio(patched_victim)


def _bad_key_message(topic: str) -> rpc_pb2.Message:
    return rpc_pb2.Message(data=b"{}", topicIDs=[topic], from_id=b"\x00\x01junk", seqno=b"\x00" * 8,
                           key=b"not a key", signature=b"sig")


def test_push_msg_guard_drops_a_message_that_makes_the_library_raise(tmp_path) -> None:
    async def main() -> None:
        async with running_hosts(tmp_path, 3) as (victim, attacker, honest):
            pubsub, forwarder = victim._pubsub, ID.from_base58(attacker.peer_id)
            with pytest.raises(Exception):  # the library's failure: would cancel the Pubsub service
                await ORIGINALS["Pubsub.push_msg"](pubsub, forwarder, _bad_key_message(victim.topic))
            await pubsub.push_msg(forwarder, _bad_key_message(victim.topic))  # patched: dropped
            # and over the wire, as a hostile peer would send it:
            s = await attacker.libp2p_host.new_stream(ID.from_base58(victim.peer_id), [PROTOCOL_ID_V11])
            rpc = rpc_pb2.RPC(publish=[_bad_key_message(victim.topic)])
            await s.write(encode_varint_prefixed(rpc.SerializeToString()))
            await honest.publish(ann(honest))
            assert (await collect(victim, 1))[0].sender == honest.peer_id

    run_trio(main)


def test_equivocation_cache_keeps_digests_not_messages() -> None:
    gs = GossipSub(protocols=[PROTOCOL_ID_V11], degree=6, degree_low=4, degree_high=12)
    big = rpc_pb2.Message(data=b"x" * 100_000, topicIDs=["t"], from_id=b"\x00\x01a", seqno=b"\x01")
    ORIGINALS["GossipSub._check_equivocation"](gs, big)
    assert gs.equivocation_detection[big.from_id + big.seqno] is big  # the library keeps it all
    gs.equivocation_detection.clear()
    assert gs._check_equivocation(big)
    stored = gs.equivocation_detection[big.from_id + big.seqno]
    assert isinstance(stored, bytes) and len(stored) == 32
    assert gs._check_equivocation(big)  # same content again: fine
    forged = rpc_pb2.Message(data=b"y", topicIDs=["t"], from_id=big.from_id, seqno=big.seqno)
    assert not gs._check_equivocation(forged)


def test_yamux_window_updates_are_batched() -> None:
    if "PY_YAMUX_RELEASE_ON_READ" in os.environ:
        pytest.skip("user configured PY_YAMUX_RELEASE_ON_READ explicitly")
    assert ORIGINALS["yamux._yamux_release_on_read"]() is True  # library default: one update per read
    assert yamux._yamux_release_on_read() is False


def _record_rpc(host) -> rpc_pb2.RPC:
    envelope, _ = env_to_send_in_RPC(host)
    return rpc_pb2.RPC(senderRecord=envelope)


def test_a_peers_unchanged_signed_record_is_checked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    sender, receiver = (new_host(key_pair=create_new_key_pair(bytes([i]) * 32)) for i in (1, 2))
    sender_id = sender.get_id()
    checks = []
    real = pubsub_utils.consume_envelope
    monkeypatch.setattr(pubsub_utils, "consume_envelope", lambda *a: checks.append(1) or real(*a))
    rpc = _record_rpc(sender)

    for _ in range(20):  # the library: one Ed25519 check per RPC
        assert ORIGINALS["maybe_consume_signed_record"](rpc, receiver, sender_id)
    assert len(checks) == 20

    checks.clear()
    consume = libp2p_pubsub.maybe_consume_signed_record
    assert consume is gossipsub_module.maybe_consume_signed_record  # both callers patched
    assert all(consume(rpc, receiver, sender_id) for _ in range(20))
    assert len(checks) == 1

    tampered = bytearray(rpc.senderRecord)
    tampered[-1] ^= 1
    bad = rpc_pb2.RPC(senderRecord=bytes(tampered))
    assert not consume(bad, receiver, sender_id) and not consume(bad, receiver, sender_id)
    assert len(checks) == 3  # a record that differs is checked in full, every time
    assert not consume(rpc, receiver, ID(b"\x00\x01z"))  # someone else's record
    assert consume(rpc, receiver, sender_id) and len(checks) == 5  # re-checked after the failure


def test_a_yamux_frame_fits_one_noise_message(tmp, monkeypatch: pytest.MonkeyPatch) -> None:
    sealed: list[int] = []
    encrypt = NoiseTransportReadWriter.encrypt
    monkeypatch.setattr(NoiseTransportReadWriter, "encrypt",
                        lambda self, data: sealed.append(len(data)) or encrypt(self, data))
    blob = os.urandom(2**20)

    async def noise_message_sizes_for_one_blob() -> list[int]:
        async with running_hosts(tmp, 2) as (fetcher, server):
            sealed.clear()
            await fetch_ok(fetcher, server, blob)
            return list(sealed)

    tail = ORIGINALS["yamux.MAX_MESSAGE_SIZE"] - NOISE_MAX  # what does not fit of a 64 KiB frame

    def split_frames(sizes: list[int]) -> int:  # each leaves a tail-sized second message
        return sizes.count(tail)

    with monkeypatch.context() as library_default:
        library_default.setattr(yamux, "MAX_MESSAGE_SIZE", ORIGINALS["yamux.MAX_MESSAGE_SIZE"])
        unpatched = run_trio(noise_message_sizes_for_one_blob)
    patched = run_trio(noise_message_sizes_for_one_blob)
    assert split_frames(unpatched) >= 15  # nearly every 64 KiB frame went out as two messages
    assert split_frames(patched) == 0
    assert sum(1 for n in patched if n == NOISE_MAX) == len(blob) // (NOISE_MAX - yamux.HEADER_SIZE)


class _FrameSink:
    """Stands in for a Yamux connection: records the frames a stream writes."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    async def _write_frame(self, data: bytes) -> None:
        self.frames.append(bytes(data))


def test_a_writer_waiting_for_send_credit_wakes_when_the_window_opens() -> None:
    async def frames_written_once_credit_arrives(write) -> list[bytes]:
        sink = _FrameSink()
        stream = yamux.YamuxStream(1, sink, True)
        stream.send_window = 0
        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, stream, b"x" * 100)
            await trio.testing.wait_all_tasks_blocked()
            stream.send_window += 100  # what handle_incoming does with a WINDOW_UPDATE
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()
        return sink.frames

    # The clock stands still, so a writer that polls on a timer never sees the credit.
    library = trio.run(frames_written_once_credit_arrives, ORIGINALS["YamuxStream.write"], clock=trio.testing.MockClock())
    assert library == []
    frames = trio.run(frames_written_once_credit_arrives, yamux.YamuxStream.write, clock=trio.testing.MockClock())
    assert len(frames) == 1 and frames[0][yamux.HEADER_SIZE:] == b"x" * 100


def test_a_writer_without_credit_gives_up_after_the_timeout() -> None:
    async def main() -> None:
        stream = yamux.YamuxStream(1, _FrameSink(), True)
        stream.send_window = 0
        with pytest.raises(yamux.MuxedStreamError, match="window update"):
            await stream.write(b"x")

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


class _Pieces:
    """A reader that returns queued pieces (b"" once they run out: the peer closed)."""

    def __init__(self, *pieces: bytes) -> None:
        self.pieces = list(pieces)
        self.reads = 0

    async def read(self, n: int | None = None) -> bytes:
        self.reads += 1
        if not self.pieces:
            return b""
        piece = self.pieces.pop(0)
        if n is not None and len(piece) > n:
            piece, rest = piece[:n], piece[n:]
            self.pieces.insert(0, rest)
        return piece


def test_read_exactly_returns_a_complete_read_as_is_and_assembles_partial_ones() -> None:
    async def main() -> None:
        whole = os.urandom(1000)
        assert await yamux.read_exactly(_Pieces(whole), 1000) is whole  # no copy
        assert await yamux.read_exactly(_Pieces(whole[:10], whole[10:600], whole[600:]), 1000) == whole
        with pytest.raises(yamux.IncompleteReadError) as info:
            await yamux.read_exactly(_Pieces(whole[:300]), 1000)
        assert (info.value.expected_bytes, info.value.received_bytes) == (1000, 300)

    trio.run(main)


def _noise_packet(body: bytes) -> bytes:
    return len(body).to_bytes(2, "big") + body


def test_noise_transport_reads_several_messages_a_socket_read() -> None:
    bodies = [os.urandom(n) for n in (0, 70, 65535, 5)]
    wire = b"".join(map(_noise_packet, bodies))

    async def main() -> None:
        conn = _Pieces(wire[:40_000], wire[40_000:])
        reader = NoiseTransportReadWriter(conn, noise_state=None).read_writer
        assert [await reader.read_msg() for _ in bodies] == bodies
        assert conn.reads == 2  # the library: two reads a message, eight here
        for cut in (1, 50):  # the peer closes inside the length prefix / inside the body
            partial = _Pieces(_noise_packet(b"y" * 100)[:cut])
            with pytest.raises(yamux.IncompleteReadError) as info:
                await NoiseTransportReadWriter(partial, noise_state=None).read_writer.read_msg()
            assert info.value.received_bytes == cut
        with pytest.raises(yamux.IncompleteReadError) as clean:
            await NoiseTransportReadWriter(_Pieces(), noise_state=None).read_writer.read_msg()
        assert clean.value.is_clean_close

    trio.run(main)


def test_the_noise_handshake_reader_does_not_read_ahead() -> None:
    # Bytes after the handshake's last message belong to the transport reader built next.
    from libp2p.security.noise.io import NoiseHandshakeReadWriter

    async def main() -> None:
        conn = _Pieces(_noise_packet(b"hello") + b"transport bytes")
        reader = NoiseHandshakeReadWriter(conn, noise_state=None).read_writer
        assert await reader.read_msg() == b"hello"
        assert conn.pieces == [b"transport bytes"]

    trio.run(main)


class _RawSink:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    async def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))


class _Sealer:
    """Stands in for the Noise cipher state: any deterministic, length-changing transform will do."""

    def encrypt(self, data: bytes) -> bytes:
        return bytes(b ^ 0x5A for b in data) + b"tag"


def test_a_bulk_write_is_sealed_frame_by_frame_and_sent_in_one_socket_write() -> None:
    data = os.urandom(3 * 65507 + 100)

    async def wire(batched: bool) -> list[bytes]:
        raw = _RawSink()
        noise = NoiseTransportReadWriter(raw, noise_state=_Sealer())
        session = SimpleNamespace(conn=noise, write=noise.write_msg)
        conn = SimpleNamespace(secured_conn=session, _write_lock=trio.Lock())

        async def one_by_one(frame: bytes) -> None:  # the library's path: one Noise write a frame
            await session.write(frame)

        conn._write_frame = one_by_one
        stream = yamux.YamuxStream(3, conn, True)
        stream.send_window = len(data) if batched else 0
        if not batched:
            stream.send_window = 65507  # one frame of credit at a time: no batching possible
            async with trio.open_nursery() as nursery:
                nursery.start_soon(stream.write, data)
                while len(raw.writes) < 4:
                    await trio.testing.wait_all_tasks_blocked()
                    stream.send_window += 65507
        else:
            await stream.write(data)
        return raw.writes

    single = trio.run(wire, False)
    batched = trio.run(wire, True)
    assert len(single) == 4 and len(batched) == 1
    assert batched[0] == b"".join(single)  # the same bytes on the wire, in the same order


def test_a_secure_session_hands_out_the_rest_of_a_message_without_copying_it_twice() -> None:
    from libp2p.security.secure_session import SecureSession

    session = SecureSession.__new__(SecureSession)
    body = os.urandom(1000)
    session._fill(body)
    assert session._drain(10) == body[:10]
    assert session._drain(None) == body[10:]
    assert session._drain(5) == b""
    session._fill(body)
    assert session._drain(5000) is body  # a whole message goes out as it came in


def test_small_gossip_reads_send_no_window_update_each(tmp, monkeypatch: pytest.MonkeyPatch) -> None:
    updates: list[int] = []
    send = yamux.YamuxStream.send_window_update

    async def counted(self, increment: int, skip_lock: bool = False) -> None:
        updates.append(increment)
        await send(self, increment, skip_lock)

    monkeypatch.setattr(yamux.YamuxStream, "send_window_update", counted)

    async def window_updates_for_gossip(count: int) -> int:
        async with running_hosts(tmp, 2) as (a, b):
            await trio.sleep(0.5)  # the subscription and mesh set-up traffic is over
            updates.clear()
            for r in range(1, count + 1):
                await a.publish(ann(a, r))
            assert len(await collect(b, count, timeout=30)) == count
            await trio.sleep(0.2)
            return len(updates)

    with monkeypatch.context() as library:
        library.setattr(yamux.YamuxStream, "_auto_tune_and_send_window_update",
                        ORIGINALS["YamuxStream._auto_tune_and_send_window_update"])
        unpatched = run_trio(window_updates_for_gossip, 60)
    assert unpatched >= 25  # about one frame back for every second announcement read
    assert run_trio(window_updates_for_gossip, 60) == 0  # 60 announcements are far from half a window


def test_a_bulk_read_still_grants_credit_every_half_window(tmp) -> None:
    blob = os.urandom(3 * 2**20)  # twelve 256 KiB windows: stalls without updates

    async def fetch_it() -> None:
        async with running_hosts(tmp, 2) as (fetcher, server):
            await fetch_ok(fetcher, server, blob)

    run_trio(fetch_it)


def test_a_burst_of_announcements_is_not_dropped_at_the_subscription(tmp, monkeypatch: pytest.MonkeyPatch) -> None:
    burst = 150

    async def delivered() -> int:
        async with running_hosts(tmp, 2) as (a, b):
            await trio.sleep(0.5)
            for r in range(1, burst + 1):  # no checkpoint for b's pump in between: a burst
                await a.publish(ann(a, r))
            got: set[int] = set()
            with trio.move_on_after(5):
                async for x in b.announcements():
                    got.add(x.round)
                    if len(got) == burst:
                        break
            return len(got)

    with monkeypatch.context() as library:
        library.setattr(libp2p_pubsub, "SUBSCRIPTION_CHANNEL_SIZE", ORIGINALS["pubsub.SUBSCRIPTION_CHANNEL_SIZE"])
        library.setattr(libp2p_pubsub, "RpcQueue", ORIGINALS["pubsub.RpcQueue"])
        assert run_trio(delivered) <= 32 + 1  # the library's queues of 32 overflowed
    assert run_trio(delivered) == burst


def test_a_task_started_from_a_managed_task_finds_its_parent_without_walking_the_tree(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from libp2p.tools.anyio_service import Service, TrioManager, background_trio_service
    from libp2p.tools.anyio_service.trio_tasks import FunctionTask

    idle, spawned = 40, 60
    walked = [0]
    walk = FunctionTask.iterate_tasks.__func__  # type: ignore[attr-defined]

    def counting(cls, *tasks):
        walked[0] += 1
        yield from walk(cls, *tasks)

    monkeypatch.setattr(FunctionTask, "iterate_tasks", classmethod(counting))

    class Swarmish(Service):
        """A reader task that starts one task per message, next to many idle per-peer tasks."""

        def __init__(self) -> None:
            self.reader: object = None
            self.parents: list[object] = []
            self.done, self.finish = trio.Event(), trio.Event()

        async def run(self) -> None:
            for _ in range(idle):
                self.manager.run_task(trio.sleep_forever)
            self.manager.run_task(self.read)
            await trio.sleep_forever()

        async def read(self) -> None:
            manager = self.manager
            self.reader = manager._find_parent_task(trio.lowlevel.current_task())
            for _ in range(spawned):
                manager.run_task(self.handle)
            await self.finish.wait()

        async def handle(self) -> None:
            me = self.manager._find_parent_task(trio.lowlevel.current_task())
            self.parents.append(me.parent)
            if len(self.parents) == spawned:
                self.done.set()

    async def steps() -> tuple[int, int]:
        """Walk steps of `spawned` more lookups from the reader, and from a task the service does not run."""
        service = Swarmish()
        async with background_trio_service(service) as manager:
            with trio.fail_after(10):
                await service.done.wait()
            counts = []
            for task in (service.reader.trio_task, trio.lowlevel.current_task()):
                walked[0] = 0
                for _ in range(spawned):
                    manager._find_parent_task(task)
                counts.append(walked[0])
            service.finish.set()
            manager.cancel()
        assert service.parents == [service.reader] * spawned  # each message task's parent: the reader
        return counts[0], counts[1]

    with monkeypatch.context() as library:
        library.setattr(TrioManager, "_find_parent_task", ORIGINALS["TrioManager._find_parent_task"])
        reader, outsider = trio.run(steps)
        assert reader >= spawned and outsider > spawned * idle  # every lookup walks (the whole tree, unless found)
    reader, outsider = trio.run(steps)
    assert reader == 0 and outsider < 2 * idle  # remembered: no walk, or one


def test_own_messages_reach_every_subscriber_even_outside_a_broken_mesh(tmp) -> None:
    async def heard() -> list[int]:
        async with running_hosts(tmp, 5) as hosts:
            for h in hosts:  # a mesh as py-libp2p left it in larger swarms: empty, and not repaired
                router = h._pubsub.router
                router.degree = router.degree_low = router.degree_high = 0
                router.mesh[h.topic] = set()
                router.gossip_heartbeat = lambda: collections.defaultdict(dict)  # no IHAVE either
            before = [h.gossip_checked for h in hosts]
            for h in hosts:
                await h.publish(ann(h, 1))
            await trio.sleep(1.5)
            return [h.gossip_checked - b - 1 for h, b in zip(hosts, before)]  # own publish checked too

    with unpatched(GossipSub, "_get_peers_to_send"):
        assert run_trio(heard) == [0] * 5  # mesh peers only: nobody heard anybody
    assert run_trio(heard) == [4] * 5  # flood publishing: every other host's announcement


def test_a_hosts_own_envelope_is_reused_without_listing_its_addresses_each_rpc(tmp, monkeypatch: pytest.MonkeyPatch) -> None:
    async def listings() -> tuple[int, bytes, bytes]:
        async with running_hosts(tmp, 1, connect=False) as (h,):
            host = h.libp2p_host
            calls = [0]
            listed = host.get_addrs

            def counting_get_addrs():
                calls[0] += 1
                return listed()

            monkeypatch.setattr(host, "get_addrs", counting_get_addrs)
            first, _ = gossipsub_module.env_to_send_in_RPC(host)
            for _ in range(99):
                again, fresh = libp2p_pubsub.env_to_send_in_RPC(host)
                assert not fresh
            return calls[0], first, again

    with monkeypatch.context() as library:
        for module in (gossipsub_module, libp2p_pubsub):
            library.setattr(module, "env_to_send_in_RPC", ORIGINALS["env_to_send_in_RPC"])
        calls, first, again = run_trio(listings)
        assert calls >= 100 and first == again  # the addresses listed again for every RPC
    calls, first, again = run_trio(listings)
    assert calls <= 1 and again == first  # reused: the same bytes, no listing after the first
    monkeypatch.setattr(libp2p_patches, "ENVELOPE_RECHECK_S", 0.0)
    calls, _, _ = run_trio(listings)
    assert calls >= 100  # past the recheck time the library checks the addresses again


def test_a_peer_whose_gossip_stream_died_while_connected_stays_subscribed(tmp) -> None:
    async def after_a_dead_stream() -> tuple[list[str], set[int]]:
        async with running_hosts(tmp, 2) as (a, b):
            stream = a._pubsub.peers[ID.from_base58(b.peer_id)]
            await stream.reset()  # as when the connection under it closes while another stays up
            await a.publish(ann(a, 1))  # its write fails: a re-opens its stream to b, still connected
            await wait_until(lambda: a._pubsub.peers.get(ID.from_base58(b.peer_id)) not in (None, stream), 5)
            for r in (2, 3, 4):
                await a.publish(ann(a, r))
            heard = {x.round for x in await nothing_more(b, 1.5)}  # round 1 may come back in a replay
            assert b.peer_id in a.peers()
            return a.topic_peers(), heard - {1}

    with unpatched(Pubsub, "_handle_dead_peer"):
        subscribed, heard = run_trio(after_a_dead_stream)
        assert subscribed == [] and heard == set()  # b's subscription forgotten for good: nothing reaches it
    subscribed, heard = run_trio(after_a_dead_stream)
    assert len(subscribed) == 1 and heard == {2, 3, 4}
