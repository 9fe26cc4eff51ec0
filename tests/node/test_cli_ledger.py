"""`medswarm deploy` then `medswarm audit` on anvil, and the thin scripts in front of the CLI.

(Operator mistakes with deploy and audit are in test_cli_errors.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from eth_account import Account

from incentive.anvil import Anvil, ToolMissing, anvil_binary
from incentive.chain import connect, dev_keys
from incentive.keys import write_key
from incentive.ledger import Ledger, PrivacyTerms
from node.cli import main
from node.scenarios import PublishedSet, write_published_set

ROOT = Path(__file__).resolve().parents[2]

try:
    anvil_binary()
    NO_ANVIL = ""
except ToolMissing as exc:
    NO_ANVIL = str(exc)


@pytest.mark.anvil
@pytest.mark.skipif(bool(NO_ANVIL), reason=NO_ANVIL or "anvil present")
def test_deploy_then_audit_a_round(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Anvil() as chain:
        w3 = connect(chain.url)
        keys = dev_keys(w3, 5)
        admin_key = tmp_path / "admin.key"
        write_key(admin_key, keys[0])
        nodes = [Account.from_key(k) for k in keys[1:5]]
        members = tmp_path / "members.toml"
        members.write_text("".join(f'[[member]]\naddress = "{a.address}"\npeer_id = "12D3KooWP{i}"\nname = "h{i}"\n'
                                   for i, a in enumerate(nodes)))
        out = tmp_path / "deployed.json"
        published = PublishedSet(np.ones((3, 2), np.float32), np.array([0, 1, 1]))
        write_published_set(tmp_path / "validation.npz", published)
        assert main(["deploy", "--rpc", chain.url, "--admin-key", str(admin_key), "--members", str(members),
                     "--quorum", "3", "--fund", "1000", "--epsilon", "3", "--noise-multiplier", "1.1",
                     "--validation-file", str(tmp_path / "validation.npz"), "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert keys[0][2:] not in printed and keys[0][2:] not in out.read_text()
        info = json.loads(out.read_text())
        assert info == {"address": info["address"], "task_id": 1, "chain_id": 31337,
                        "admin": Account.from_key(keys[0]).address, "members": 4, "pool": 1000}
        assert printed == f"ledger {info['address']} on chain 31337: 4 members registered, task 1 created, pool 1000 wei\n"

        ledgers = [Ledger(w3, info["address"], a) for a in nodes]
        task = info["task_id"]
        assert ledgers[0].task(task).privacy == PrivacyTerms(3.0, noise_multiplier=1.1)
        assert ledgers[0].task(task).validation_digest == published.digest  # the sponsor's set, by its hash
        for i, lg in enumerate(ledgers):
            lg.commit(task, 1, "0x" + f"{i + 1:064x}", epsilon=0.5 * (i + 1))
        everyone = [a.address for a in nodes]
        for lg in ledgers:  # the last vote, the winner's, finalizes the round
            lg.vote(task, 1, everyone, [1000 * (j + 1) for j in range(4)], model=None)
        assert ledgers[0].round_state(task, 1).outcome.status == "credited"
        contributions = {a.address: ledgers[0].contribution(task, a.address) for a in nodes}
        expect = tmp_path / "expect.json"
        expect.write_text(json.dumps({"contributions": {str(task): contributions}}))
        report = tmp_path / "audit.json"
        assert main(["audit", "--rpc", chain.url, "--address", info["address"], "--json", str(report),
                     "--expect", str(expect)]) == 0
        table = capsys.readouterr().out
        assert table.strip().endswith("audit OK: events, recomputation and contract state agree")
        assert "privacy budget epsilon 3 per member" in table and "   2.000" in table
        assert json.loads(report.read_text())["ok"] is True

        contributions[nodes[0].address] += 5
        expect.write_text(json.dumps({"contributions": {str(task): contributions}}))
        assert main(["audit", "--rpc", chain.url, "--address", info["address"], "--expect", str(expect)]) == 1
        assert "MISMATCH expected contribution" in capsys.readouterr().out
    assert main(["audit", "--rpc", chain.url, "--address", info["address"]]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"medswarm: cannot reach an Ethereum JSON-RPC endpoint at {chain.url}") and err.count("\n") == 1


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: the checkout under test, not whichever copy of the packages the venv installed
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, f"scripts/{name}.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", ["swarm", "deploy", "audit"])
def test_thin_scripts_are_the_cli(name: str) -> None:
    result = _script(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: medswarm {name}")


def test_audit_script_with_an_unreachable_chain_gives_one_line() -> None:
    result = _script("audit", "--rpc", "http://127.0.0.1:9", "--address", "0x" + "1" * 40)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("medswarm: cannot reach an Ethereum JSON-RPC endpoint at http://127.0.0.1:9")
    assert result.stderr.count("\n") == 1
