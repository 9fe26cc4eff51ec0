"""Log lines: every one names its node, and chatty libraries stay below warnings."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from node.logs import node_logger, setup_logging


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    setup_logging("swarm", logging.INFO, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_records_name_their_node_or_the_process_default(captured: io.StringIO) -> None:
    node_logger("node.engine", "cleveland").info("round 1 done")
    logging.getLogger("incentive.chain").info("connected")
    lines = captured.getvalue().splitlines()
    assert "[cleveland] node.engine: round 1 done" in lines[0]
    assert "[swarm] incentive.chain: connected" in lines[1]


def test_a_library_module_that_raised_its_own_level_stays_quiet(captured: io.StringIO) -> None:
    chatty = logging.getLogger("libp2p.network.auto_connector")
    saved = chatty.level
    chatty.setLevel(logging.INFO)  # what py-libp2p 0.8.1 does to this logger on import
    try:
        chatty.info("initiating 198 new dials")
        chatty.warning("dial failed")
    finally:
        chatty.setLevel(saved)
    out = captured.getvalue()
    assert "initiating 198 new dials" not in out
    assert "[swarm] libp2p.network.auto_connector: dial failed" in out
