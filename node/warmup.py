"""Imports a DP node's first round needs but its start-up does not, done in the background.

DP-SGD trains through Opacus, which wraps a ``torch.optim`` optimiser, and every one of those
imports ``torch._dynamo`` on its first ``add_param_group`` and ``step`` (torch 2.13 guards them
against tracing, even when nothing is ever compiled): 1.1-1.9 s of CPU, paid inside round 1's
training. (Training without DP uses node.optim, which needs none of it.) Started once the node's
own imports are done, a daemon thread imports it while the node joins the task, starts its host
and waits for its peers, which is mostly waiting on sockets. Code that imports torch machinery
itself (Opacus) calls :func:`finish` first: two threads importing overlapping module graphs at
once can deadlock on Python's per-module import locks.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

__all__ = ["DONE", "FIRST_ROUND_MODULES", "finish", "start"]

logger = logging.getLogger(__name__)

FIRST_ROUND_MODULES = ("torch._dynamo",)
DONE = "round-1 imports done"
_started: threading.Thread | None = None


def start() -> threading.Thread:
    """Begin importing FIRST_ROUND_MODULES in a daemon thread (once per process)."""
    global _started
    if _started is None:
        _started = threading.Thread(target=_import_all, name="warm-imports", daemon=True)
        _started.start()
    return _started


def finish() -> None:
    """Wait until the warm-up imports are done (at once if none was started)."""
    if _started is not None:
        _started.join()


def _import_all() -> None:
    started = time.monotonic()
    for name in FIRST_ROUND_MODULES:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - training imports it again and reports the real error
            logger.debug("warm-up import of %s failed", name, exc_info=True)
    # From here round 1 trains without an import stall (scripts/bench/startup.py times this line).
    logger.info("%s after %.2f s", DONE, time.monotonic() - started)
