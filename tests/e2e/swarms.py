"""What the end-to-end tests share: skipping without anvil, silence, waiting for a round, running
in-process nodes side by side, and what one test row is worth."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from incentive.anvil import ToolMissing, anvil_binary
from node.config import NodeConfig
from node.launcher import LocalSwarm
from node.report import SwarmReport
from node.rundir import RunFolder


def anvil_or_skip() -> None:
    try:
        anvil_binary()
    except ToolMissing as exc:
        pytest.skip(f"anvil not installed ({exc}); run scripts/setup.sh")


def quiet(_: str) -> None:
    """Progress lines are for people; tests read the report."""


def wait_for_round(swarm: LocalSwarm, config: NodeConfig, round_no: int, timeout: float = 120.0) -> None:
    """Block until `config`'s node has reported `round_no` rounds."""
    deadline = time.monotonic() + timeout
    while len(swarm.metrics(config)) < round_no:
        assert time.monotonic() < deadline, f"{config.name} did not reach round {round_no}"
        time.sleep(0.2)


def one_row_each(report: SwarmReport, run_dir: Path, nodes: Sequence[int]) -> float:
    """What one test row is worth on each of `nodes`, averaged: the smallest step the mean of
    their test accuracies can take (breast cancer over 4 nodes: 1/35 or 1/36, about 0.028)."""
    counts = [RunFolder(run_dir / report.rows[i].name).read_summary()["test_rows"] for i in nodes]
    return sum(1 / n for n in counts) / len(counts)


def run_all(nodes) -> list[dict]:
    """Run in-process nodes side by side on one trio loop; their summaries, in finishing order."""
    summaries: list[dict] = []

    async def run(node) -> None:
        summaries.append(await node.run())

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for node in nodes:
                nursery.start_soon(run, node)

    trio.run(main)
    return summaries
