"""Four peers in separate processes on 127.0.0.1, plus a peer killed mid-transfer."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import trio

from p2p.host import FetchError, FetchTimeout, HostConfig, PeerUnavailable, SwarmHost
from p2p.identity import peer_id_for_key_file
from scripts.bench.peer_process import PeerProcess
from tests.p2p.conftest import run_trio, wait_until

KiB, MiB = 2**10, 2**20
SIZES = [1 * KiB, 4 * MiB, 64 * MiB]


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def swarm4(tmp_path: Path):
    """Four peer processes, each bootstrapping to all others (started one after another)."""
    ports = _free_ports(4)
    keys = [tmp_path / f"p{i}.key" for i in range(4)]
    addrs = [f"/ip4/127.0.0.1/tcp/{port}/p2p/{peer_id_for_key_file(k)}" for port, k in zip(ports, keys)]
    peers: list[PeerProcess] = []
    try:
        for i in range(4):
            peers.append(PeerProcess(
                keys[i], listen=f"/ip4/127.0.0.1/tcp/{ports[i]}", name=f"p{i}",
                bootstrap=[a for j, a in enumerate(addrs) if j != i], serve=SIZES if i == 0 else [],
            ))
        yield peers
    finally:
        for p in peers:
            p.stop()
        assert all(p.proc.poll() is not None for p in peers)  # no orphans


def test_four_processes_gossip_and_transfer(swarm4: list[PeerProcess]) -> None:
    deadline = time.monotonic() + 20
    for p in swarm4:  # full mesh via bootstrap, and everybody subscribed
        while len(p.request("peers", cmd="peers")["topic_peers"]) < 3:
            assert time.monotonic() < deadline, "gossip mesh did not form"
            time.sleep(0.1)
    for p in swarm4:
        p.send(cmd="publish", round=1)
    for p in swarm4:
        senders = {p.wait("ann", 10)["sender"] for _ in range(3)}
        assert senders == {o.peer_id for o in swarm4} - {p.peer_id}
    server = swarm4[0]
    for size in SIZES:
        fetchers = swarm4[1:] if size < 64 * MiB else swarm4[1:2]
        for f in fetchers:
            f.send(cmd="fetch", peer=server.peer_id, digest=server.ready["digests"][str(size)])
        for f in fetchers:
            res = f.wait("fetched", 60)
            assert res["ok"] and res["size"] == size, res


def _task_count() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    return count(trio.lowlevel.current_root_task())


def test_peer_killed_mid_transfer_gives_a_clear_error_and_leaks_nothing(tmp_path: Path) -> None:
    stalling = PeerProcess(tmp_path / "s.key", name="stall", stall=True)
    try:
        async def main() -> None:
            host = SwarmHost(HostConfig(key_file=tmp_path / "f.key", fetch_timeout=30.0), name="fetcher")
            async with host.run():
                await host.connect(stalling.addr)
                await trio.sleep(0.5)  # let identify and gossip set-up finish
                before = _task_count()
                errors: list[FetchError] = []

                async def fetch() -> None:
                    try:
                        await host.fetch(stalling.peer_id, "0x" + "11" * 32)
                    except FetchError as exc:
                        errors.append(exc)

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(fetch)
                    await trio.to_thread.run_sync(stalling.wait, "stalled", 10.0)
                    t0 = trio.current_time()
                    stalling.kill()
                    await wait_until(lambda: bool(errors), 10)
                assert isinstance(errors[0], (PeerUnavailable, FetchTimeout)), errors
                assert trio.current_time() - t0 < 10  # well before the 30 s fetch timeout
                assert stalling.peer_id in str(errors[0]) or "lost" in str(errors[0])
                await wait_until(lambda: stalling.peer_id not in host.peers(), 10)
                await wait_until(lambda: _task_count() <= before, 10)  # nothing left behind

        run_trio(main)
    finally:
        stalling.stop()
