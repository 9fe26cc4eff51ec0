"""Benchmark MedSwarm's libp2p transport (not a test).

Measures, in one run on loopback:

- blob throughput of the transfer protocol (/medswarm/blob/1.0.0 over TCP+Noise+Yamux)
  against a plain TCP socket, for 4, 16 and 64 MiB, as a ratio; the server is a separate
  process in both cases, the client is this process;
- announcement latency p50/p95 (publish -> delivery at every other node) with 8 and 16
  node processes, and RSS per node process.

Prints a table and writes JSON (``--out``, default reports/p2p.json). ``--quick`` runs a
reduced version in a few seconds.

    .venv/bin/python scripts/bench_p2p.py [--quick] [--out reports/p2p.json]
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
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from p2p.host import HostConfig, SwarmHost  # noqa: E402
from tests.p2p.peer_process import blob_bytes  # noqa: E402

PEER_SCRIPT = ROOT / "tests" / "p2p" / "peer_process.py"
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


class Peer:
    """One peer_process.py child, driven by JSON lines."""

    def __init__(self, key: Path, *, serve: list[int] = (), bootstrap: list[str] = (), name: str = "") -> None:
        cmd = [sys.executable, str(PEER_SCRIPT), "--key", str(key), "--name", name]
        for s in serve:
            cmd += ["--serve", str(s)]
        for b in bootstrap:
            cmd += ["--bootstrap", b]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ready = self.wait("ready")
        self.peer_id: str = self.ready["peer_id"]
        self.addr: str = self.ready["addrs"][0]

    def send(self, **cmd: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def wait(self, event: str, sink: list[dict] | None = None) -> dict:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"peer exited before {event!r}")
            msg = json.loads(line)
            if msg["event"] == event:
                return msg
            if sink is not None:
                sink.append(msg)

    def stop(self) -> None:
        try:
            self.send(cmd="quit")
            self.proc.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()


def tcp_throughput(size: int, repeats: int) -> float:
    proc = subprocess.Popen([sys.executable, "-c", _TCP_SERVER, str(size), "1"], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        best = 0.0
        buf = bytearray(size)
        for _ in range(repeats):
            t0 = time.perf_counter()
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"g")
                hdr = s.recv(8, socket.MSG_WAITALL)
                n = int.from_bytes(hdr, "little")
                view, got = memoryview(buf), 0
                while got < n:
                    k = s.recv_into(view[got:], n - got)
                    if not k:
                        raise RuntimeError("short read")
                    got += k
            best = max(best, size / (time.perf_counter() - t0))
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"q")
        return best
    finally:
        proc.kill()
        proc.wait()


async def p2p_throughput(tmp: Path, sizes: list[int], repeats: int) -> dict[int, float]:
    server = Peer(tmp / "server.key", serve=sizes, name="server")
    try:
        host = SwarmHost(HostConfig(key_file=tmp / "client.key"), name="client")
        async with host.run():
            await host.connect(server.addr)
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
    finally:
        server.stop()


def latency(tmp: Path, n: int, rounds: int) -> dict[str, float]:
    peers = [Peer(tmp / f"lat{n}-0.key", name="n0")]
    try:
        for i in range(1, n):
            peers.append(Peer(tmp / f"lat{n}-{i}.key", bootstrap=[peers[0].addr, peers[(i - 1) // 2].addr][: 1 + (i > 2)], name=f"n{i}"))
        deadline = time.time() + 30
        while True:  # wait until each node sees at least one gossip peer and node 0 sees all
            peers[0].send(cmd="peers")
            if len(peers[0].wait("peers")["topic_peers"]) >= n - 1 or time.time() > deadline:
                break
            time.sleep(0.2)
        time.sleep(2.0)  # a couple of heartbeats so meshes form
        sinks: dict[int, list[dict]] = {i: [] for i in range(n)}
        published: dict[tuple[str, int], float] = {}
        for r in range(1, rounds + 1):
            for p in peers:
                p.send(cmd="publish", round=r)
            for i, p in enumerate(peers):
                published[(p.peer_id, r)] = p.wait("published", sinks[i])["t"]
            time.sleep(0.25)
        time.sleep(2.0)
        rss = []
        for i, p in enumerate(peers):
            p.send(cmd="stats")
            rss.append(p.wait("stats", sinks[i])["rss_mb"])
        lat = [
            m["t"] - published[(m["sender"], m["round"])]
            for sink in sinks.values() for m in sink if m["event"] == "ann"
        ]
        expected = n * (n - 1) * rounds
        lat.sort()
        return {
            "nodes": n, "rounds": rounds, "expected": expected, "delivered": len(lat),
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
    ap.add_argument("--out", default=str(ROOT / "reports" / "p2p.json"))
    args = ap.parse_args(argv)
    sizes = [1 * MiB, 4 * MiB] if args.quick else [4 * MiB, 16 * MiB, 64 * MiB]
    repeats = 1 if args.quick else 3
    node_counts = [4] if args.quick else [8, 16]
    rounds = 2 if args.quick else 10
    report: dict[str, object] = {"machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
                                 "quick": args.quick}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        p2p = trio.run(p2p_throughput, tmp, sizes, repeats)
        rows = []
        for size in sizes:
            tcp = tcp_throughput(size, repeats)
            rows.append({"size_mib": size / MiB, "p2p_MBps": p2p[size] / 1e6, "tcp_MBps": tcp / 1e6,
                         "ratio": p2p[size] / tcp})
        report["throughput"] = rows
        report["latency"] = [latency(tmp, n, rounds) for n in node_counts]
    print(f"{'size':>8} {'p2p MB/s':>9} {'tcp MB/s':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['size_mib']:>5.0f}MiB {r['p2p_MBps']:>9.1f} {r['tcp_MBps']:>9.1f} {r['ratio']:>6.2f}")
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
