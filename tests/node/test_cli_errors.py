"""Operator mistakes end with one clear line on stderr and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "node.toml"
    path.write_text('name = "cleveland"\n' + body)
    return path


@pytest.mark.parametrize("body, message", [
    ("[swarm]\nrounds = -1\n", "swarm.rounds: must be positive"),
    ("[swarm]\nmerge = 'avg'\n", "swarm.merge: 'avg' is not one of"),
    ("[data]\ndataset = 'csv'\ncsv_path = 'missing.csv'\n", "data file not found"),
    ("[chain]\ncontract = ''\n", "no contract address configured"),
    ("[chain]\nurl = 'http://127.0.0.1:9'\ncontract = '0x" + "1" * 40 + "'\n",
     "cannot reach an Ethereum JSON-RPC endpoint at http://127.0.0.1:9"),
    ("[chain]\nurl = 'ftp://chain'\ncontract = '0x" + "1" * 40 + "'\n", "unsupported chain URL"),
    ("[chain]\nurl = 'eth-tester'\ncontract = '0x" + "1" * 40 + "'\nkey_file = 'absent.key'\n",
     "chain.key_file: key file"),
])
def test_bad_node_config_gives_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                        body: str, message: str) -> None:
    code = main(["node", "--config", str(_write(tmp_path, body))])
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert code == 2
    assert last.startswith("medswarm: ") and message in last
    assert "Traceback" not in err


def test_missing_config_file_as_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "node.cli", "node", "--config", str(tmp_path / "nope.toml")],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == f"medswarm: config file {tmp_path / 'nope.toml'} does not exist"


def test_bad_swarm_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["swarm", "--nodes", "5"]) == 2
    assert "the heart data set has 4 hospitals" in capsys.readouterr().err
    assert main(["swarm", "--attack", "three=scale"]) == 2
    assert "expected NODE_INDEX=KIND" in capsys.readouterr().err
    assert main(["swarm", "--validation", "v.npz"]) == 2
    assert "a validation set is the referee's" in capsys.readouterr().err
    assert main(["swarm", "--referee", "--validation", "absent.npz"]) == 2
    assert "validation set absent.npz: no such file" in capsys.readouterr().err


UNREACHABLE = "http://127.0.0.1:9"
ADDRESS = "0x" + "1" * 40


@pytest.mark.parametrize("argv, message", [
    (["deploy", "--rpc", "eth-tester", "--admin-key", "{tmp}/absent.key"], "key file {tmp}/absent.key cannot be read"),
    (["deploy", "--rpc", UNREACHABLE, "--dev-admin"], f"cannot reach an Ethereum JSON-RPC endpoint at {UNREACHABLE}"),
    (["deploy", "--rpc", "eth-tester", "--dev-admin", "--members", "{tmp}/absent.json"],
     "members file {tmp}/absent.json cannot be read"),
    (["deploy", "--rpc", "eth-tester", "--dev-admin", "--members", "{tmp}/members.json"], "member #0 lacks ['peer_id']"),
    (["deploy", "--rpc", "eth-tester", "--dev-admin", "--validation-file", "{tmp}/absent.npz"],
     "validation set {tmp}/absent.npz: no such file"),
    (["audit", "--rpc", UNREACHABLE, "--address", ADDRESS], f"cannot reach an Ethereum JSON-RPC endpoint at {UNREACHABLE}"),
    (["audit", "--rpc", "eth-tester", "--address", ADDRESS], f"no contract at {ADDRESS} on chain"),
    (["audit", "--rpc", "eth-tester", "--address", "0xnope"], "'0xnope' is not an Ethereum address"),
    (["audit", "--rpc", "eth-tester", "--address", ADDRESS, "--expect", "{tmp}/absent.json"],
     "--expect {tmp}/absent.json: No such file or directory"),
])
def test_deploy_and_audit_mistakes_give_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 argv: list[str], message: str) -> None:
    (tmp_path / "members.json").write_text('[{"address": "0x' + "2" * 40 + '", "name": "x"}]')
    code = main([arg.format(tmp=tmp_path) for arg in argv])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err.startswith("medswarm: ") and captured.err.count("\n") == 1
    assert message.format(tmp=tmp_path) in captured.err
