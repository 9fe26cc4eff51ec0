"""A plain py-libp2p host (none of p2p.libp2p_patches applied) serving one blob over the
transfer protocol, for the interop test in tests/p2p/test_yamux_reads.py.

    python -m tests.p2p.plain_blob_server --size BYTES --seed N

It prints ``{"addr": ".../p2p/<id>", "digest": "0x..."}`` once listening, answers every request
for the blob with the protocol's header and the bytes, written through the library's own
``YamuxStream.write`` (64 KiB frames, each split over two Noise messages, credit polled), and
exits when stdin closes. Run it from the repository root.
"""

from __future__ import annotations

import argparse
import json
import sys

import multiaddr
import numpy as np
import trio
from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair

from p2p import libp2p_patches
from p2p.codec import digest
from p2p.transfer import OK, PROTOCOL_ID, RESPONSE


async def main(size: int, seed: int) -> None:
    blob = np.random.default_rng([seed, size]).bytes(size)
    listen = multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")
    host = new_host(key_pair=create_new_key_pair(bytes([seed % 256]) * 32), listen_addrs=[listen],
                    muxer_preference="YAMUX")

    async def serve(stream) -> None:
        await stream.read(33)
        await stream.write(RESPONSE.pack(OK, len(blob)))
        for start in range(0, len(blob), 2**20):
            await stream.write(blob[start : start + 2**20])
        await stream.close()

    host.set_stream_handler(PROTOCOL_ID, serve)
    async with host.run(listen_addrs=[listen]):
        assert not libp2p_patches.applied()
        addr = f"{host.get_addrs()[0]}"
        if "/p2p/" not in addr:
            addr += f"/p2p/{host.get_id().to_base58()}"
        sys.stdout.write(json.dumps({"addr": addr, "digest": digest(blob)}) + "\n")
        sys.stdout.flush()
        await trio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    trio.run(main, args.size, args.seed)
