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

from incentive.anvil import Anvil, ToolMissing, anvil_binary

from node.chainduties import ChainDuties
from node.chainwriter import ChainWriter
from node.rundir import RunFolder
from tests.incentive.ledger_fixtures import digest_of, make_deployment

DURATION = 4

try:
    anvil_binary()
    MISSING = ""
except ToolMissing as exc:
    MISSING = str(exc)

pytestmark = [pytest.mark.anvil, pytest.mark.skipif(bool(MISSING), reason=MISSING or "ok")]


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
