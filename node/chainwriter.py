"""The node's chain writer: one worker thread that sends its transactions in order, with retries.

Training and networking never wait on the chain unless they choose to (a commit must be on chain
before the update is shared). A revert is final and reported; a transport fault (the RPC endpoint
unreachable, a nonce race) is retried with backoff for as long as the node's patience lasts
(`chain.outage_seconds`, several minutes by default), so a chain that restarts loses nothing.
Past that the fault is a `ChainOutage`, which ends the node with one line.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Callable, TypeVar

from incentive.ledger import LedgerError

from .logs import node_logger

T = TypeVar("T")


class ChainOutage(RuntimeError):
    """The chain stayed unreachable for longer than the node's patience."""


@dataclass(frozen=True)
class Patience:
    """How long to keep retrying a chain call that fails for a reason other than a revert."""

    seconds: float = 300.0
    first_delay: float = 0.5
    max_delay: float = 10.0

    def call(self, what: str, job: Callable[[], T], log: logging.LoggerAdapter) -> T:
        """Run `job`, retrying transport faults with capped exponential backoff; reverts are final."""
        started, delay, attempt = time.monotonic(), self.first_delay, 0
        while True:
            attempt += 1
            try:
                return job()
            except LedgerError:
                raise
            except Exception as exc:  # transport faults: the endpoint may come back
                waited = time.monotonic() - started
                if waited + delay > self.seconds:
                    raise ChainOutage(f"{what}: the chain has been unreachable for {waited:.0f} s "
                                      f"({type(exc).__name__}: {exc})") from exc
                log.warning("%s failed (%s); retry %d in %.1fs", what, exc, attempt, delay)
                time.sleep(delay)
                delay = min(self.max_delay, 2 * delay)


@dataclass(frozen=True)
class ChainStatus:
    pending: int
    sent: int
    reverted: int
    failed: int
    busy_seconds: float
    last_error: str

    def describe(self) -> str:
        text = f"chain: {self.sent} sent, {self.pending} pending"
        if self.reverted:
            text += f", {self.reverted} reverted"
        if self.failed:
            text += f", {self.failed} failed ({self.last_error})"
        return text


class ChainWriter:
    """Runs chain jobs on a worker thread, oldest first; each job's result comes back as a Future."""

    def __init__(self, node: str, patience: Patience = Patience()) -> None:
        self._log = node_logger(__name__, node)
        self.patience = patience
        self._jobs: queue.Queue[tuple[str, Callable[[], object], Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name=f"chain-{node}", daemon=True)
        self._lock = threading.Lock()
        self._sent = self._reverted = self._failed = 0
        self._busy = 0.0
        self._last_error = ""

    def start(self) -> "ChainWriter":
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the queued jobs (up to `timeout`), then stop the worker."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def submit(self, what: str, job: Callable[[], T]) -> "Future[T]":
        future: Future = Future()
        self._jobs.put((what, job, future))
        return future

    def status(self) -> ChainStatus:
        with self._lock:
            return ChainStatus(
                pending=self._jobs.qsize(), sent=self._sent, reverted=self._reverted,
                failed=self._failed, busy_seconds=self._busy, last_error=self._last_error,
            )

    def _work(self) -> None:
        while (item := self._jobs.get()) is not None:
            what, job, future = item
            started = time.monotonic()
            try:
                future.set_result(self._run_with_retries(what, job))
            except BaseException as exc:  # the caller sees every failure through its Future
                future.set_exception(exc)
            finally:
                with self._lock:
                    self._busy += time.monotonic() - started

    def _run_with_retries(self, what: str, job: Callable[[], T]) -> T:
        try:
            result = self.patience.call(what, job, self._log)
        except LedgerError as exc:
            with self._lock:
                self._reverted += 1
            self._log.info("%s reverted: %s", what, exc)
            raise
        except ChainOutage as exc:
            with self._lock:
                self._failed += 1
                self._last_error = str(exc)[:200]
            self._log.error("%s", exc)
            raise
        with self._lock:
            self._sent += 1
        return result


__all__ = ["ChainOutage", "ChainStatus", "ChainWriter", "Patience"]
