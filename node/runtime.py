"""Assemble a runnable node from its config: data, learner, chain client, libp2p host, chain writer.

Everything that can be checked before the first round is checked here, so a wrong value, a
missing file or an unreachable chain surfaces as one `StartupError` line instead of a traceback
from deep inside a round.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from threadpoolctl import threadpool_limits

from incentive.chain import ChainUnavailable, connect
from incentive.keys import KeyFileError, load_key
from incentive.ledger import Ledger
from p2p.host import HostConfig, SwarmHost
from p2p.identity import IdentityError

from .chainwriter import ChainWriter, Patience
from .config import NodeConfig
from .datasets import DataError, load_node_data
from .engine import SwarmNode
from .learner import Learner
from . import warmup

if TYPE_CHECKING:
    from web3 import Web3


class StartupError(RuntimeError):
    """The node cannot start; the message is meant for the operator, in one line."""


def build_node(config: NodeConfig, w3: Web3 | None = None) -> SwarmNode:
    """A ready-to-run node; `w3` lets several in-process nodes share one eth-tester chain."""
    torch.set_num_threads(1)  # several nodes share the machine's cores: one thread each keeps them fair
    # numpy's BLAS too: its threads spin while they wait, and with 8 nodes on 2 cores the
    # contribution rule's Gram matrix took 5x its one-thread time (scripts.bench.systems, 1M model)
    threadpool_limits(limits=1, user_api="blas")
    if config.dp.epsilon > 0:
        warmup.start()  # Opacus's torch optimiser imports torch._dynamo: while the node reads data, joins and dials
    try:
        data = load_node_data(config.data)
    except (DataError, ValueError, OSError) as exc:
        raise StartupError(f"data: {exc}") from None
    learner = Learner(config, data)
    if not config.chain.contract:
        raise StartupError("chain.contract: no contract address configured (deploy one with `medswarm deploy`)")
    try:
        w3 = w3 or connect(config.chain.url)
    except ChainUnavailable as exc:
        raise StartupError(f"chain: {exc}") from None
    try:
        account = load_key(Path(config.chain.key_file))
    except KeyFileError as exc:
        raise StartupError(f"chain.key_file: {exc}") from None
    try:
        ledger = Ledger(w3, config.chain.contract, account)
    except ValueError as exc:
        raise StartupError(f"chain.contract: {exc}") from None
    try:
        host = SwarmHost(
            HostConfig(key_file=Path(config.p2p.key_file), listen=config.p2p.listen,
                       bootstrap=config.p2p.bootstrap, mdns=config.p2p.mdns, swarm=config.p2p.swarm,
                       fetch_timeout=config.p2p.fetch_timeout),
            name=config.name)
    except IdentityError as exc:
        raise StartupError(f"p2p.key_file: {exc}") from None
    return SwarmNode(config, learner, host, ledger, ChainWriter(config.name, Patience(config.chain.outage_seconds)).start())
