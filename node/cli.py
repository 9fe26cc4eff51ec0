"""The `medswarm` command: run one hospital's node, or a whole local swarm.

    medswarm node --config node.toml [--set section.key=value ...]
    medswarm swarm [--nodes 4] [--rounds 10] [--merge median] [--in-process] [--out runs/x]

Operator mistakes (a wrong value, a missing file, an unreachable chain) end with one line on
stderr and exit status 2; a run that finishes with an audit mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

import trio

from .config import ConfigError, choices, load_config
from .logs import setup_logging

EXIT_USAGE, EXIT_FAILED = 2, 1


def _node(args: argparse.Namespace) -> int:
    from .checkpoint import CheckpointError
    from .engine import NodeError
    from .runtime import StartupError, build_node

    config = load_config(args.config, args.set)
    setup_logging(config.name, logging.DEBUG if args.verbose else logging.INFO)
    try:
        trio.run(build_node(config).run)
    except (NodeError, CheckpointError, StartupError) as exc:
        raise _OperatorError(str(exc)) from None
    return 0


def _swarm(args: argparse.Namespace) -> int:
    from .launcher import LocalSwarm, SwarmFailed, SwarmPlan

    attacks = {}
    for text in args.attack:
        index, _, kind = text.partition("=")
        if not index.isdigit() or not kind:
            raise _OperatorError(f"--attack {text!r}: expected NODE_INDEX=KIND, e.g. 3=scale")
        attacks[int(index)] = kind
    out = Path(args.out or f"runs/swarm-{time.strftime('%Y%m%d-%H%M%S')}")
    plan = SwarmPlan(nodes=args.nodes, rounds=args.rounds, dataset=args.dataset, partition=args.partition,
                     alpha=args.alpha, model=args.model, merge=args.merge, epochs=args.epochs, lr=args.lr,
                     round_timeout=args.round_timeout, pool_eth=args.pool, seed=args.seed, attacks=attacks,
                     out=out, state_file=Path(args.state) if args.state else None,
                     in_process=args.in_process, node_overrides=tuple(args.set))
    setup_logging("swarm", logging.DEBUG if args.verbose else logging.WARNING)
    try:
        swarm = LocalSwarm(plan, say=lambda line: print(line, flush=True))
    except ValueError as exc:
        raise _OperatorError(str(exc)) from None
    try:
        report = swarm.run()
    except SwarmFailed as exc:
        print(f"medswarm: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        swarm.stop_processes()
        print("interrupted: every node process and the chain were stopped", file=sys.stderr)
        return 130
    print()
    print(report.table())
    print(f"\nreport: {out}/summary.md, {out}/report.json, {out}/accuracy.png")
    return 0 if report.audit_ok else EXIT_FAILED


class _OperatorError(Exception):
    """A mistake the operator can fix; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    from .launcher import SPLITTABLE

    parser = argparse.ArgumentParser(prog="medswarm", description="Peer-to-peer swarm learning for hospitals")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    node = sub.add_parser("node", help="run one hospital's node")
    node.add_argument("--config", required=True, help="the node's TOML file")
    node.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                      help="override a config value (repeatable)")
    node.set_defaults(func=_node)

    swarm = sub.add_parser("swarm", help="run a whole swarm on this machine, end to end")
    swarm.add_argument("--nodes", type=int, default=4,
                       help="node processes (heart: 2 to 4 of its hospitals; breast_cancer: any number of shards)")
    swarm.add_argument("--rounds", type=int, default=10, help="training rounds")
    swarm.add_argument("--dataset", choices=SPLITTABLE, default="heart",
                       help="heart: UCI heart disease split by its real hospitals; breast_cancer: split over nodes")
    swarm.add_argument("--partition", choices=choices()["data.partition"], default="iid",
                       help="how breast_cancer rows are split over nodes")
    swarm.add_argument("--alpha", type=float, default=0.5,
                       help="Dirichlet concentration for --partition dirichlet (smaller: more skewed)")
    swarm.add_argument("--model", choices=choices()["model.kind"], default="mlp", help="model every node trains")
    swarm.add_argument("--merge", choices=choices()["swarm.merge"], default="median",
                       help="rule that merges the round's updates on every node")
    swarm.add_argument("--epochs", type=int, default=1, help="local epochs per round")
    swarm.add_argument("--round-timeout", type=float, default=30.0,
                       help="seconds from a round's first commit until the chain closes it")
    swarm.add_argument("--pool", type=float, default=10.0, help="reward pool in ETH")
    swarm.add_argument("--lr", type=float, default=0.01, help="local learning rate (Adam)")
    swarm.add_argument("--seed", type=int, default=0, help="seed for data splits, model init and training")
    swarm.add_argument("--attack", action="append", default=[], metavar="NODE=KIND",
                       help="make node NODE misbehave: scale, signflip, zero or copy (robustness experiments)")
    swarm.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a node config value on every node")
    swarm.add_argument("--state", help="persist the anvil chain to this file")
    swarm.add_argument("--in-process", action="store_true", help="all nodes in this process, on eth-tester")
    swarm.add_argument("--out", help="report folder (default runs/swarm-<time>)")
    swarm.set_defaults(func=_swarm)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (_OperatorError, ConfigError) as exc:
        print(f"medswarm: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
