"""Patches 16-18: Yamux DATA frames taken before the library's loop, and direct reads.

A real ``Yamux`` muxer reads a scripted connection: a ``SecureSession`` (with the patched rest
handling) over a stand-in for the Noise transport that hands out whole plaintext messages, so
a frame and its body sit in one message as they do on the wire (patch 7), or span two as a
library sender's 64 KiB frames do.
"""

from __future__ import annotations

import json
import logging
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

import pytest
import trio
import trio.testing
from libp2p.peer.id import ID
from libp2p.security.secure_session import SecureSession
from libp2p.stream_muxer.yamux import yamux

from p2p import libp2p_patches
from p2p.libp2p_patches import read_direct
from tests.p2p.conftest import run_trio, running_hosts

libp2p_patches.apply()

REPO_ROOT = Path(__file__).resolve().parents[2]
SID = 1
WINDOW = yamux.DEFAULT_WINDOW_SIZE


def frame(typ: int, flags: int, length: int, body: bytes = b"", sid: int = SID) -> bytes:
    return struct.pack(yamux.YAMUX_HEADER_FORMAT, 0, typ, flags, sid, length) + body


def data(body: bytes, flags: int = 0, sid: int = SID) -> bytes:
    return frame(yamux.TYPE_DATA, flags, len(body), body, sid)


FIN = frame(yamux.TYPE_WINDOW_UPDATE, yamux.FLAG_FIN, 0)
RST = frame(yamux.TYPE_WINDOW_UPDATE, yamux.FLAG_RST, 0)


class Messages:
    """The Noise transport under a SecureSession: whole plaintext messages in, writes recorded.
    Once the messages run out it idles, or reports the end of the connection (``b""``).
    ``slow_writes``: a write returns only once the reading side has taken everything there is."""

    def __init__(self, messages: list[bytes], *, then_close: bool = False, slow_writes: bool = False) -> None:
        self.messages = list(messages)
        self.then_close = then_close
        self.slow_writes = slow_writes
        self.written: list[bytes] = []

    async def read_msg(self) -> bytes:
        await trio.lowlevel.checkpoint()
        if self.messages:
            return self.messages.pop(0)
        if self.then_close:
            return b""
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def write_msg(self, msg: bytes) -> None:
        self.written.append(bytes(msg))
        if self.slow_writes:
            await trio.testing.wait_all_tasks_blocked()


def muxer_over(messages: list[bytes], *, then_close: bool = False,
               slow_writes: bool = False) -> tuple[yamux.Yamux, yamux.YamuxStream, Messages]:
    wire = Messages(messages, then_close=then_close, slow_writes=slow_writes)
    session = SecureSession.__new__(SecureSession)
    session.conn = wire
    mux = yamux.Yamux(session, ID(b"\x00\x01x"), is_initiator=True)
    stream = yamux.YamuxStream(SID, mux, True)
    mux.streams[SID] = stream
    mux.stream_buffers[SID] = bytearray()
    mux.stream_events[SID] = trio.Event()
    return mux, stream, wire


async def run_loop(mux: yamux.Yamux, body) -> object:
    """``body()`` while the muxer's read loop runs; its result once every task is blocked."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mux.handle_incoming)
        result = await body()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    return result


async def idle() -> None:
    await trio.testing.wait_all_tasks_blocked()


def headers_the_library_reads(monkeypatch: pytest.MonkeyPatch, *, patched: bool) -> list[tuple]:
    """Record the frame headers that reach the library's loop (patch 16 on or off)."""
    seen: list[tuple] = []
    reader = yamux.read_exactly if patched else libp2p_patches._read_exactly

    async def recording(conn, n, *args):
        header = await reader(conn, n, *args)
        seen.append(struct.unpack(yamux.YAMUX_HEADER_FORMAT, header)[1:3])
        return header

    monkeypatch.setattr(yamux, "read_exactly", recording)
    return seen


@pytest.mark.parametrize("patched", [False, True])
def test_plain_data_frames_skip_the_library_loop_with_the_same_outcome(monkeypatch, patched: bool) -> None:
    seen = headers_the_library_reads(monkeypatch, patched=patched)
    # A frame and its body in one message, then one spread over two (a library sender's 64 KiB frame).
    whole, split = data(b"a" * 1000), data(b"b" * 3000)
    mux, stream, _ = muxer_over([whole, split[:1000], split[1000:], FIN])
    trio.run(run_loop, mux, idle)
    assert bytes(mux.stream_buffers[SID]) == b"a" * 1000 + b"b" * 3000
    assert stream.recv_window == WINDOW - 4000 and stream.recv_closed
    fin = (yamux.TYPE_WINDOW_UPDATE, yamux.FLAG_FIN)
    if patched:
        assert seen == [fin]  # the DATA frames never reached the library's per-frame code
    else:
        assert seen == [(yamux.TYPE_DATA, 0), (yamux.TYPE_DATA, 0), fin]


def test_data_frames_with_flags_or_for_unknown_streams_still_go_to_the_library(monkeypatch) -> None:
    seen = headers_the_library_reads(monkeypatch, patched=True)
    mux, stream, _ = muxer_over([data(b"x" * 10, sid=7), data(b"last", flags=yamux.FLAG_FIN)])
    trio.run(run_loop, mux, idle)
    assert seen == [(yamux.TYPE_DATA, 0), (yamux.TYPE_DATA, yamux.FLAG_FIN)]
    assert 7 not in mux.stream_buffers  # dropped, as the library drops it
    assert bytes(mux.stream_buffers[SID]) == b"last" and stream.recv_closed


def test_an_oversize_data_frame_still_closes_the_connection() -> None:
    too_big = frame(yamux.TYPE_DATA, 0, yamux.MAX_WINDOW_SIZE + 1)  # announced, never sent
    mux, _, _ = muxer_over([too_big, data(b"after")])
    trio.run(run_loop, mux, idle)
    assert mux.event_shutting_down.is_set()
    assert not mux.stream_buffers.get(SID)  # nothing of it, nor of what followed, was taken


def test_a_truncated_data_frame_ends_the_connection_and_delivers_nothing_of_it() -> None:
    mux, _, _ = muxer_over([data(b"ok"), frame(yamux.TYPE_DATA, 0, 1000, b"short")], then_close=True)
    trio.run(run_loop, mux, idle)
    assert mux.event_shutting_down.is_set()
    assert bytes(mux.stream_buffers.get(SID, b"ok")) == b"ok"


def test_a_peer_overrunning_the_receive_window_is_clamped_and_logged(caplog) -> None:
    frames = [data(b"z" * 60000) for _ in range(5)]  # 300000 bytes against a 262144-byte window
    mux, stream, _ = muxer_over(frames)
    with caplog.at_level(logging.WARNING, logger="p2p.libp2p_patches"):
        trio.run(run_loop, mux, idle)
    assert stream.recv_window == 0 and len(mux.stream_buffers[SID]) == 300000
    assert "exceeded the receive window" in caplog.text


def test_a_direct_read_fills_the_buffer_in_order_and_leaves_the_rest_to_the_stream() -> None:
    mux, stream, _ = muxer_over([data(b"y" * 100), data(b"z" * 100)])
    mux.stream_buffers[SID] += b"x" * 10  # arrived before the reader got there
    target = bytearray(150)
    progress: list[int] = []

    async def direct() -> int:
        return await read_direct(SimpleNamespace(muxed_stream=stream), memoryview(target), progress.append)

    assert trio.run(run_loop, mux, direct) == 150
    assert target == b"x" * 10 + b"y" * 100 + b"z" * 40
    assert bytes(mux.stream_buffers[SID]) == b"z" * 60  # the next read gets it, in order
    assert progress == sorted(progress) and progress[-1] == 150


def test_a_direct_read_grants_credit_every_half_window_from_the_reading_task() -> None:
    frames = [data(bytes([i]) * 60000) for i in range(4)]  # 240000 bytes: past half the window
    mux, stream, wire = muxer_over(frames)
    target = bytearray(240000)

    async def direct() -> int:
        return await read_direct(SimpleNamespace(muxed_stream=stream), memoryview(target))

    assert trio.run(run_loop, mux, direct) == 240000
    assert target == b"".join(bytes([i]) * 60000 for i in range(4))
    updates = [struct.unpack(yamux.YAMUX_HEADER_FORMAT, w[: yamux.HEADER_SIZE]) for w in wire.written]
    assert [(u[1], u[3]) for u in updates] == [(yamux.TYPE_WINDOW_UPDATE, SID)]  # one, after half a window
    assert updates[0][4] >= WINDOW // 2
    assert stream.recv_window == WINDOW - 240000 + updates[0][4]  # the window counts what it granted


def test_a_direct_read_reports_the_bytes_that_arrive_while_it_grants_credit() -> None:
    # The last frame lands while the reader is writing its window update: the reader must still
    # report it (the fetch hashes what is reported; an unreported tail once failed the digest).
    frames = [data(bytes([i]) * 60000) for i in range(3)] + [data(b"t" * 10000)]
    mux, stream, wire = muxer_over(frames, slow_writes=True)
    target = bytearray(190000)
    progress: list[int] = []

    async def direct() -> int:
        return await read_direct(SimpleNamespace(muxed_stream=stream), memoryview(target), progress.append)

    assert trio.run(run_loop, mux, direct) == 190000
    assert wire.written  # the credit was written while the last frame arrived
    assert progress[-1] == 190000 and target.endswith(b"t" * 10000)


def test_a_direct_read_stops_at_a_reset_and_the_stream_reports_it() -> None:
    mux, stream, _ = muxer_over([data(b"q" * 50), RST])
    target = bytearray(100)

    async def direct_then_stream_read() -> int:
        filled = await read_direct(SimpleNamespace(muxed_stream=stream), memoryview(target))
        with pytest.raises((yamux.MuxedStreamReset, yamux.MuxedStreamEOF)):  # the library's answers
            await stream.read(50)
        return filled

    assert trio.run(run_loop, mux, direct_then_stream_read) == 50
    assert target[:50] == b"q" * 50 and stream.reset_received


def test_a_direct_read_declines_what_is_not_a_patched_yamux_stream() -> None:
    async def main() -> int:
        return await read_direct(SimpleNamespace(read=None), memoryview(bytearray(10)))

    assert trio.run(main) == 0


@pytest.mark.parametrize("hostile", ["truncated", "oversize"])
def test_a_direct_read_returns_when_a_hostile_frame_ends_the_connection(hostile: str) -> None:
    bad = frame(yamux.TYPE_DATA, 0, 1000, b"short") if hostile == "truncated" else frame(
        yamux.TYPE_DATA, 0, yamux.MAX_WINDOW_SIZE + 1)
    mux, stream, _ = muxer_over([data(b"a" * 10), bad], then_close=True)
    target = bytearray(100)

    async def direct() -> int:
        with trio.fail_after(5):
            return await read_direct(SimpleNamespace(muxed_stream=stream), memoryview(target))

    assert trio.run(run_loop, mux, direct) == 10
    assert mux.event_shutting_down.is_set() and target[:10] == b"a" * 10


def test_a_patched_host_fetches_from_a_plain_py_libp2p_host_over_real_sockets(tmp) -> None:
    """Our receiving side (patches 16-18) against the library's own sender in another process:
    64 KiB frames split over two Noise messages, credit polled, nothing of ours applied."""
    size = 3 * 2**20 + 12345
    proc = subprocess.Popen([sys.executable, "-m", "tests.p2p.plain_blob_server", "--size", str(size)],
                            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = json.loads(proc.stdout.readline())
        expected = np.random.default_rng([0, size]).bytes(size)

        async def fetch_twice() -> list[bytes]:
            async with running_hosts(tmp, 1, connect=False) as (host,):
                await host.connect(ready["addr"])
                peer = ready["addr"].rsplit("/p2p/", 1)[1]
                return [await host.fetch(peer, ready["digest"]) for _ in range(2)]

        assert run_trio(fetch_twice) == [expected, expected]
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_direct_read_opens_the_window_to_its_buffer_at_once() -> None:
    mux, stream, wire = muxer_over([])
    target = bytearray(2**20)

    async def direct_until_idle() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_direct, SimpleNamespace(muxed_stream=stream), memoryview(target))
            await trio.testing.wait_all_tasks_blocked()
            nursery.cancel_scope.cancel()

    trio.run(run_loop, mux, direct_until_idle)
    (update,) = [struct.unpack(yamux.YAMUX_HEADER_FORMAT, w[: yamux.HEADER_SIZE]) for w in wire.written]
    assert update[1] == yamux.TYPE_WINDOW_UPDATE and update[4] >= 2**20 - WINDOW  # before any byte came


def test_concurrent_direct_reads_both_ways_on_one_connection_arrive_intact(tmp) -> None:
    """Several fetches at once on one connection, each way: one sink per stream, and credit
    written by readers while bulk frames flow the other way."""
    rng = np.random.default_rng(7)
    blobs = [rng.bytes(n) for n in (3 * 2**20 + 1, 2**20, 70000)]

    async def main() -> None:
        async with running_hosts(tmp, 2) as (a, b):
            digests_a = [a.serve(blob) for blob in blobs]
            digests_b = [b.serve(blob[::-1]) for blob in blobs]
            got: dict[tuple[str, int], bytes] = {}

            async def fetch(host, peer, digest, key) -> None:
                got[key] = await host.fetch(peer, digest)

            async with trio.open_nursery() as nursery:
                for i in range(len(blobs)):
                    nursery.start_soon(fetch, a, b.peer_id, digests_b[i], ("a", i))
                    nursery.start_soon(fetch, b, a.peer_id, digests_a[i], ("b", i))
            assert got == {**{("a", i): blob[::-1] for i, blob in enumerate(blobs)},
                           **{("b", i): blob for i, blob in enumerate(blobs)}}

    run_trio(main)
