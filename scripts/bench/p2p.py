"""Benchmark MedSwarm's libp2p transport (not a test).

Measures, in one run on loopback:

- blob throughput of the transfer protocol (/medswarm/blob/1.0.0 over TCP+Noise+Yamux)
  against a plain TCP socket, for 4, 16 and 64 MiB, as a ratio; the server is a separate
  process in both cases, the client is this process. Two TCP baselines: an ordinary
  ``recv`` + ``join`` client, and a ``recv_into`` zero-copy client (the loopback ceiling);
  the fetch includes keccak verification, the TCP baselines do no hashing;
- announcement latency p50/p95 (publish -> delivery at every other node) with 8 and 16
  node processes, and RSS per node process.

Prints a table and writes JSON (``--out``, default reports/p2p.json). ``--quick`` runs a
reduced version in a few seconds.

    .venv/bin/python -m scripts.bench.p2p [--quick] [--out reports/p2p.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio

from p2p.host import HostConfig, SwarmHost
from scripts.bench.peer_process import PeerProcess as Peer

MiB = 2**20

_TCP_SERVER = r"""
import socket, sys
import numpy as np
size, seed = int(sys.argv[1]), int(sys.argv[2])
data = np.random.default_rng([seed, size]).bytes(size)
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(8)
print(srv.getsockname()[1], flush=True)
while True:
    conn, _ = srv.accept()
    if conn.recv(1) != b"g":
        break
    conn.sendall(size.to_bytes(8, "little")); conn.sendall(memoryview(data)); conn.close()
"""


def tcp_throughput(size: int, repeats: int, *, zero_copy: bool) -> float:
    """Best-of-``repeats`` bytes/s over a plain TCP socket from a server process.

    ``zero_copy``: ``recv_into`` a preallocated buffer (the loopback ceiling); otherwise the
    ordinary ``recv`` + ``b"".join`` a plain Python client would write.
    """
    proc = subprocess.Popen([sys.executable, "-c", _TCP_SERVER, str(size), "1"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        best = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"g")
                n = int.from_bytes(s.recv(8, socket.MSG_WAITALL), "little")
                if zero_copy:
                    buf = bytearray(n)
                    view, got = memoryview(buf), 0
                    while got < n:
                        k = s.recv_into(view[got:], n - got)
                        if not k:
                            raise RuntimeError("short read")
                        got += k
                else:
                    parts, got = [], 0
                    while got < n:
                        chunk = s.recv(min(1 * MiB, n - got))
                        if not chunk:
                            raise RuntimeError("short read")
                        parts.append(chunk)
                        got += len(chunk)
                    data = b"".join(parts)
                    assert len(data) == n
            best = max(best, size / (time.perf_counter() - t0))
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"q")
        return best
    finally:
        proc.kill()
        proc.wait()


@asynccontextmanager
async def serving_peer(tmp: Path, sizes: list[int]) -> AsyncIterator[tuple[SwarmHost, Peer]]:
    """A host in this process, connected to a peer process that serves blobs of ``sizes``
    (one fetch done already, so connection set-up is not timed)."""
    server = Peer(tmp / "server.key", serve=sizes, name="server", quiet=True)
    try:
        host = SwarmHost(HostConfig(key_file=tmp / "client.key"), name="client")
        async with host.run():
            await host.connect(server.addr)
            await host.fetch(server.peer_id, server.ready["digests"][str(sizes[0])])  # warm-up
            yield host, server
    finally:
        server.stop()


async def p2p_throughput(tmp: Path, sizes: list[int], repeats: int) -> dict[int, float]:
    async with serving_peer(tmp, sizes) as (host, server):
        results: dict[int, float] = {}
        for size in sizes:
            dg = server.ready["digests"][str(size)]
            best = 0.0
            for _ in range(repeats):
                t0 = time.perf_counter()
                data = await host.fetch(server.peer_id, dg)
                best = max(best, size / (time.perf_counter() - t0))
                assert len(data) == size
            results[size] = best
        return results


def latency(tmp: Path, n: int, rounds: int, settle: float = 2.0, interval: float = 1.0) -> dict[str, float]:
    """Every node publishes one announcement per ``interval`` for ``rounds`` rounds."""
    peers = [Peer(tmp / f"lat{n}-0.key", name="n0", quiet=True)]
    try:
        for i in range(1, n):
            peers.append(Peer(tmp / f"lat{n}-{i}.key", bootstrap=[peers[0].addr, peers[(i - 1) // 2].addr][: 1 + (i > 2)], name=f"n{i}", quiet=True))
        deadline = time.time() + 30
        while True:  # wait until each node sees at least one gossip peer and node 0 sees all
            if len(peers[0].request("peers", cmd="peers")["topic_peers"]) >= n - 1 or time.time() > deadline:
                break
            time.sleep(0.2)
        time.sleep(settle)  # a couple of heartbeats so meshes form
        published: dict[tuple[str, int], float] = {}
        for r in range(1, rounds + 1):
            for p in peers:  # staggered over the interval, as nodes finish at different times
                p.send(cmd="publish", round=r)
                time.sleep(interval / n)
            for p in peers:
                published[(p.peer_id, r)] = p.wait("published")["t"]
        time.sleep(settle)
        rss = []
        for i, p in enumerate(peers):
            p.send(cmd="stats")
            rss.append(p.wait("stats")["rss_mb"])
        lat = [
            m["t"] - published[(m["sender"], m["round"])]
            for p in peers for m in p.backlog if m["event"] == "ann"
        ]
        expected = n * (n - 1) * rounds
        lat.sort()
        return {
            "nodes": n, "rounds": rounds, "interval_s": interval, "expected": expected, "delivered": len(lat),
            "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
            "p95_ms": 1000 * lat[int(0.95 * (len(lat) - 1))] if lat else float("nan"),
            "rss_mb_mean": statistics.fmean(rss), "rss_mb_max": max(rss),
        }
    finally:
        for p in peers:
            p.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="MedSwarm p2p benchmark")
    ap.add_argument("--quick", action="store_true", help="small sizes, 4 nodes, one repeat")
    ap.add_argument("--out", default="reports/p2p.json")
    args = ap.parse_args(argv)
    sizes = [4 * MiB] if args.quick else [4 * MiB, 16 * MiB, 64 * MiB]
    repeats = 2 if args.quick else 3
    node_counts = [3] if args.quick else [8, 16]
    rounds = 2 if args.quick else 10
    settle = 0.5 if args.quick else 3.0
    report: dict[str, object] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                                 "quick": args.quick}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        p2p = trio.run(p2p_throughput, tmp, sizes, repeats)
        rows = []
        for size in sizes:
            tcp = tcp_throughput(size, repeats, zero_copy=False)
            tcp0 = tcp_throughput(size, repeats, zero_copy=True)
            rows.append({"size_mib": size / MiB, "p2p_MBps": p2p[size] / 1e6, "tcp_MBps": tcp / 1e6,
                         "tcp_recv_into_MBps": tcp0 / 1e6, "ratio": p2p[size] / tcp,
                         "ratio_recv_into": p2p[size] / tcp0})
        report["throughput"] = rows
        report["latency"] = [latency(tmp, n, rounds, settle, 0.25 if args.quick else 1.0) for n in node_counts]
    print(f"{'size':>8} {'p2p MB/s':>9} {'tcp MB/s':>9} {'ratio':>6} {'tcp recv_into':>14} {'ratio':>6}")
    for r in rows:
        print(f"{r['size_mib']:>5.0f}MiB {r['p2p_MBps']:>9.1f} {r['tcp_MBps']:>9.1f} {r['ratio']:>6.2f} "
              f"{r['tcp_recv_into_MBps']:>14.1f} {r['ratio_recv_into']:>6.2f}")
    print(f"{'nodes':>5} {'delivered':>11} {'p50 ms':>7} {'p95 ms':>7} {'RSS MB':>7}")
    for lat in report["latency"]:  # type: ignore[union-attr]
        print(f"{lat['nodes']:>5} {lat['delivered']:>5}/{lat['expected']:<5} {lat['p50_ms']:>7.1f} "
              f"{lat['p95_ms']:>7.1f} {lat['rss_mb_mean']:>7.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
