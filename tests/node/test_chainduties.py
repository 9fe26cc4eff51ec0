"""The node's chain duties when a round misses its quorum: the task goes on after its deadline.

On anvil, whose blocks take the wall clock's time (eth-tester stamps a block when the one before
it is mined, so an idle chain never reaches a deadline).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import trio

from incentive.anvil import Anvil

from node.chainduties import ChainDuties
from node.chainwriter import ChainWriter
from node.rundir import RunFolder
from tests.incentive.ledger_fixtures import counted, digest_of, make_deployment, on_anvil

DURATION = 4

pytestmark = on_anvil()


def test_a_commit_to_the_round_after_one_below_quorum_waits_for_its_deadline(tmp_path: Path) -> None:
    with Anvil() as chain:
        _commit_after_a_round_below_quorum(make_deployment(chain.url), tmp_path)


def _commit_after_a_round_below_quorum(dep, tmp_path: Path) -> None:
    task = dep.new_task(quorum=3, duration=DURATION)
    for i in (0, 1):  # two of a quorum of three commit round 1; the third never comes
        dep.members[i].commit(task, 1, digest_of("round 1", i))
    deadline = dep.admin.round_state(task, 1).deadline
    writer = ChainWriter("hospital-0").start()
    run = RunFolder(tmp_path / "hospital-0")
    run.create()
    duties = ChainDuties(dep.members[0], writer, task, dict, run, logging.LoggerAdapter(logging.getLogger(__name__)))

    async def commit_round_2() -> bool:
        return await duties.commit(2, digest_of("round 2", 0))

    try:
        assert trio.run(commit_round_2) is True
    finally:
        writer.stop()
    # The commit went through only once round 1 was over, and it opened round 2 on chain.
    assert time.time() >= deadline
    assert dep.admin.commitments(task, 2) == {dep.addr(0): digest_of("round 2", 0)}
    assert dep.admin.round_state(task, 2).deadline > deadline


def test_round_reads_are_shared_and_a_deadline_is_read_once(tmp_path: Path) -> None:
    with Anvil() as chain:
        dep = make_deployment(chain.url)
        task = dep.new_task(quorum=2, duration=600)
        writer = ChainWriter("hospital-0").start()
        run = RunFolder(tmp_path / "hospital-0")
        run.create()
        duties = ChainDuties(dep.members[0], writer, task, dict, run,
                             logging.LoggerAdapter(logging.getLogger(__name__)))
        dep.members[0].members()  # slot -> address, as `join` reads it
        calls = counted(dep.w3)

        async def rounds() -> None:
            await duties.round_deadline(1, 600)  # nobody committed: read, nothing to keep
            await duties.round_deadline(1, 600)
            assert calls["eth_call"] == 2
            dep.members[1].commit(task, 1, digest_of("round 1", 1))
            deadline = await duties.round_deadline(1, 600)
            assert await duties.round_deadline(1, 600) == pytest.approx(deadline, abs=0.5) and calls["eth_call"] == 3
            seen = await duties.recent_round_state(1, max_age=60.0)  # the deadline's read serves
            assert seen.committers == (dep.addr(1),) and calls["eth_call"] == 3
            dep.members[2].commit(task, 1, digest_of("round 1", 2))
            assert (await duties.recent_round_state(1, max_age=60.0)) == seen  # within its age: no read
            await trio.sleep(0.05)
            fresh = await duties.recent_round_state(1, max_age=0.01)
            assert set(fresh.committers) == {dep.addr(1), dep.addr(2)} and calls["eth_call"] == 4

        try:
            trio.run(rounds)
        finally:
            writer.stop()
