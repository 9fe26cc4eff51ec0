"""The same lifecycle once on anvil; cast (an independent client) agrees with the audit."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from incentive.anvil import Anvil, ToolMissing, anvil_binary, cast_binary
from incentive.audit import audit
from incentive.chain import connect
from incentive.errors import AlreadyFinalized, UnknownTask

from ledger_fixtures import make_deployment, run_round

try:
    anvil_binary()
    cast_binary()
    MISSING = ""
except ToolMissing as exc:
    MISSING = str(exc)

pytestmark = [pytest.mark.anvil, pytest.mark.skipif(bool(MISSING), reason=MISSING or "ok")]

SCORES = {0: {1: 8000, 2: 6000, 3: 7000}, 1: {0: 9000, 2: 6500, 3: 7200}, 2: {0: 8800, 1: 7900, 3: 7100},
          3: {0: 9100, 1: 8100, 2: 6100}}


def cast(*args: str) -> str:
    out = subprocess.run([str(cast_binary()), *args], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def test_lifecycle_on_anvil_cast_agrees_with_audit(tmp_path):
    with Anvil() as chain:
        dep = make_deployment(chain.url)
        task = dep.new_task(quorum=3, fund=10**18 + 3)
        run_round(dep, task, 1, SCORES)
        run_round(dep, task, 2, SCORES)
        # reverts arrive from anvil as hex data and decode to the same classes as on eth-tester
        with pytest.raises(AlreadyFinalized) as e:
            dep.outsider.finalize(task, 2)
        assert e.value.values == {"taskId": task, "round": 2}
        with pytest.raises(UnknownTask):
            dep.outsider.task(999)
        dep.admin.close_task(task)
        paid = [m.withdraw(task) for m in dep.members]
        dust = dep.admin.claim_dust(task) if dep.admin.task(task).dust else 0
        assert sum(paid) + dust == 10**18 + 3

        report = audit(dep.w3, dep.admin.address)
        assert report.ok, report.format_table()

        # cast reads a member's contribution straight from the chain
        member = dep.addr(1)
        got = cast("call", dep.admin.address, "contribution(uint256,address)(uint256)", str(task), member,
                   "--rpc-url", chain.url)
        assert int(got.split()[0]) == report.tasks[task].contributions[member] == dep.admin.contribution(task, member)

        # ... and the round events
        logs = json.loads(cast("logs", "--from-block", "0", "--address", dep.admin.address,
                               "RoundFinalized(uint256 indexed,uint32 indexed,address indexed,address[],uint256[],bool)",
                               "--json", "--rpc-url", chain.url))
        assert len(logs) == 2
        for log in logs:
            rnd = int(log["topics"][2], 16)
            decoded = cast("decode-abi", "--input", "f(address[],uint256[],bool)", log["data"])
            lines = decoded.splitlines()
            committers = [a.strip() for a in lines[0].strip("[]").split(",")]
            credits = [int(c.strip().split()[0]) for c in lines[1].strip("[]").split(",")]
            from_cast = {c.lower(): v for c, v in zip(committers, credits)}
            from_audit = {m.lower(): v for m, v in report.rounds[(task, rnd)].credits.items()}
            assert from_cast == from_audit


def test_state_file_persists_and_stop_leaves_no_process(tmp_path):
    state = tmp_path / "chain.json"
    chain = Anvil(state_file=state, chain_id=4242).start()
    pid = chain.pid
    try:
        w3 = connect(chain.url)
        dep = make_deployment(chain.url, n_members=2)
        address = dep.admin.address
    finally:
        chain.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert state.exists()
    with Anvil(state_file=state, chain_id=4242) as again:
        w3 = connect(again.url)
        assert w3.eth.chain_id == 4242
        assert len(w3.eth.get_code(address)) > 0
        assert audit(w3, address).ok


def _load_script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_script_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deploy_and_audit_scripts(tmp_path, capsys):
    from eth_account import Account

    from incentive.chain import dev_keys
    from incentive.keys import write_key
    from incentive.ledger import Ledger

    deploy, audit_script = _load_script("deploy"), _load_script("audit")
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
        assert deploy.main(["--rpc", chain.url, "--admin-key", str(admin_key), "--members", str(members),
                            "--quorum", "3", "--fund", "1000", "--out", str(out)]) == 0
        printed = capsys.readouterr().out
        assert keys[0][2:] not in printed and keys[0][2:] not in out.read_text()
        info = json.loads(out.read_text())
        ledgers = [Ledger(w3, info["address"], a) for a in nodes]
        task = info["task_id"]
        for i, lg in enumerate(ledgers):
            lg.commit(task, 1, "0x" + f"{i + 1:064x}")
        for i, lg in enumerate(ledgers):
            peers = [a.address for j, a in enumerate(nodes) if j != i]
            lg.submit_scores(task, 1, peers, [1000 * (i + 1)] * 3)
        ledgers[0].finalize(task, 1)
        contributions = {a.address: ledgers[0].contribution(task, a.address) for a in nodes}
        expect = tmp_path / "expect.json"
        expect.write_text(json.dumps({"contributions": {str(task): contributions}}))
        report = tmp_path / "audit.json"
        assert audit_script.main(["--rpc", chain.url, "--address", info["address"], "--json", str(report),
                                  "--expect", str(expect)]) == 0
        assert "audit OK" in capsys.readouterr().out
        assert json.loads(report.read_text())["ok"] is True
        contributions[nodes[0].address] += 5
        expect.write_text(json.dumps({"contributions": {str(task): contributions}}))
        assert audit_script.main(["--rpc", chain.url, "--address", info["address"], "--expect", str(expect)]) == 1
        assert "MISMATCH expected contribution" in capsys.readouterr().out
    assert audit_script.main(["--rpc", chain.url, "--address", info["address"]]) == 2
