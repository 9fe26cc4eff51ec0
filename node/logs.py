"""Logging set-up: every line carries the node's name, in one process or many.

Records from library code that knows nothing of nodes get the process's default name; code that
belongs to one node logs through `node_logger`, which stamps that node's name on each record.
"""

from __future__ import annotations

import logging
import sys
import warnings

FORMAT = "%(asctime)s %(levelname)-7s [%(node)s] %(name)s: %(message)s"


class _DefaultNodeName(logging.Filter):
    def __init__(self, name: str) -> None:
        super().__init__()
        self._name = name

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "node"):
            record.node = self._name
        return True


class _QuietLibraries(logging.Filter):
    """Drop libraries' records below a level, whatever levels their modules set on themselves."""

    def __init__(self, prefixes: tuple[str, ...], level: int) -> None:
        super().__init__()
        self._prefixes = prefixes
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= self._level or not record.name.startswith(self._prefixes)


NOISY = ("libp2p", "multiaddr", "web3", "urllib3", "asyncio", "matplotlib", "eth")


def setup_logging(default_node: str = "-", level: int = logging.INFO, stream=None) -> None:
    """Send every log line to `stream` (stderr) with the node name; quiet noisy libraries."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(_DefaultNodeName(default_node))
    # Some py-libp2p modules set their own logger to INFO on import (the auto-connector then
    # logs a line every few seconds); a handler filter holds whatever they set.
    handler.addFilter(_QuietLibraries(NOISY, max(level, logging.WARNING)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    # py-libp2p detaches its loggers (propagate off, no handler), so Python's last-resort handler
    # printed its warnings unformatted; route them through ours instead.
    logging.getLogger("libp2p").propagate = True
    # Every failed dial is an ERROR there, including the expected ones while peers start up;
    # p2p.host logs bootstrap attempts and their outcome itself.
    logging.getLogger("libp2p.transport.tcp").setLevel(logging.CRITICAL)
    # Sockets py-libp2p leaves to the garbage collector at shutdown are not ours to report.
    warnings.filterwarnings("ignore", category=ResourceWarning)


def node_logger(module: str, node: str) -> logging.LoggerAdapter:
    """A logger for `module` whose every record names `node`."""
    return logging.LoggerAdapter(logging.getLogger(module), {"node": node})
