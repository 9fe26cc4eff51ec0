"""Helpers for the p2p tests: trio without pytest-trio, and groups of running hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import pytest
import trio

from p2p.host import HostConfig, SwarmHost


def run_trio(fn: Callable, *args: object, timeout: float = 60.0) -> object:
    """Run an async test body under trio with a hard deadline."""

    async def bounded() -> object:
        with trio.fail_after(timeout):
            return await fn(*args)

    return trio.run(bounded)


async def wait_until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``pred`` every 20 ms; fail the test (trio.TooSlowError) after ``timeout``."""
    with trio.fail_after(timeout):
        while not pred():
            await trio.sleep(0.02)


@asynccontextmanager
async def running_hosts(
    tmp: Path, n: int, *, names: Iterable[str] | None = None, connect: bool = True, **config: object
) -> AsyncIterator[list[SwarmHost]]:
    """Start ``n`` hosts; with ``connect`` every pair is connected and gossip is ready.

    (Fetching needs a direct connection or a known address, as in a deployment whose
    bootstrap list names every member.)
    """
    names = list(names or (f"h{i}" for i in range(n)))
    hosts = [SwarmHost(HostConfig(key_file=tmp / f"{name}.key", **config), name=name) for name in names]
    async with AsyncExitStack() as stack:
        for h in hosts:
            await stack.enter_async_context(h.run())
        if connect:
            for i, h in enumerate(hosts):
                for other in hosts[:i]:
                    await h.connect(other.listen_addrs[0])
            await wait_gossip_ready(hosts)
        yield hosts


async def wait_gossip_ready(hosts: list[SwarmHost], timeout: float = 10.0) -> None:
    """Every host knows at least one subscriber, and host 0 knows all others."""
    await wait_until(
        lambda: len(hosts[0].topic_peers()) >= len(hosts) - 1 and all(h.topic_peers() for h in hosts),
        timeout,
    )


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
