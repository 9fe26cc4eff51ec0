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
