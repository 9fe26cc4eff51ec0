"""The `medswarm` command: run a whole local swarm or one hospital's node; deploy or audit a ledger.

    medswarm swarm [--nodes 4 | --data DIR] [--rounds 10] [--merge median] [--in-process] [--out runs/x]
    medswarm swarm --data DIR [--settings FILE|none]   (default: DIR/swarm.toml, the folder's own settings)
    medswarm swarm --scenario ecg-rhythm|ecg-anomaly|evaluation-layer|wearable|ecg-groups [options that override it]
    medswarm node --config node.toml [--set section.key=value ...]
    medswarm evaluate RUN [--csv rows.csv] [--out DIR]     medswarm export RUN --out DIR
    medswarm deploy --rpc URL (--admin-key FILE | --dev-admin) [--members members.json] [--out deployed.json]
    medswarm audit --rpc URL --address 0xLEDGER [--json audit.json] [--expect node-logs.json]

Operator mistakes (a wrong value, a missing file, an unreachable chain) end with one line on
stderr and exit status 2; a swarm run or an audit that finds a mismatch exits with status 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import trio

from .config import SETTINGS_FILE, ConfigError, SwarmConfig, TrainingConfig, choices, load_config, load_settings
from .logs import setup_logging

EXIT_USAGE, EXIT_FAILED = 2, 1
# Settings a `medswarm swarm` option also gives: from a settings file they become that option's
# default, so the option, when given, wins (the rest come before --set, which wins over them).
OPTION_KEYS: dict[str, str] = {"model.kind": "model", "swarm.merge": "merge", "training.lr": "lr",
                               "training.epochs": "epochs", "swarm.rounds": "rounds"}


def _node(args: argparse.Namespace) -> int:
    from .chainduties import NotTakingPart
    from .chainwriter import ChainOutage
    from .checkpoint import CheckpointError
    from .engine import NodeError
    from .runtime import StartupError, build_node

    config = load_config(args.config, args.set)
    setup_logging(config.name, logging.DEBUG if args.verbose else logging.INFO)
    try:
        trio.run(build_node(config).run)
    except BaseException as exc:
        # trio hands a task's failure over inside an exception group; the operator wants one line.
        fault = _first_of(exc, (NodeError, NotTakingPart, CheckpointError, StartupError, ChainOutage))
        if fault is None:
            raise
        raise _OperatorError(f"{fault} (state kept in {config.output_dir}; start again to resume)") from None
    return 0


def _first_of(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> BaseException | None:
    """`exc` itself, or the first exception of `kinds` nested in its exception groups."""
    if isinstance(exc, kinds):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _first_of(inner, kinds)) is not None:
                return found
    return None


def _swarm(args: argparse.Namespace) -> int:
    from .launcher import LocalSwarm, SwarmFailed, SwarmPlan

    attacks = {}
    for text in args.attack:
        index, _, kind = text.partition("=")
        if not index.isdigit() or not kind:
            raise _OperatorError(f"--attack {text!r}: expected NODE_INDEX=KIND, e.g. 3=scale")
        attacks[int(index)] = kind
    out = Path(args.out or f"runs/swarm-{time.strftime('%Y%m%d-%H%M%S')}")
    data = None
    if args.data:
        from .datadir import read_data_dir
        from .datasets import DataError

        try:
            data = read_data_dir(Path(args.data), args.label or "")
        except DataError as exc:
            raise _OperatorError(str(exc)) from None
    plan = SwarmPlan(nodes=len(data.hospitals) if data else args.nodes, rounds=args.rounds, dataset=args.dataset, partition=args.partition,
                     alpha=args.alpha, model=args.model, merge=args.merge, epochs=args.epochs, lr=args.lr,
                     round_timeout=args.round_timeout, pool_eth=args.pool, stake_eth=args.stake,
                     slash_eth=args.slash, referee=args.referee, groups=args.groups, seed=args.seed,
                     attacks=attacks, validation=Path(args.validation) if args.validation else None,
                     out=out, state_file=Path(args.state) if args.state else None,
                     in_process=args.in_process, node_overrides=tuple(args.set), data=data)
    setup_logging("swarm", logging.DEBUG if args.verbose else logging.WARNING)
    if (line := _settings_line(args)) is not None:
        print(line, flush=True)
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
    if report.failed_nodes:
        print(f"medswarm: node(s) {', '.join(report.failed_nodes)} failed; see their node.log in {out}",
              file=sys.stderr)
    return 0 if report.ok else EXIT_FAILED


def _trained(args: argparse.Namespace):
    from .datasets import DataError
    from .trained import RunError, TrainedModel, encoded_rows

    try:
        model = TrainedModel.from_run(Path(args.run))
        x, y, rows = encoded_rows(model, [Path(p) for p in args.csv], args.label or "")
    except (RunError, DataError, OSError) as exc:
        raise _OperatorError(str(exc)) from None
    if model.n_classes != 2:
        raise _OperatorError(f"{args.run}: a {model.n_classes}-class model; evaluate and export check two-class models")
    return model, x, y, rows


def _evaluate(args: argparse.Namespace) -> int:
    from .metrics import binary_metrics, metrics_table, plot_evaluation

    setup_logging("evaluate", logging.DEBUG if args.verbose else logging.WARNING)
    model, x, y, rows = _trained(args)
    try:
        metrics = binary_metrics(y, model.predict_proba(x)[:, 1])
    except ValueError as exc:
        raise _OperatorError(f"{rows}: {exc}") from None
    out = Path(args.out) if args.out else model.source / "evaluation"
    out.mkdir(parents=True, exist_ok=True)
    result = {"model": {"run": str(model.source), "node": model.config.name, "round": model.round,
                        "kind": model.config.model.kind}, "rows": rows, "metrics": metrics}
    (out / "evaluation.json").write_text(json.dumps(result, indent=1) + "\n")
    shown = rows if len(rows) <= 70 else f"{len(args.csv)} CSV files pooled"
    plot_evaluation(y, model.predict_proba(x)[:, 1], f"model of {model.config.name}, round {model.round}, on "
                    f"{shown}: {len(y)} rows", out / "evaluation.png")
    print(f"model of {model.config.name} after round {model.round}, on {rows}:")
    print(metrics_table(metrics))
    print(f"\nwritten: {out}/evaluation.json, {out}/evaluation.png")
    return 0


def _export(args: argparse.Namespace) -> int:
    import numpy as np

    from .trained import RunError

    setup_logging("export", logging.DEBUG if args.verbose else logging.WARNING)
    model, x, y, rows = _trained(args)
    try:
        portable = model.export(Path(args.out))
    except RunError as exc:
        raise _OperatorError(str(exc)) from None
    node, exported = model.predict_proba(x), portable.predict_proba(x)
    same = np.array_equal(node.argmax(axis=1), exported.argmax(axis=1))
    gap = float(np.abs(node - exported).max()) if len(x) else 0.0
    print(f"exported the model of {model.config.name} after round {model.round} to {args.out} "
          f"(model.json + model.npz; load with node/portable.py, numpy only)")
    print(f"check on {len(x)} rows ({rows}): same predicted class {'on every row' if same else 'NOT on every row'}; "
          f"largest probability difference {gap:.1e}")
    return 0 if same and gap < 1e-5 else EXIT_FAILED


def _deploy(args: argparse.Namespace) -> int:
    from eth_account import Account

    from incentive.chain import ChainUnavailable, connect, dev_keys
    from incentive.deploy import TaskPlan, deploy_ledger, read_members
    from incentive.errors import LedgerError
    from incentive.keys import KeyFileError, load_key
    from incentive.ledger import ExchangeTerms, PrivacyTerms

    setup_logging("deploy", logging.DEBUG if args.verbose else logging.WARNING)
    validation_digest = args.validation_digest
    if args.validation_file:
        from .scenarios import read_published_set

        try:
            validation_digest = read_published_set(Path(args.validation_file)).digest
        except ValueError as exc:
            raise _OperatorError(str(exc)) from None
    privacy = None if not args.epsilon else PrivacyTerms(args.epsilon, args.delta, args.noise_multiplier,
                                                         args.max_grad_norm, args.accountant)
    task = None if args.no_task else TaskPlan(args.quorum, args.model_id, args.round_duration, args.fund,
                                              stake=args.stake, slash=args.slash, referee=args.referee,
                                              validation_digest=validation_digest, privacy=privacy,
                                              exchange=ExchangeTerms(args.codec, args.compression_fraction,
                                                                     args.exchange_all_up_to, args.partners))
    try:  # MembersFileError is a ValueError, as are web3's complaints about an address
        w3 = connect(args.rpc)
        admin = Account.from_key(dev_keys(w3, 1)[0]) if args.dev_admin else load_key(args.admin_key)
        members = read_members(args.members) if args.members else ()
        deployed = deploy_ledger(w3, admin, members, task)
    except (ChainUnavailable, KeyFileError, ValueError, LedgerError) as exc:
        raise _OperatorError(str(exc)) from None
    print(f"ledger {deployed.address} on chain {deployed.chain_id}: {deployed.members} members registered"
          + (f", task {deployed.task_id} created, pool {deployed.pool} wei" if deployed.task_id else ""))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(asdict(deployed), indent=1) + "\n")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from incentive.audit import LedgerNotFound, audit
    from incentive.chain import ChainUnavailable, connect

    # audit() logs each mismatch as a warning; the table below lists them all anyway
    setup_logging("audit", logging.DEBUG if args.verbose else logging.ERROR)
    expectations = _read_json(args.expect, "--expect") if args.expect else None
    try:
        w3 = connect(args.rpc)
        report = audit(w3, args.address, expectations=expectations, from_block=args.from_block, window=args.window)
    except (ChainUnavailable, LedgerNotFound) as exc:
        raise _OperatorError(str(exc)) from None
    print(report.format_table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json() + "\n")
    return 0 if report.ok else EXIT_FAILED


def _read_json(path: Path, option: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise _OperatorError(f"{option} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise _OperatorError(f"{option} {path} is not valid JSON: {exc}") from None


class _OperatorError(Exception):
    """A mistake the operator can fix; printed as one line."""


def _group_count(text: str) -> int | str:
    """`--groups`: a count of groups, or "auto" (node.grouping.AUTO_GROUPS)."""
    from .grouping import AUTO_GROUPS

    if text == AUTO_GROUPS:
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError(f"expected a count of at least 1 or {AUTO_GROUPS!r}, got {text!r}")
    return count


def build_parser(scenario: str | None = None, defaults: dict[str, Any] | None = None) -> argparse.ArgumentParser:
    """The command line; with a `scenario`, `medswarm swarm` defaults to that scenario's settings,
    then to `defaults` (a settings file's option values, `swarm_settings`)."""
    from .datasets import SPLITTABLE  # not node.launcher: `medswarm node` never imports the launcher
    from .scenarios import SCENARIOS

    parser = argparse.ArgumentParser(prog="medswarm", description="Peer-to-peer swarm learning for hospitals")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    node = sub.add_parser("node", help="run one hospital's node")
    node.add_argument("--config", required=True, help="the node's TOML file")
    node.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                      help="override a config value (repeatable)")
    node.set_defaults(func=_node)

    swarm = sub.add_parser("swarm", help="run a whole swarm on this machine, end to end")
    swarm.add_argument("--scenario", choices=tuple(SCENARIOS),
                       help="one of the seed's clinical scenarios; its settings come before the options given here")
    swarm.add_argument("--nodes", type=int, default=4,
                       help="node processes (heart: 2 to 4 of its hospitals; breast_cancer: any number of shards)")
    swarm.add_argument("--rounds", type=int, default=10, help="training rounds")
    swarm.add_argument("--dataset", choices=SPLITTABLE, default="heart",
                       help="heart: UCI heart disease split by its real hospitals; breast_cancer: split over nodes")
    swarm.add_argument("--data", metavar="DIR",
                       help="each hospital's own CSV: DIR holds NAME.csv per hospital (a test share is held out) "
                            "or NAME_train.csv + NAME_test.csv pairs; node names come from the file names")
    swarm.add_argument("--label", help="--data: the label column (default: 'label', else 'target')")
    swarm.add_argument("--settings", metavar="FILE|none",
                       help=f"settings for every node: a TOML file of [data], [model], [training], [dp] and "
                            f"[swarm] tables (default: {SETTINGS_FILE} in the --data folder, if there is one; "
                            "none: the defaults only); options given on the command line win over it")
    swarm.add_argument("--partition", choices=choices()["data.partition"], default="iid",
                       help="how breast_cancer rows are split over nodes")
    swarm.add_argument("--alpha", type=float, default=0.5,
                       help="Dirichlet concentration for --partition dirichlet (smaller: more skewed)")
    swarm.add_argument("--model", choices=choices()["model.kind"], default="mlp", help="model every node trains")
    swarm.add_argument("--merge", choices=choices()["swarm.merge"], default=SwarmConfig.merge,
                       help="rule that merges the round's updates on every node")
    swarm.add_argument("--epochs", type=int, default=1, help="local epochs per round")
    swarm.add_argument("--round-timeout", type=float, default=30.0,
                       help="seconds from a round's first commit until the chain closes it")
    swarm.add_argument("--pool", type=float, default=10.0, help="reward pool in ETH")
    swarm.add_argument("--stake", type=float, default=0.0, help="ETH each member bonds for the task (0: no stake)")
    swarm.add_argument("--slash", type=float, default=0.0,
                       help="ETH taken from a member's bond per proven offence (near-copy, free ride, false vote)")
    swarm.add_argument("--referee", action="store_true",
                       help="also run the sponsor's referee node, whose vote decides rounds the members split")
    swarm.add_argument("--validation", metavar="FILE",
                       help="the sponsor's published validation set (.npz of x and y) for the referee: its digest "
                            "goes on chain, and in a split round it picks which members' vector wins")
    swarm.add_argument("--groups", type=_group_count, default=1, metavar="N|auto",
                       help="group similar sites by their round-1 updates and train one model per group (1: one "
                            "model; auto: as many groups as the updates show, at most nodes/2)")
    swarm.add_argument("--lr", type=float, default=TrainingConfig.lr,
                       help="local learning rate (of training.optimizer: SGD by default)")
    swarm.add_argument("--seed", type=int, default=0, help="seed for data splits, model init and training")
    swarm.add_argument("--attack", action="append", default=[], metavar="NODE=KIND",
                       help="make node NODE misbehave: scale, signflip, zero or copy (robustness experiments)")
    swarm.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                       help="override a node config value on every node")
    swarm.add_argument("--state", help="persist the anvil chain to this file")
    swarm.add_argument("--in-process", action="store_true", help="all nodes in this process, on eth-tester")
    swarm.add_argument("--out", help="report folder (default runs/swarm-<time>)")
    swarm.set_defaults(func=_swarm)
    if scenario is not None:
        swarm.set_defaults(**SCENARIOS[scenario].plan)
    swarm.set_defaults(settings_file=None, settings_applied=(), column_names={}, **(defaults or {}))

    for name, func, text in (("evaluate", _evaluate, "a run's final model on a CSV: clinical metrics as JSON and "
                                                     "ROC / calibration curves as PNG"),
                             ("export", _export, "write a run's model with its preprocessing in a pickle-free "
                                                 "format (docs/model-format.md) and check it predicts as the node")):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("run", help="a node's run folder (or a swarm's run folder: its first node)")
        cmd.add_argument("--csv", action="append", default=[],
                         help="rows to use, in the node's input columns with a label; repeat to pool "
                              "several files (default: the node's own test rows)")
        cmd.add_argument("--label", help="the CSV's label column (default: the node's data.label_column)")
        cmd.add_argument("--out", required=name == "export",
                         help="output folder" + (" (default: RUN/evaluation)" if name == "evaluate" else ""))
        cmd.set_defaults(func=func)

    deploy = sub.add_parser("deploy", help="deploy a ledger, register members, open and fund a task",
                            description="Deploy the MedSwarm ledger, register the members listed in a file, "
                                        "create a task and fund its pool. Keys are read from files (mode 0600), "
                                        "never printed. Prints the contract address and task id.")
    deploy.add_argument("--rpc", required=True, help="JSON-RPC URL (or eth-tester for a dry run)")
    key = deploy.add_mutually_exclusive_group(required=True)
    key.add_argument("--admin-key", type=Path, help="admin private key file (0600)")
    key.add_argument("--dev-admin", action="store_true", help="use the chain's first dev key (dev chains only)")
    deploy.add_argument("--members", type=Path,
                        help="JSON list or TOML [[member]] tables of members (address, peer_id, name)")
    deploy.add_argument("--quorum", type=int, default=2, help="committers a round needs to earn credit")
    deploy.add_argument("--model-id", default="medswarm")
    deploy.add_argument("--round-duration", type=int, default=600, help="seconds from a round's first commit")
    deploy.add_argument("--fund", type=int, default=0, help="wei to put into the pool from the admin account")
    deploy.add_argument("--stake", type=int, default=0, help="wei each member bonds before committing (0: none)")
    deploy.add_argument("--slash", type=int, default=0, help="wei taken from a bond per proven offence (<= stake)")
    deploy.add_argument("--referee", help="address of the sponsor's referee node, whose vote decides split rounds "
                                          "(register it as a member too, so members let it connect)")
    published = deploy.add_mutually_exclusive_group()
    published.add_argument("--validation-digest", help="keccak256 (0x + 64 hex) of the validation set the sponsor "
                                                       "publishes")
    published.add_argument("--validation-file", metavar="FILE",
                           help="the published validation set itself (.npz of x and y): its digest goes on chain")
    deploy.add_argument("--epsilon", type=float, default=0.0,
                        help="the task's DP budget per member (0: none); nodes need [dp] within it (docs/privacy.md)")
    deploy.add_argument("--delta", type=float, default=0.0, help="the task's DP delta (0: 1/n per node)")
    deploy.add_argument("--noise-multiplier", type=float, default=0.0, help="least DP-SGD noise (0: node calibrates)")
    deploy.add_argument("--max-grad-norm", type=float, default=0.0, help="largest clipping norm (0: node's choice)")
    deploy.add_argument("--accountant", choices=("rdp", "prv"), default="rdp")
    deploy.add_argument("--codec", default="f32", help="the updates' wire codec, fixed for the task: f32, f16, q8, "
                                                       "sparse16 or ternary (the nodes' swarm.codec/compression must "
                                                       "give it)")
    deploy.add_argument("--compression-fraction", type=float, default=0.0,
                        help="share of entries the sparse codecs (sparse16, ternary) keep; 0 for the dense ones")
    deploy.add_argument("--exchange-all-up-to", type=int, default=16,
                        help="up to this many members everyone merges every update; above, drawn partners")
    deploy.add_argument("--partners", type=int, default=0, help="partners per member above that (0: ceil(log2 n))")
    deploy.add_argument("--no-task", action="store_true", help="deploy and register only")
    deploy.add_argument("--out", type=Path, help="write {address, task_id, chain_id, ...} as JSON here")
    deploy.set_defaults(func=_deploy)

    audit = sub.add_parser("audit", help="rebuild a ledger's history from its events and check it",
                           description="Audit a MedSwarm ledger from an RPC URL and the contract address alone: "
                                       "print the rebuilt history as a table and exit 1 on any mismatch between "
                                       "events, the audit's own recomputation, the contract's state and the "
                                       "optional expectations file ({\"contributions\": {task: {address: n}}, "
                                       "\"credits\": {task: {round: {address: n}}}}).")
    audit.add_argument("--rpc", required=True, help="JSON-RPC URL of the chain")
    audit.add_argument("--address", required=True, help="the ledger contract's address")
    audit.add_argument("--json", type=Path, help="write the full report as JSON here")
    audit.add_argument("--expect", type=Path, help="JSON expectations (e.g. contributions the nodes logged)")
    audit.add_argument("--from-block", type=int, default=None, help="skip the deploy-block search")
    audit.add_argument("--window", type=int, default=500, help="blocks per log query")
    audit.set_defaults(func=_audit)
    return parser


def settings_file(args: argparse.Namespace) -> tuple[Path | None, dict[str, str]]:
    """The settings file `medswarm swarm` runs with: --settings, else the --data folder's own, else
    that of the shipped split with the folder's columns (node.datadir.shipped_settings), else the
    heart split's for the heart inputs under names of their own (node.datadir.heart_by_position);
    with the folder's column names -> the file's in that last case, else {}."""
    if args.settings is not None:
        return (None if args.settings.lower() == "none" else Path(args.settings)), {}
    if not args.data:
        return None, {}
    own = Path(args.data) / SETTINGS_FILE
    if own.is_file():
        return own, {}
    from .datadir import SHIPPED_SPLITS, heart_by_position, shipped_settings

    if (shipped := shipped_settings(Path(args.data))) is not None:
        return shipped, {}
    heart = SHIPPED_SPLITS[0] / SETTINGS_FILE
    names = heart_by_position(Path(args.data), args.label or "") if heart.is_file() else {}
    return (heart if names else None), names


def translated(settings: Sequence[str], names: dict[str, str]) -> tuple[str, ...]:
    """Settings naming the file's columns, rewritten to name the folder's own (`names`: the folder's
    name -> the file's): the two data settings that name columns, `missing_values` and
    `missing_indicators`."""
    own = {theirs: ours for ours, theirs in names.items()}
    out = []
    for text in settings:
        key, _, raw = text.partition("=")
        if key in ("data.missing_values", "data.missing_indicators"):
            entries = []
            for entry in tomllib.loads(f"v = {raw}")["v"]:
                column, marked, token = entry.partition("=")
                if key == "data.missing_indicators":
                    entries.append(own.get(entry, entry))
                else:  # "COLUMN=TOKEN" names a column; a bare "TOKEN" is missing in every column
                    entries.append(f"{own.get(column, column)}={token}" if marked else entry)
            text = f"{key}={json.dumps(entries)}"
        out.append(text)
    return tuple(out)


def _settings_line(args: argparse.Namespace) -> str | None:
    """The first line of `medswarm swarm`: which settings every node runs with, and why."""
    if args.settings_file:
        why = ""
        if args.column_names:
            named = ", ".join(f"{theirs} is {ours}" for theirs, ours in args.column_names.items())
            why = (f"; {args.data} has no {SETTINGS_FILE} of its own, and its columns hold FLamby's 13 heart "
                   f"inputs in FLamby's order, by every value ({named}): the settings of "
                   f"{args.settings_file.parent.name}, their column names translated; --settings none: the defaults")
        elif args.settings is None and args.settings_file.parent != Path(args.data):
            why = (f"; {args.data} has no {SETTINGS_FILE} of its own and the columns of "
                   f"{args.settings_file.parent.name}, whose settings these are; --settings none: the defaults")
        return f"settings from {args.settings_file} (options given win{why}): {', '.join(args.settings_applied)}"
    if args.data and args.settings is None:
        return f"settings: the defaults ({args.data} has no {SETTINGS_FILE}; --settings FILE gives some)"
    return None


def split_settings(settings: Sequence[str]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """`section.key=value` settings as (defaults of the `medswarm swarm` options they set, the rest)."""
    defaults: dict[str, Any] = {}
    rest = []
    for text in settings:
        key, _, raw = text.partition("=")
        if key in OPTION_KEYS:
            defaults[OPTION_KEYS[key]] = tomllib.loads(f"v = {raw}")["v"]
        else:
            rest.append(text)
    return defaults, tuple(rest)


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line, parsed again on top of a scenario's or a settings file's values: theirs
    first, then the options given."""
    args = build_parser().parse_args(argv)
    if getattr(args, "scenario", None):
        from .scenarios import SCENARIOS

        args = build_parser(args.scenario).parse_args(argv)
        args.set = [*SCENARIOS[args.scenario].node_settings, *args.set]
    elif args.command == "swarm" and (found := settings_file(args))[0] is not None:
        path, names = found
        applied = translated(load_settings(path), names)
        defaults, rest = split_settings(applied)
        args = build_parser(defaults=defaults).parse_args(argv)
        args.set = [*rest, *args.set]
        args.settings_file, args.settings_applied, args.column_names = path, applied, names
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parse(argv)
        return args.func(args)
    except (_OperatorError, ConfigError) as exc:
        print(f"medswarm: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
