"""The commitment book: one chain read per round serves every peer's announcement."""

from __future__ import annotations

import trio

from node.commitbook import CommitmentBook

ALICE, BOB, CAROL = "0x" + "a" * 40, "0x" + "B" * 40, "0x" + "c" * 40


def test_a_burst_of_questions_costs_one_read_and_late_committers_one_more() -> None:
    chain: dict[int, dict[str, str]] = {1: {ALICE: "0x01", BOB: "0x02"}}
    reads: list[int] = []

    async def read_round(r: int) -> dict[str, str]:
        reads.append(r)
        await trio.sleep(0.01)  # a chain round trip: the other questions arrive meanwhile
        return dict(chain.get(r, {}))

    async def main() -> None:
        book = CommitmentBook(read_round)
        answers: dict[str, str | None] = {}

        async def ask(address: str) -> None:
            answers[address] = await book.digest(1, address)

        async with trio.open_nursery() as nursery:
            for address in (ALICE, BOB, ALICE.upper().replace("0X", "0x"), BOB.lower()):
                nursery.start_soon(ask, address)
        assert answers[ALICE] == "0x01" and answers[BOB] == "0x02" and reads == [1]
        # known digests never cost a read again; an unknown committer costs one fresh read
        assert await book.digest(1, BOB) == "0x02" and reads == [1]
        await trio.sleep(0.001)
        assert await book.digest(1, CAROL) is None and reads == [1, 1]
        chain[1][CAROL] = "0x03"
        await trio.sleep(0.001)
        assert await book.digest(1, CAROL) == "0x03" and reads == [1, 1, 1]
        assert book.reads == 3

    trio.run(main)


def test_old_rounds_are_forgotten() -> None:
    async def read_round(r: int) -> dict[str, str]:
        return {ALICE: f"0x{r:02x}"}

    async def main() -> None:
        book = CommitmentBook(read_round)
        for r in range(1, 10):
            assert await book.digest(r, ALICE) == f"0x{r:02x}"
        assert sorted(book._rounds) == [5, 6, 7, 8, 9]

    trio.run(main)
