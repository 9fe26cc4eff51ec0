"""Config parsing: defaults, overrides, and one clear error per kind of mistake."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from node.config import ConfigError, config_from_mapping, dump_config, load_config


def test_overrides_apply_and_round_trip_through_toml() -> None:
    config = config_from_mapping(
        {"name": "cleveland", "swarm": {"rounds": 3}},
        ["data.hospital=Hungary", "swarm.merge=median", 'p2p.bootstrap=["/ip4/127.0.0.1/tcp/1"]',
         "dp.epsilon=3", "dp.accountant=prv"])
    assert (config.dp.epsilon, config.dp.accountant, config.dp.delta) == (3.0, "prv", 0.0)
    assert config.data.hospital == "Hungary"
    assert config.swarm.merge == "median"
    assert config.swarm.rounds == 3
    assert config.p2p.bootstrap == ("/ip4/127.0.0.1/tcp/1",)
    assert config_from_mapping(tomllib.loads(dump_config(config))) == config


@pytest.mark.parametrize("overrides, message", [
    (["swarm.rounds=0"], "swarm.rounds: must be positive"),
    (["swarm.merge=average"], "swarm.merge: 'average' is not one of"),
    (["swarm.bogus=1"], "unknown setting swarm.bogus"),
    (["training.lr=fast"], "training.lr: expected a number"),
    (["swarm.rounds=2.5"], "swarm.rounds: expected an integer"),
    (["data.hospital=Boston"], "data.hospital: 'Boston' is not one of"),
    (["p2p.mdns=1"], "p2p.mdns: expected true or false"),
    (["rounds"], "expected section.key=value"),
    (["data.dataset=csv"], "data.csv_path: required"),
    (["model.channels=0"], "model.channels: must be positive"),
    (["model.channels=65"], "model.channels: must be at most 64"),
    (["training.personalise_epochs=-1"], "training.personalise_epochs: must not be negative"),
    (["swarm.merge=best"], "swarm.merge: 'best' ranks models on a published validation set"),
    (["dp.epsilon=-1"], "dp.epsilon: must not be negative"),
    (["dp.delta=1.5"], "dp.delta: must lie in"),
    (["dp.max_grad_norm=0"], "dp.max_grad_norm: must be positive"),
    (["dp.accountant=gdp"], "dp.accountant: 'gdp' is not one of"),
    (["dp.noise_multiplier=-0.5"], "dp.noise_multiplier: must not be negative"),
    (["swarm.compression=zip"], "swarm.compression: 'zip' is not one of"),
    (["swarm.compression_fraction=0"], "swarm.compression_fraction: must lie in (0, 1]"),
    (["swarm.compression_fraction=1.5"], "swarm.compression_fraction: must lie in (0, 1]"),
    (["swarm.compression=ternary"], "swarm.compression: ternary updates need a merge rule that keeps whole vectors"),
    (["swarm.compression=topk", "swarm.merge=trimmed"], "swarm.compression: topk updates need"),
    (["swarm.exchange_all_up_to=0"], "swarm.exchange_all_up_to: must lie in 1..255"),
    (["swarm.exchange_all_up_to=256"], "swarm.exchange_all_up_to: must lie in 1..255"),
    (["swarm.partners=-1"], "swarm.partners: must lie in 0..63"),
    (["swarm.partners=64"], "swarm.partners: must lie in 0..63"),
    (["swarm.groups=0"], "swarm.groups: must be positive"),
    (["p2p.fetch_try=0"], "p2p.fetch_try: must be positive"),
    (["swarm.groups=65"], "swarm.groups: at most 64"),
    (["swarm.groups=2", "swarm.rounds=1"], "swarm.groups: groups form from round 1's updates"),
    (["swarm.final_model=first"], "swarm.final_model: 'first' is not one of 'last', 'best_val'"),
    (["swarm.statistics=median"], "swarm.statistics: 'median' is not one of 'robust', 'pooled'"),
    (["swarm.group_count=auto"], "swarm.group_count: 'auto' is not one of 'fixed', 'silhouette'"),
    (["training.local_steps=-1"], "training.local_steps: must not be negative"),
    (["training.local_steps=2.5"], "training.local_steps: expected an integer"),
    (["training.local_steps=13", "dp.epsilon=3"], "training.local_steps: DP-SGD"),
    (["data.validation_fraction=-0.1"], "data.validation_fraction: must lie in .0, 0.9. .0: every training row trains"),
    (["data.validation_fraction=0.9"], "data.validation_fraction: must lie in .0, 0.9. .0: every training row trains"),
    (["data.validation_fraction=0", "swarm.final_model=best_val"], "swarm.final_model: 'best_val' chooses by"),
])
def test_wrong_values_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        config_from_mapping({"name": "n"}, overrides)


def test_missing_name_is_reported() -> None:
    with pytest.raises(ConfigError, match="missing setting name"):
        config_from_mapping({})


def test_file_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('name = "a"\noutput_dir = "out"\n[p2p]\nkey_file = "keys/p2p.key"\n'
                    '[chain]\nvalidation_file = "sponsor/validation.npz"\n')
    config = load_config(path)
    assert config.output_dir == str(tmp_path / "out")
    assert config.p2p.key_file == str(tmp_path / "keys" / "p2p.key")
    assert config.chain.validation_file == str(tmp_path / "sponsor" / "validation.npz")


@pytest.mark.parametrize("body, message", [
    ("[training]\nlr = nan\n", "training.lr: expected a finite number, got nan"),
    ("[training]\nlr = inf\n", "training.lr: expected a finite number"),
    ("[swarm]\nstats_timeout = -inf\n", "swarm.stats_timeout: expected a finite number"),
    ("[swarm]\nattack_factor = nan\n", "swarm.attack_factor: expected a finite number"),
    ("[data]\nalpha = 1" + "0" * 400 + "\n", "data.alpha: expected a finite number"),
    ("[training]\nlr = 1e300\n", "training.lr: must be at most 10"),
    ("[swarm]\nrounds = 1000000000000000000000000000000\n", "swarm.rounds: 1000000000000000000000000000000 is out"),
    ("[training]\nbatch_size = -99999999999\n", "training.batch_size: -99999999999 is out of range"),
    ("[data]\nseed = -1\n", "data.seed: must not be negative"),
    ("[model]\nhidden = 100000\n", "model.hidden: must be at most 4096"),
    ("[p2p]\nbootstrap = " + "[" * 100_000 + "\n", "nested too deeply"),
])
def test_bad_values_in_a_file_are_one_line(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "node.toml"
    path.write_text('name = "n"\n' + body)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as err:
        load_config(path)
    assert "\n" not in str(err.value) and len(str(err.value)) < 300


def test_unreadable_files_are_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b'name = "n"\n\xff\xfe\x00junk')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        load_config(binary)
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(tmp_path)  # a directory
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"#" * (2**20 + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load_config(huge)


def test_hostile_overrides_end_in_one_short_line() -> None:
    for text in ["swarm.rounds=" + "[" * 50_000, "x" * 10_000, "swarm.rounds=" + "9" * 5000]:
        with pytest.raises(ConfigError) as err:
            config_from_mapping({"name": "n"}, [text])
        assert "\n" not in str(err.value) and len(str(err.value)) < 200
    with pytest.raises(ConfigError, match="expected a table") as err:
        config_from_mapping({"name": "n"}, ["swarm=" + "1" * 500])
    assert len(str(err.value)) < 200


def test_an_integer_too_long_to_convert_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('name = "x"\n[swarm]\nrounds = ' + "9" * 5000 + "\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)
