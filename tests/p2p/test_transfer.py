"""The fetcher's verification: keccak256 computed in a worker thread behind the reader."""

from __future__ import annotations

import numpy as np
import pytest
import trio

from p2p import transfer
from p2p.codec import digest


@pytest.mark.parametrize("size", [0, 1, transfer.HASH_PIECE - 1, transfer.HASH_PIECE, 3 * transfer.HASH_PIECE + 17])
def test_hashing_behind_the_reader_gives_the_digest_of_the_whole_buffer(size: int) -> None:
    data = np.random.default_rng(size).bytes(size)
    steps = np.random.default_rng(size + 1).integers(1, 70_000, size=64)

    async def main() -> str:
        buf = bytearray(size)
        hasher = transfer._BehindHasher(memoryview(buf))
        got, i = 0, 0
        while got < size:  # arrives in uneven pieces, as reads from a stream do
            end = min(size, got + int(steps[i % len(steps)]))
            buf[got:end] = data[got:end]
            got, i = end, i + 1
            hasher.received(got)
        return "0x" + await hasher.hexdigest()

    assert trio.run(main) == digest(data)
