"""The node starter: nodes forked from one warm process behave like `medswarm node` processes."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from node.starter import LOST_STATUS, NodeStarter


@pytest.fixture(scope="module")
def starter():
    s = NodeStarter()
    s.warm(wait=True)
    yield s
    s.close()


def test_a_forked_node_runs_the_node_command_with_its_output_in_its_log(starter: NodeStarter, tmp_path: Path) -> None:
    log = tmp_path / "node.log"
    log.write_text("earlier line\n")
    node = starter.start(tmp_path / "missing.toml", log)
    assert node.wait(60) == 2  # `medswarm node` with a missing config: an operator error, status 2
    assert node.poll() == node.returncode == 2
    text = log.read_text()
    assert text.startswith("earlier line\n")  # appended, as the launcher's log file always was
    assert "medswarm: " in text and "missing.toml" in text
    assert os.getsid(os.getpid()) != node.pid  # it ran in a session of its own


def test_a_forked_node_can_be_waited_for_and_killed_by_its_process_group(starter: NodeStarter, tmp_path: Path) -> None:
    blocked = tmp_path / "config.toml"
    os.mkfifo(blocked)  # reading its config blocks until a writer opens it: a node that keeps running
    node = starter.start(blocked, tmp_path / "node.log")
    with pytest.raises(subprocess.TimeoutExpired):
        node.wait(0.5)
    assert node.poll() is None
    assert os.getpgid(node.pid) == node.pid
    os.killpg(node.pid, signal.SIGKILL)
    assert node.wait(30) == -signal.SIGKILL


def test_each_request_gets_its_own_process(starter: NodeStarter, tmp_path: Path) -> None:
    first = starter.start(tmp_path / "a.toml", tmp_path / "a.log")
    second = starter.start(tmp_path / "b.toml", tmp_path / "b.log")
    assert len({first.pid, second.pid, starter.pid}) == 3
    assert first.wait(60) == 2 and second.wait(60) == 2
    assert "a.toml" in (tmp_path / "a.log").read_text() and "b.toml" in (tmp_path / "b.log").read_text()


def test_a_node_outlives_its_dead_starter_and_the_next_start_brings_up_a_new_one(tmp_path: Path) -> None:
    s = NodeStarter()
    try:
        blocked = tmp_path / "config.toml"
        os.mkfifo(blocked)
        orphan = s.start(blocked, tmp_path / "orphan.log")
        os.kill(s.pid, signal.SIGKILL)
        with pytest.raises(subprocess.TimeoutExpired):  # still running, though nobody reports on it now
            orphan.wait(0.5)
        os.killpg(orphan.pid, signal.SIGKILL)
        assert orphan.wait(30) == LOST_STATUS  # ended; its status went with its parent
        fresh = s.start(tmp_path / "missing.toml", tmp_path / "fresh.log")
        assert fresh.wait(60) == 2
        s.close()
        assert s.pid is None
    finally:
        s.close()
