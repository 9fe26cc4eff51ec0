"""A node's configuration: a TOML file plus `section.key=value` overrides, validated up front.

Every section is a frozen dataclass. Parsing rejects unknown keys, wrong types and out-of-range
values with a `ConfigError` whose message names the offending key, so `medswarm node` can print
one clear line and exit instead of failing halfway through a round.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range."""


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "heart"  # heart | breast_cancer | csv
    hospital: str = "Cleveland"  # heart: which of the four hospitals
    node_index: int = 0  # breast_cancer: this node's shard
    n_nodes: int = 4  # breast_cancer: how many shards
    partition: str = "iid"  # breast_cancer: iid | dirichlet
    alpha: float = 0.5  # breast_cancer: Dirichlet concentration
    csv_path: str = ""  # csv: the hospital's own file
    label_column: str = "label"  # csv: the label column
    feature_columns: tuple[str, ...] = ()  # csv: the input columns (default: every other column)
    # csv: one-hot columns with their agreed categories, "name=cat1|cat2|..." (same on every node)
    categorical_columns: tuple[str, ...] = ()
    # csv: cell values meaning "missing", besides "", ?, NA, nan, null, none; "column=value" for one
    # column only (e.g. "chol=0": a cholesterol of 0 was not measured)
    missing_values: tuple[str, ...] = ()
    missing_indicators: tuple[str, ...] = ()  # csv: columns that get a 0/1 "column:missing" feature too
    test_csv: str = ""  # csv: the hospital's own test file; then nothing of csv_path is held out for testing
    seed: int = 0  # train/test split and partition seed
    test_fraction: float = 0.25  # share of rows held out for testing (csv: only without test_csv)
    validation_fraction: float = 0.2  # share of training rows held back as validation rows (0: none)


@dataclass(frozen=True)
class ModelConfig:
    kind: str = "mlp"  # logreg | mlp | cnn1d
    hidden: int = 32
    channels: int = 1  # cnn1d: signal channels; a flat row holds them one after another


@dataclass(frozen=True)
class TrainingConfig:
    epochs: int = 1
    # > 0: every round, exactly this many minibatch steps on every node instead of `epochs` passes,
    # so unequal sites do equal work and the mean merge weighs them by rows alone
    # (node.training.train_local); 0: epochs.
    local_steps: int = 0
    batch_size: int = 32
    # Chosen by scripts/bench/quality.py (README "Learning quality"): plain local SGD at 0.1. A
    # fresh local Adam (0.01) takes full-size steps even on sites whose loss is already small, so
    # under label skew the single-class majority outvotes the rest (breast cancer, Dirichlet 0.1:
    # lowest seed 62.7% with Adam, 93.7% with SGD); on the heart hospitals both are alike.
    lr: float = 0.1
    optimizer: str = "sgd"
    weight_decay: float = 0.0
    seed: int = 0
    personalise_epochs: int = 0  # after the swarm: epochs of fine-tuning the output layer on own rows
    lr_schedule: str = "constant"  # constant | cosine: the local learning rate over the rounds
    prox_mu: float = 0.0  # FedProx: weight of the pull towards the round's swarm model (0: off)


@dataclass(frozen=True)
class DpConfig:
    """Record-level differential privacy of local training (DP-SGD, node.dp); off when epsilon is 0."""

    epsilon: float = 0.0  # the node's privacy budget over the whole task; 0 = no DP
    delta: float = 0.0  # 0 = 1/n, n this node's training rows
    noise_multiplier: float = 0.0  # 0 = the smallest that keeps all rounds within `epsilon`
    max_grad_norm: float = 1.0  # per-example gradient clipping norm
    accountant: str = "rdp"  # rdp | prv


@dataclass(frozen=True)
class SwarmConfig:
    rounds: int = 10
    stats_timeout: float = 60.0  # how long to wait for peers' statistics before round 1
    absent_after: int = 2  # rounds without a merged update after which a peer is not waited for...
    absent_wait: float = 0.1  # ...beyond this share of the round's duration
    # mean | median | trimmed | geomedian | best. Trimmed (20% off each end, at least one) is the
    # median for 3-4 nodes and keeps the minority sites' updates with more (node.merge.trimmed).
    merge: str = "trimmed"
    # How the swarm-wide input scaling combines the nodes' statistics (node.preprocess.STATISTICS):
    # robust (medians: a minority of lying members cannot steer it) | pooled (exact sums: every row
    # counts once, as in central training; one member's claims move it arbitrarily)
    statistics: str = "robust"
    optimizer: str = "none"  # how the merged update moves the model (node.swarmopt): none | momentum | adam | yogi
    server_lr: float = 0.0  # the swarm optimiser's step size; 0: its own default
    # The model a run ends with (node.selection): last | best_val, the round's model of lowest pooled
    # validation loss. Last: on held-out validation rows it was lower in 26 of 26 heart settings with
    # 10 validation splits (scripts/bench/quality.py, README "The final model"); best_val's pick of
    # one round on a few dozen validation rows is mostly noise, and a missed report splits bundles.
    final_model: str = "last"
    reputation_weight: bool = False  # weighted merges (mean) scale each sender by its on-chain reputation
    contribution: str = "checkable"  # the swarm-wide, checkable score vote (node.contribution.CONTRIBUTIONS)
    codec: str = "f32"  # f32 | f16
    privacy: str = "none"  # the update pipeline's privacy stage (node.pipeline.PRIVACY)
    compression: str = "none"  # the update pipeline's compression stage (node.pipeline.COMPRESSION)
    compression_fraction: float = 0.01  # topk | ternary: share of each tensor's entries sent per round
    exchange_all_up_to: int = 16  # up to this many training members every node merges every update...
    partners: int = 0  # ...above it, each merges with this many chain-drawn peers (0: ceil(log2 n))
    seed: int = 0  # shared by every node: the initial model
    attack: str = "none"  # a hostile behaviour from node.attacks, for robustness experiments only
    attack_factor: float = 100.0
    attack_partners: tuple[str, ...] = ()  # names of the members a `collude` node favours
    # > 1: from round 2 each node merges only its group's updates, the groups clustered from
    # round 1's updates alike on every node (node.grouping); 1: one swarm model. The swarm's state
    # holds this many models; with group_count "silhouette" it is the most groups, not the number
    groups: int = 1
    group_count: str = "fixed"  # fixed: exactly `groups` groups | silhouette: as many as the updates show


@dataclass(frozen=True)
class P2PConfig:
    key_file: str = "p2p.key"
    listen: str = "/ip4/127.0.0.1/tcp/0"
    bootstrap: tuple[str, ...] = ()
    mdns: bool = False
    swarm: str = "medswarm"
    fetch_timeout: float = 30.0
    # seconds one source gets to start delivering a blob (plus the blob at 5 MB/s) before the next
    # is asked; more where the nodes' event loops lag (32 node processes on 2 cores)
    fetch_try: float = 5.0


@dataclass(frozen=True)
class ChainConfig:
    url: str = "http://127.0.0.1:8545"
    contract: str = ""
    task_id: int = 1
    key_file: str = "eth.key"
    outage_seconds: float = 300.0  # how long to keep retrying an unreachable chain before giving up
    # The task's referee only: the sponsor's published validation set (.npz of x and y), whose
    # keccak256 must be the task's validationDigest; it decides rounds the members split
    # (node.arbitration). Empty: the data set's own published set, if it has one.
    validation_file: str = ""


@dataclass(frozen=True)
class NodeConfig:
    name: str
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    dp: DpConfig = field(default_factory=DpConfig)
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    p2p: P2PConfig = field(default_factory=P2PConfig)
    chain: ChainConfig = field(default_factory=ChainConfig)
    output_dir: str = "runs/node"

    def resolve(self, base: Path) -> "NodeConfig":
        """Make relative file paths relative to `base` (the config file's folder)."""

        def rel(value: str) -> str:
            return value if not value or Path(value).is_absolute() else str(base / value)

        return dataclasses.replace(
            self,
            data=dataclasses.replace(self.data, csv_path=rel(self.data.csv_path), test_csv=rel(self.data.test_csv)),
            p2p=dataclasses.replace(self.p2p, key_file=rel(self.p2p.key_file)),
            chain=dataclasses.replace(self.chain, key_file=rel(self.chain.key_file),
                                      validation_file=rel(self.chain.validation_file)),
            output_dir=rel(self.output_dir),
        )


def categorical_spec(entries: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Parse `data.categorical_columns` ("name=cat1|cat2|...") into {name: categories}."""
    spec: dict[str, tuple[str, ...]] = {}
    for entry in entries:
        name, sep, cats = entry.partition("=")
        categories = tuple(c.strip() for c in cats.split("|"))
        if not sep or not name.strip() or not all(categories) or len(set(categories)) != len(categories):
            raise ConfigError(f"data.categorical_columns: {_short(entry)} is not name=cat1|cat2|... "
                              "with distinct, non-empty categories")
        if name.strip() in spec:
            raise ConfigError(f"data.categorical_columns: column {name.strip()!r} listed twice")
        spec[name.strip()] = categories
    return spec


@functools.cache
def choices() -> dict[str, tuple[str, ...]]:
    """Allowed values per setting, read from the registries that implement them.

    Imported here, not at the top: the registries pull in torch, and a config can be read and
    checked for mistakes in its own keys and types without it.
    """
    from p2p.codec import CODECS

    from .attacks import ATTACKS
    from .contribution import CONTRIBUTIONS
    from .datasets import DATASETS, HEART_HOSPITALS, PARTITIONS
    from .dp import ACCOUNTANTS
    from .grouping import GROUP_COUNTS
    from .merge import RULES
    from .models import MODEL_KINDS
    from .pipeline import COMPRESSION, PRIVACY
    from .preprocess import STATISTICS
    from .selection import FINAL_MODELS
    from .swarmopt import SWARM_OPTIMIZERS
    from .training import LR_SCHEDULES, OPTIMIZERS

    return {
        "data.dataset": DATASETS,
        "data.hospital": HEART_HOSPITALS,
        "data.partition": PARTITIONS,
        "model.kind": MODEL_KINDS,
        "training.optimizer": OPTIMIZERS,
        "dp.accountant": ACCOUNTANTS,
        "training.lr_schedule": LR_SCHEDULES,
        "swarm.optimizer": tuple(SWARM_OPTIMIZERS),
        "swarm.final_model": tuple(FINAL_MODELS),
        "swarm.merge": tuple(RULES),
        "swarm.statistics": tuple(STATISTICS),
        "swarm.group_count": tuple(GROUP_COUNTS),
        "swarm.contribution": tuple(CONTRIBUTIONS),
        "swarm.codec": CODECS,
        "swarm.privacy": tuple(PRIVACY),
        "swarm.compression": tuple(COMPRESSION),
        "swarm.attack": ATTACKS,
    }


POSITIVE = {
    "data.n_nodes", "data.alpha", "model.hidden", "model.channels", "training.epochs", "training.batch_size",
    "training.lr", "dp.max_grad_norm", "swarm.rounds", "swarm.stats_timeout", "swarm.absent_after", "swarm.groups", "p2p.fetch_timeout", "p2p.fetch_try", "chain.task_id", "chain.outage_seconds",
}


# Sparse compression stages, and the merge rules under which they stall (see _check_ranges).
SPARSE_COMPRESSION = {"topk", "ternary"}
COORDINATE_WISE_MERGES = {"median", "trimmed"}


# Accepted TOML types per setting type; bool is an int in Python, so it is kept out explicitly.
_SCALARS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
}


# Every integer setting is a count, an index or a seed: beyond this it is a typo, and torch or
# numpy would fail with an OverflowError deep inside a round instead of here.
_INT_LIMIT = 2**31 - 1


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    if typing.get_origin(annotation) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of strings, got {_short(value)}")
        return tuple(value)
    accepted, described = _SCALARS[annotation]
    if not isinstance(value, accepted) or (annotation is not bool and isinstance(value, bool)):
        raise ConfigError(f"{key}: expected {described}, got {_short(value)}")
    if annotation is int and not -_INT_LIMIT <= value <= _INT_LIMIT:
        raise ConfigError(f"{key}: {_short(value)} is out of range (at most {_INT_LIMIT} either way)")
    # TOML spells nan and inf, which slip through every later `value <= 0` check, and an integer
    # too large for a float raises OverflowError on conversion; `<=` is False for all three.
    if annotation is float and not abs(value) <= sys.float_info.max:
        raise ConfigError(f"{key}: expected a finite number, got {_short(value)}")
    return annotation(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _build(cls: type, values: Mapping[str, Any], prefix: str) -> Any:
    if not isinstance(values, Mapping):
        raise ConfigError(f"{prefix or 'config'}: expected a table, got {_short(values)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown setting {prefix}{unknown[0]} (known: {', '.join(sorted(fields))})")
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        key = f"{prefix}{name}"
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{key}.")
        else:
            kwargs[name] = _coerce(key, value, hint)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing setting {prefix}{missing[0]}")
    return cls(**kwargs)


NON_NEGATIVE = {"data.seed", "training.seed", "swarm.seed", "data.node_index", "training.weight_decay",
                "training.personalise_epochs", "dp.epsilon", "dp.noise_multiplier", "training.prox_mu",
                "swarm.server_lr", "training.local_steps"}
# Upper bounds where a larger value cannot be meant: the model would not fit in memory, or
# training would diverge to NaN in the first step.
AT_MOST: dict[str, float] = {"model.hidden": 4096, "model.channels": 64, "training.lr": 10.0}


def _check_ranges(config: NodeConfig) -> None:
    def setting(key: str) -> Any:
        section, name = key.split(".")
        return getattr(getattr(config, section), name)

    for key, allowed in choices().items():
        if setting(key) not in allowed:
            raise ConfigError(f"{key}: {setting(key)!r} is not one of {', '.join(map(repr, allowed))}")
    for key in POSITIVE:
        if setting(key) <= 0:
            raise ConfigError(f"{key}: must be positive, got {setting(key)!r}")
    for key in NON_NEGATIVE:
        if setting(key) < 0:
            raise ConfigError(f"{key}: must not be negative, got {setting(key)!r}")
    for key, limit in AT_MOST.items():
        if setting(key) > limit:
            raise ConfigError(f"{key}: must be at most {limit:g}, got {setting(key)!r}")
    if not config.name.strip():
        raise ConfigError("name: must not be empty")
    if not 0.0 <= config.data.validation_fraction < 0.9:
        raise ConfigError("data.validation_fraction: must lie in [0, 0.9) (0: every training row trains)")
    if config.data.validation_fraction == 0 and config.swarm.final_model != "last":
        raise ConfigError(f"swarm.final_model: {config.swarm.final_model!r} chooses by validation loss, and "
                          "data.validation_fraction = 0 keeps no validation rows; hold some back or use \"last\"")
    if not 0.0 < config.swarm.compression_fraction <= 1.0:
        raise ConfigError("swarm.compression_fraction: must lie in (0, 1] (a share of each tensor's entries)")
    if config.swarm.compression in SPARSE_COMPRESSION and config.swarm.merge in COORDINATE_WISE_MERGES:
        # Measured (scripts.bench.compression): each node's top-k positions differ, and a
        # coordinate-wise rule keeps a coordinate only where most nodes sent it: learning stalls.
        raise ConfigError(f"swarm.compression: {config.swarm.compression} updates need a merge rule that keeps "
                          f"whole vectors (geomedian or mean), not {config.swarm.merge}")
    # Both are fixed in the task's terms on chain, as uint8 (node.terms); 64 members at most.
    if not 1 <= config.swarm.exchange_all_up_to <= 255:
        raise ConfigError("swarm.exchange_all_up_to: must lie in 1..255 (a number of members)")
    if not 0 <= config.swarm.partners <= 63:
        raise ConfigError("swarm.partners: must lie in 0..63 (0: ceil(log2 n) partners)")
    if config.swarm.groups > 64:
        raise ConfigError("swarm.groups: at most 64 (a ledger has at most 64 members)")
    if config.swarm.groups > 1 and config.swarm.rounds < 2:
        raise ConfigError("swarm.groups: groups form from round 1's updates, so a grouped swarm needs 2 or more rounds")
    if not 0.0 <= config.swarm.absent_wait <= 1.0:
        raise ConfigError("swarm.absent_wait: must lie between 0 and 1 (a share of the round's duration)")
    if config.training.local_steps and config.dp.epsilon > 0:
        raise ConfigError("training.local_steps: DP-SGD (dp.epsilon > 0) takes the steps its privacy "
                          "accounting fixed per round; set local_steps = 0")
    if not 0.0 <= config.dp.delta < 1.0:
        raise ConfigError("dp.delta: must lie in [0, 1) (0 means 1/n)")
    if config.dp.epsilon > 1000:
        raise ConfigError("dp.epsilon: must be at most 1000 (0 turns DP off)")
    if not 0.0 < config.data.test_fraction < 0.9:
        raise ConfigError("data.test_fraction: must lie between 0 and 0.9")
    if config.data.dataset == "breast_cancer" and not 0 <= config.data.node_index < config.data.n_nodes:
        raise ConfigError(f"data.node_index: must lie in 0..{config.data.n_nodes - 1}")
    if config.data.dataset == "csv" and not config.data.csv_path:
        raise ConfigError("data.csv_path: required when data.dataset = 'csv'")
    from .scenarios import PUBLISHED_SETS

    if config.swarm.merge == "best" and config.data.dataset not in PUBLISHED_SETS:
        raise ConfigError(f"swarm.merge: 'best' ranks models on a published validation set, and data set "
                          f"{config.data.dataset!r} has none (those that do: {', '.join(PUBLISHED_SETS)})")
    categorical_spec(config.data.categorical_columns)


def _parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {_short(text)}: expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw  # a bare word is a string: `--set data.hospital=Hungary`
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise ConfigError(f"override {_short(text)}: {_short(str(exc))}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"override {_short(text)}: nested too deeply") from None
    return key.strip().split("."), value


def config_from_mapping(values: Mapping[str, Any], overrides: Sequence[str] = ()) -> NodeConfig:
    """Build and validate a `NodeConfig` from parsed TOML plus `section.key=value` overrides."""
    merged: dict[str, Any] = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in values.items()}
    for text in overrides:
        path, value = _parse_override(text)
        target = merged
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {text!r}: {part} is not a section")
        target[path[-1]] = value
    config = _build(NodeConfig, merged, "")
    _check_ranges(config)
    return config


MAX_CONFIG_BYTES = 1 * 2**20


def _read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file's tables; ConfigError naming the file (`what` says which kind) for anything else."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{what} file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"{what} file {path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} file {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} file {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        values = tomllib.loads(text)
    except ValueError as exc:  # TOMLDecodeError, or an integer of more digits than Python converts
        raise ConfigError(f"{what} file {path} is not valid TOML: {_short(str(exc))}") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ConfigError(f"{what} file {path} is not valid TOML: nested too deeply") from None
    return values


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> NodeConfig:
    """Read a node's TOML file, apply overrides, validate, and resolve paths against its folder."""
    path = Path(path)
    return config_from_mapping(_read_toml(path, "config"), overrides).resolve(path.resolve().parent)


# A `--data` folder's own settings for every node, if it holds them: what its hospitals agreed for
# these files (`medswarm swarm --data DIR` applies them).
SETTINGS_FILE = "swarm.toml"
# What a swarm-wide settings file may set: what every node shares. Each node's name, folder,
# keys and chain are the launcher's to give.
SHARED_SECTIONS: tuple[str, ...] = ("data", "model", "training", "dp", "swarm")


def load_settings(path: str | Path) -> tuple[str, ...]:
    """A swarm-wide settings file (`medswarm swarm --settings FILE`, or `swarm.toml` in a `--data`
    folder) as `section.key=value` overrides, in file order. ConfigError naming the file for
    anything but tables of SHARED_SECTIONS, or for a key or value a node would refuse."""
    path = Path(path)
    out: list[str] = []
    for section, table in _read_toml(path, "settings").items():
        if section not in SHARED_SECTIONS or not isinstance(table, Mapping):
            raise ConfigError(f"settings file {path}: {section[:60]} is not one of the tables "
                              f"[{'], ['.join(SHARED_SECTIONS)}]")
        for key, value in table.items():
            try:
                out.append(f"{section}.{key}={_toml_value(value)}")
            except TypeError:  # a sub-table or a date: no node setting takes one
                raise ConfigError(f"settings file {path}: {section}.{key[:60]} is not a number, string, "
                                  "boolean or list") from None
    try:  # every key known, every value in range (the data's own columns are checked when read)
        config_from_mapping({"name": "settings", "data": {"dataset": "csv", "csv_path": "settings.csv"}}, out)
    except ConfigError as exc:
        raise ConfigError(f"settings file {path}: {exc}") from None
    return tuple(out)


def dump_config(config: NodeConfig) -> str:
    """Write a config back as TOML (used by the launcher to give each node its file)."""
    lines = [f"name = {_toml_value(config.name)}", f"output_dir = {_toml_value(config.output_dir)}"]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"\n[{f.name}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in dataclasses.asdict(value).items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


__all__ = [
    "ChainConfig", "ConfigError", "DataConfig", "DpConfig", "ModelConfig", "NodeConfig", "P2PConfig",
    "SETTINGS_FILE", "SHARED_SECTIONS", "SwarmConfig", "TrainingConfig", "categorical_spec", "choices", "config_from_mapping",
    "dump_config", "load_config", "load_settings",
]
