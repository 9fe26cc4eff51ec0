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

from incentive.ledger import lanes

from ledger_fixtures import honest, make_deployment, run_round

try:
    anvil_binary()
    cast_binary()
    MISSING = ""
except ToolMissing as exc:
    MISSING = str(exc)

pytestmark = [pytest.mark.anvil, pytest.mark.skipif(bool(MISSING), reason=MISSING or "ok")]

ROUND_1 = honest([9000, 8000, 6100, 7100])
ROUND_2 = {**honest([8800, 7900, 6000, 7000]), 3: {0: 0, 1: 0, 2: 0, 3: 10000}}  # member 3 lies


def cast(*args: str) -> str:
    out = subprocess.run([str(cast_binary()), *args], capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def test_lifecycle_on_anvil_cast_agrees_with_audit(tmp_path):
    with Anvil() as chain:
        dep = make_deployment(chain.url)
        task = dep.new_task(quorum=3, fund=10**18 + 3, stake=10**15, slash=10**14)
        for m in dep.members:
            m.bond(task)
        run_round(dep, task, 1, ROUND_1)
        run_round(dep, task, 2, ROUND_2)
        # reverts arrive from anvil as hex data and decode to the same classes as on eth-tester
        with pytest.raises(AlreadyFinalized) as e:
            dep.outsider.finalize(task, 2)
        assert e.value.values == {"taskId": task, "round": 2}
        with pytest.raises(UnknownTask):
            dep.outsider.task(999)
        dep.admin.close_task(task)
        dep.outsider.pay_revenue(task, 10**9 + 1)
        paid = [m.withdraw(task) for m in dep.members]
        dust = dep.admin.claim_dust(task) if dep.admin.task(task).dust else 0
        assert sum(paid) + dust == 10**18 + 3 + 10**14 + 10**9 + 1  # funding, the liar's slash, revenue

        report = audit(dep.w3, dep.admin.address)
        assert report.ok, report.format_table()

        # cast reads a member's contribution, reputation and stake straight from the chain
        member = dep.addr(1)
        rpc = ("--rpc-url", chain.url)
        got = cast("call", dep.admin.address, "contribution(uint256,address)(uint256)", str(task), member, *rpc)
        assert int(got.split()[0]) == report.tasks[task].contributions[member] == dep.admin.contribution(task, member)
        liar = dep.addr(3)
        rep = cast("call", dep.admin.address, "reputation(address)(uint32,uint32,uint32)", liar, *rpc).split()
        assert [int(x) for x in rep] == [report.reputations[liar][k] for k in ("score", "tasks", "offences")]
        stake = cast("call", dep.admin.address, "stakeOf(uint256,address)(bool,uint256,uint256)", str(task), liar,
                     *rpc).splitlines()
        assert int(stake[1].split()[0]) == report.tasks[task].bonds[liar] == 10**15 - 10**14

        # ... and the round events: credits (16-bit lanes by slot), deviants and status
        slots = {m.index: m.address.lower() for m in dep.admin.members()}
        logs = json.loads(cast("logs", "--from-block", "0", "--address", dep.admin.address,
                               "RoundFinalized(uint256 indexed,uint32 indexed,uint8,bytes32,uint256[],uint64,uint64)",
                               "--json", *rpc))
        assert len(logs) == 2
        for log in logs:
            rnd = int(log["topics"][2], 16)
            lines = cast("decode-abi", "--input", "f(uint8,bytes32,uint256[],uint64,uint64)", log["data"]).splitlines()
            assert int(lines[0].split()[0]) == 0  # credited
            words = [int(w.strip().split()[0]) for w in lines[2].strip("[]").split(",")]
            from_cast = {slots[j]: c for j, c in lanes(words).items()}
            rh = report.rounds[(task, rnd)]
            assert from_cast == {m.lower(): c for m, c in rh.credits.items() if c}
            deviants = int(lines[3].split()[0])
            assert sorted(slots[j] for j in range(64) if deviants >> j & 1) == sorted(m.lower() for m in rh.deviants)
        assert report.rounds[(task, 2)].deviants == [liar]


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


def test_the_chain_id_is_asked_for_once_per_connection_and_thread():
    with Anvil() as chain:
        w3 = connect(chain.url)
        manager = w3.provider._request_session_manager
        posts = []
        original = manager.make_post_request
        manager.make_post_request = lambda *a, **kw: posts.append(a) or original(*a, **kw)
        ids = {w3.eth.chain_id for _ in range(5)}
        asked = len(posts)
        assert len(ids) == 1 and asked <= 1  # connect() asked already, in this thread
        numbers = [w3.eth.block_number for _ in range(3)]  # other requests still go to the chain
        assert len(posts) == asked + 3 and numbers == sorted(numbers)
