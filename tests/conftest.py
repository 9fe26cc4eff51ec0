"""Shared test set-up: each test starts from the logging configuration the session started with,
and every test under tests/e2e and tests/bench is marked `slow`.

`medswarm` commands run in-process by some tests call `node.logs.setup_logging`, which replaces
the root handler and raises library loggers' levels; later tests that read `caplog` must not
depend on which command ran before them.

The `slow` mark is what scripts/test.sh splits on: those tests start node processes or whole
benchmarks and time rounds against the wall clock, so they run one at a time after the rest has
run on every core.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

_PROCESS_SUITES = ("e2e", "bench")


def pytest_itemcollected(item: pytest.Item) -> None:
    if item.path.parent.name in _PROCESS_SUITES and item.path.parent.parent.name == "tests":
        item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    named = {name: (lg.level, lg.propagate) for name, lg in _loggers()}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, lg in _loggers():
        # a logger first made during the test starts afresh
        lg.setLevel(named.get(name, (logging.NOTSET, True))[0])
        lg.propagate = named.get(name, (logging.NOTSET, True))[1]


def _loggers() -> list[tuple[str, logging.Logger]]:
    # A snapshot, taken in one C call under the GIL: a thread a test left running (the torch
    # warm-up import, a node's host) may create loggers while this walks them.
    items = list(logging.root.manager.loggerDict.items())
    return [(name, lg) for name, lg in items if isinstance(lg, logging.Logger)]
