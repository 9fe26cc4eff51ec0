"""Benchmark blob throughput against plain TCP on loopback, on a shared machine (not a test).

For each size, ``--repeats`` rounds of: one libp2p fetch (/medswarm/blob/1.0.0 over
TCP + Noise + Yamux, keccak256 verified; server in its own process) then, right after it, one
plain-TCP transfer of the same size (``recv`` + join, no crypto, no hashing; server in its own
process). Each round gives a ratio measured back to back; the table shows medians, with the
load average, since neighbours on the machine move both numbers. CPU milliseconds per MB of
each side move much less with the load than wall time, so they are given too.

The ceiling the mandatory work sets is printed next to it: a fetch must decrypt every byte
(Noise's ChaCha20-Poly1305, 64 KiB messages) and hash it (keccak256, the on-chain commitment);
their rates on this machine bound the fetch however little the transport costs.

    .venv/bin/python -m scripts.bench.transport [--quick] [--sizes 4,16,64] [--repeats 5] [--out reports/bench]

``--quick``: one 1 MiB pair, a smoke run of a few seconds.

Writes transport.json and transport.md into --out.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from p2p.codec import keccak256
from scripts.bench import harness as B
from scripts.bench.output import publish
from scripts.bench.p2p import MiB, serving_peer, tcp_throughput

NOISE_PLAINTEXT = 65519


async def _fetch_rates(tmp: Path, sizes: list[int], rounds: int, tcp_rates: dict[int, list[float]],
                       cpu: dict[str, dict[int, list[float]]]) -> dict[int, list[float]]:
    """Per size, ``rounds`` p2p rates (bytes/s), each followed at once by a plain-TCP one.

    ``cpu`` receives CPU milliseconds per MB: the fetching process (hashing thread included),
    its event-loop thread alone (receiving, decrypting, Yamux; keccak256 runs in a worker
    thread), the serving process, and this process during the plain-TCP transfer.
    """
    async with serving_peer(tmp, sizes) as (host, server):
        rates: dict[int, list[float]] = {size: [] for size in sizes}
        for size in sizes:
            digest = server.ready["digests"][str(size)]
            for _ in range(rounds):
                mine, theirs = time.process_time(), B.process_cpu_seconds(server.proc.pid)
                loop, started = time.thread_time(), time.perf_counter()
                data = await host.fetch(server.peer_id, digest)
                rates[size].append(size / (time.perf_counter() - started))
                cpu["fetcher"][size].append(1e9 * (time.process_time() - mine) / size)
                cpu["fetcher_loop"][size].append(1e9 * (time.thread_time() - loop) / size)
                cpu["server"][size].append(1e9 * (B.process_cpu_seconds(server.proc.pid) - theirs) / size)
                assert len(data) == size
                mine = time.process_time()
                tcp = functools.partial(tcp_throughput, size, 1, zero_copy=False)
                tcp_rates[size].append(await trio.to_thread.run_sync(tcp))
                cpu["tcp_client"][size].append(1e9 * (time.process_time() - mine) / size)
        return rates


def crypto_rates(size: int = 16 * MiB) -> dict[str, float]:
    """Bytes/s of the work every fetched byte needs, each on one core of this machine."""
    data = os.urandom(size)
    aead, nonce = ChaCha20Poly1305(os.urandom(32)), bytes(12)
    started = time.perf_counter()
    sealed = [aead.encrypt(nonce, data[i : i + NOISE_PLAINTEXT], None) for i in range(0, size, NOISE_PLAINTEXT)]
    encrypt = size / (time.perf_counter() - started)
    started = time.perf_counter()
    for message in sealed:
        aead.decrypt(nonce, message, None)
    decrypt = size / (time.perf_counter() - started)
    started = time.perf_counter()
    keccak256().update(data)
    keccak = size / (time.perf_counter() - started)
    return {"chacha20poly1305_encrypt": encrypt, "chacha20poly1305_decrypt": decrypt, "keccak256": keccak}


def markdown(rows: list[dict[str, Any]], crypto: dict[str, float], meta: dict[str, Any]) -> str:
    lines = [f"Blob throughput on loopback, medians of {meta['repeats']} back-to-back pairs; load average "
             f"{meta['load_before']:.2f} before, {meta['load_after']:.2f} after, {meta['machine']['cpus']} cores.", "",
             "| size | p2p MB/s | plain TCP MB/s | ratio (median of pairs) | ratio range "
             "| CPU ms/MB fetcher (its event loop) | CPU ms/MB server | CPU ms/MB both ends | CPU ms/MB TCP client |",
             "|---:|---:|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        c = r["cpu_ms_per_MB"]
        lines.append(f"| {r['size_mib']:g} MiB | {r['p2p_MBps']:.1f} | {r['tcp_MBps']:.1f} | {r['ratio']:.3f} | "
                     f"{r['ratio_min']:.3f}-{r['ratio_max']:.3f} | {c['fetcher']:.2f} ({c['fetcher_loop']:.2f}) | "
                     f"{c['server']:.2f} | {c['fetcher'] + c['server']:.2f} | {c['tcp_client']:.2f} |")
    e, d, k = (crypto[key] / 1e6 for key in ("chacha20poly1305_encrypt", "chacha20poly1305_decrypt", "keccak256"))
    floor = 1e3 / e + 1e3 / d + 1e3 / k
    lines += ["", f"Mandatory work per fetched byte on this machine, one core each: ChaCha20-Poly1305 encryption "
              f"{e:.0f} MB/s (sender), decryption {d:.0f} MB/s, keccak256 {k:.0f} MB/s (the fetcher hashes in a "
              f"second thread): {floor:.2f} CPU ms per MB together, before any transport work.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="MedSwarm blob transport vs plain TCP")
    ap.add_argument("--sizes", default="4,16,64", help="blob sizes in MiB, comma-separated")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="reports/bench")
    ap.add_argument("--quick", action="store_true", help="one 1 MiB pair")
    ap.add_argument("--runs", help="unused (no run folders); accepted like every benchmark's")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.repeats = "1", 1
    sizes = [int(s) * MiB for s in args.sizes.split(",")]
    load_before = os.getloadavg()[0]
    tcp: dict[int, list[float]] = {size: [] for size in sizes}
    cpu: dict[str, dict[int, list[float]]] = {side: {size: [] for size in sizes} for side in ("fetcher", "fetcher_loop", "server", "tcp_client")}
    with tempfile.TemporaryDirectory() as tmp:
        p2p = trio.run(_fetch_rates, Path(tmp), sizes, args.repeats, tcp, cpu)
    rows = []
    for size in sizes:
        ratios = [p / t for p, t in zip(p2p[size], tcp[size])]
        rows.append({"size_mib": size / MiB, "p2p_MBps": statistics.median(p2p[size]) / 1e6,
                     "tcp_MBps": statistics.median(tcp[size]) / 1e6, "ratio": statistics.median(ratios),
                     "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "cpu_ms_per_MB": {side: statistics.median(cpu[side][size]) for side in cpu},
                     "p2p_MBps_all": [v / 1e6 for v in p2p[size]], "tcp_MBps_all": [v / 1e6 for v in tcp[size]]})
    crypto = crypto_rates()
    meta = {"repeats": args.repeats, "load_before": load_before, "load_after": os.getloadavg()[0],
            "machine": B.machine()}
    text = markdown(rows, crypto, meta)
    publish(Path(args.out), "transport", {"meta": meta, "rows": rows, "crypto_Bps": crypto}, text)
    print(text)
    B.say(f"transport benchmark done: {args.out}/transport.json, transport.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
