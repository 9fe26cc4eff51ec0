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


def setup_logging(default_node: str = "-", level: int = logging.INFO, stream=None) -> None:
    """Send every log line to `stream` (stderr) with the node name; quiet noisy libraries."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    handler.addFilter(_DefaultNodeName(default_node))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("libp2p", "multiaddr", "web3", "urllib3", "asyncio", "matplotlib", "eth"):
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
