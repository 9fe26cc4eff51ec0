"""The exchange serves what it offers or relays for as long as any round still needs it."""

from __future__ import annotations

import time

import trio
from trio.testing import MockClock

from incentive.ledger import Member, RoundState
from node.exchange import Exchange
from node.inbox import Inbox
from node.logs import node_logger
from node.reveal import REREAD_SECONDS, RevealRule
from p2p.announce import Announcement
from p2p.codec import digest


class _Host:
    """Records what is served; the exchange only serves, unserves and publishes here."""

    peer_id = "12D3KooW" + "A" * 44

    def __init__(self) -> None:
        self.served: set[str] = set()

    def serve(self, blob: bytes, verified_digest: str | None = None, release=None) -> str:
        d = verified_digest or digest(blob)
        self.served.add(d)
        return d

    def unserve(self, blob_digest: str) -> None:
        self.served.discard(blob_digest)

    async def publish(self, ann) -> None:
        pass

    def topic_peers(self) -> list[str]:
        return []


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
    exchange.relay("update", 1, b"once", digest(b"once"), "author")
    for r in range(1, 5):
        exchange.relay("update", r, b"zeros", digest(b"zeros"), "author")
    assert host.served == {digest(b"zeros")}


def _member(i: int) -> Member:
    return Member(address=f"0x{i:040x}", peer_id=f"peer{i}", name=f"hospital-{i}", active=True, index=i)


def test_update_bytes_go_only_to_members_that_committed_or_after_the_window() -> None:
    members = {m.peer_id: m for m in (_member(1), _member(2), _member(3))}
    chain = {"committers": (members["peer1"].address,), "deadline": time.time() + 3600}
    reads: list[int] = []

    async def round_state(r: int) -> RoundState:
        reads.append(r)
        return RoundState(committers=chain["committers"] if r == 4 else (), scored=(), finalized=False,
                          deadline=chain["deadline"])

    rule = RevealRule(round_state, lambda: members, node_logger(__name__, "t"))
    answers: list[bool] = []

    async def asks() -> None:
        release = rule.for_round(4, "author")
        answers.append(await release("peer1"))  # committed: yes, from one read
        chain["committers"] = (members["peer1"].address, members["peer2"].address.upper())
        answers.append(await release("peer2"))  # committed just now, but the last read is too recent
        answers.append(await release("stranger"))  # not a member: never, and no read
        await trio.sleep(REREAD_SECONDS)
        answers.append(await release("peer2"))  # read again: its commit is there
        rule.note_committed(4, members["peer3"].address)  # learnt while verifying peer3's update
        answers.append(await release("peer3"))  # no read
        answers.append(await rule.for_round(5, "author")("peer1"))  # another round: not committed there
        chain["deadline"] = time.time() - 1  # round 5's commit window closed: everyone may have it
        await trio.sleep(REREAD_SECONDS)
        answers.append(await rule.for_round(5, "author")("peer2"))

    trio.run(asks)
    assert answers == [True, False, False, True, True, False, True]
    assert reads == [4, 4, 5, 5]


def test_collect_with_an_alive_set_waits_for_who_is_alive_not_for_the_deadline() -> None:
    """The statistics phase's rule (engine `_alive`): wait for every member that is heard from or
    connected, at least `grace`; a member that never comes up costs nothing past that."""
    p1, p2, p3 = ("12D3KooW" + c * 44 for c in "BCD")
    members = {p: Member(address=f"0x{i:040x}", peer_id=p, name=f"hospital-{i}", active=True, index=i)
               for i, p in enumerate((p1, p2, p3), 1)}
    exchange = Exchange(_Host(), Inbox(), "s", lambda: members, node_logger(__name__, "t"), max_blob=1 << 20)
    alive: set[str] = set()

    async def fetch_accepted(ann, intake, retry_until):
        return b"blob", ann.sender

    exchange.fetch_accepted = fetch_accepted  # what the blobs hold is not this test's concern

    def announce(sender: str) -> None:
        exchange.inbox.add(Announcement(swarm="s", round=0, kind="stats", digest=digest(sender.encode()), size=4,
                                        samples=5, codec="f32", sender=sender))

    async def peers_come_up() -> None:
        await trio.sleep(1)
        alive.add(p1)  # connected; its statistics follow a moment later
        await trio.sleep(1)
        announce(p1)
        await trio.sleep(2)  # within the grace: p2 is seen now, so it is waited for past it
        alive.add(p2)
        await trio.sleep(3)
        announce(p2)  # p3 never comes up

    async def main() -> tuple[dict, float]:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(peers_come_up)
            got = await exchange.collect("stats", 0, None, trio.current_time() + 100, lambda: set(alive), grace=5)
            return got, trio.current_time()

    got, ended = trio.run(main, clock=MockClock(autojump_threshold=0))
    assert got == {p1: p1, p2: p2}
    assert ended == 7  # p2's arrival, not the 100 s deadline (a fixed empty awaited set: the grace, 5, without p2)


def _publish_times(peers: int, seconds: float, asked_at: float = float("inf"), blob: bytes = b"u" * 2000,
                   subscribed_at: float = float("inf"), wanted: int | None = None, kind: str = "scores") -> list[float]:
    """When a blob offered at time 0 is published again, to `peers` peers none of which fetches
    it (or all of which asked for it from `asked_at` on, or are subscribed from `subscribed_at` on);
    with `wanted`, the offer is for that many of them only."""
    host = _Host()
    times: list[float] = []
    names = {f"peer{i}": Member(f"0x{i:040x}", f"peer{i}", f"n{i}", True, i) for i in range(peers)}
    exchange = Exchange(host, Inbox(), "s", lambda: names, node_logger(__name__, "t"), max_blob=1 << 20)

    async def publish(ann) -> None:
        times.append(round(trio.current_time()))

    host.publish = publish  # type: ignore[method-assign]
    host.asked_by = lambda d: frozenset(names) if trio.current_time() >= asked_at else frozenset()  # type: ignore[attr-defined]
    host.topic_peers = lambda: list(names) if trio.current_time() >= subscribed_at else []  # type: ignore[method-assign]

    async def run() -> None:
        await exchange.announce(kind, 1, blob, 0, "f32", until=seconds,
                                wanted_by=None if wanted is None else frozenset(list(names)[:wanted]))
        with trio.move_on_after(seconds + 1):
            await exchange.reannounce_forever()

    trio.run(run, clock=MockClock(autojump_threshold=0))
    return times[1:]  # the first is the announcement itself


def test_repeats_of_an_offer_back_off_with_the_size_of_the_swarm() -> None:
    assert _publish_times(3, 10) == list(range(1, 11))  # a small swarm: every second, as before
    assert _publish_times(3, 10, asked_at=4.5) == [1, 2, 3, 4]  # ... until every peer asked for it
    big = _publish_times(31, 40)
    assert big == [1, 2, 4, 8, 16, 24, 32, 40]  # pauses double up to 31 / 4 s (8 s ticks)
    assert len(_publish_times(15, 40)) < len(_publish_times(7, 40)) < 40
    assert _publish_times(31, 40, wanted=5) == big  # an offer for 5 of them still reaches all 31


def test_the_newest_model_is_repeated_now_and_then_less_often_in_a_large_swarm() -> None:
    assert _publish_times(15, 40, kind="model") == [8, 16, 24, 32, 40]  # for late joiners, every 8 s
    assert _publish_times(31, 40, kind="model") == [16, 32]  # every second per 2 peers above 16


def test_a_small_unrestricted_blob_rides_in_its_announcement_and_needs_no_fetch() -> None:
    host = _Host()
    published: list[Announcement] = []

    async def publish(ann) -> None:
        published.append(Announcement.from_bytes(ann.to_bytes()))  # as a peer parses it

    host.publish = publish  # type: ignore[method-assign]
    restricted = Exchange(host, Inbox(), "s", dict, node_logger(__name__, "t"), max_blob=1 << 20,
                          release_for=lambda kind, r, author: (lambda peer: True) if kind == "update" else None)

    async def offers() -> bytes:
        await restricted.announce("scores", 3, b"sheet bytes", 0, "f32")
        await restricted.announce("update", 3, b"update bytes", 10, "f32")  # held back until peers commit
        await restricted.announce("model", 3, b"model bytes", 10, "f32")  # fetched only to adopt it
        await restricted.announce("scores", 4, b"s" * 1025, 0, "f32")  # too large to ride along
        return await restricted.fetch_blob(published[0])  # no host.fetch on the fake: inline only

    assert trio.run(offers) == b"sheet bytes"
    assert [a.blob for a in published] == [b"sheet bytes", None, None, None]
    assert published[0].digest == digest(b"sheet bytes") and published[0].size == 11


def test_an_inline_offer_is_repeated_until_every_peer_was_subscribed_when_it_went_out() -> None:
    small = b"sheet"
    assert _publish_times(3, 10, blob=small) == list(range(1, 11))  # nobody subscribed yet
    assert _publish_times(3, 10, blob=small, subscribed_at=2.5) == [1, 2, 3]  # out once they all were
    assert _publish_times(3, 10, blob=small, asked_at=0) == list(range(1, 11))  # requests do not count
