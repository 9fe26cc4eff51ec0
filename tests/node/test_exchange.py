"""The exchange serves what it offers or relays for as long as any round still needs it."""

from __future__ import annotations

import trio

from node.exchange import Exchange
from node.inbox import Inbox
from node.logs import node_logger
from p2p.codec import digest


class _Host:
    """Records what is served; the exchange only serves, unserves and publishes here."""

    peer_id = "12D3KooW" + "A" * 44

    def __init__(self) -> None:
        self.served: set[str] = set()

    def serve(self, blob: bytes, verified_digest: str | None = None) -> str:
        d = verified_digest or digest(blob)
        self.served.add(d)
        return d

    def unserve(self, blob_digest: str) -> None:
        self.served.discard(blob_digest)

    async def publish(self, ann) -> None:
        pass


def _exchange(host: _Host) -> Exchange:
    return Exchange(host, Inbox(), "s", dict, node_logger(__name__, "t"), max_blob=1 << 20)


def test_an_update_sent_again_in_a_later_round_stays_served() -> None:
    host = _Host()
    exchange = _exchange(host)
    zeros = digest(b"zeros")
    served_after: list[bool] = []

    async def rounds() -> None:  # an all-zero update has the same bytes every round
        for r in range(1, 5):
            await exchange.announce("update", r, b"zeros", 5, "f32")
            served_after.append(zeros in host.served)
        await exchange.announce("update", 5, b"trained", 5, "f32")
        await exchange.announce("update", 6, b"trained again", 5, "f32")

    trio.run(rounds)
    assert served_after == [True] * 4
    assert host.served == {digest(b"trained"), digest(b"trained again")}  # no longer offered: dropped


def test_a_relayed_blob_seen_again_stays_served_and_old_ones_go() -> None:
    host = _Host()
    exchange = _exchange(host)
    exchange.relay(1, b"once", digest(b"once"))
    for r in range(1, 5):
        exchange.relay(r, b"zeros", digest(b"zeros"))
    assert host.served == {digest(b"zeros")}
