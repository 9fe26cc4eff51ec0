"""incentive.deploy: members files in their three forms, and a deployment on eth-tester."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from incentive.chain import connect, dev_keys
from incentive.deploy import MembersFileError, NewMember, TaskPlan, deploy_ledger, read_members
from incentive.ledger import Ledger

ALICE = NewMember("0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "12D3KooWalice", "alice")
BOB = NewMember("0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", "12D3KooWbob", "bob")
ROWS = [{"address": m.address, "peer_id": m.peer_id, "name": m.name} for m in (ALICE, BOB)]


@pytest.mark.parametrize("filename, text", [
    ("members.json", json.dumps(ROWS)),
    ("members.json", json.dumps({"members": ROWS})),
    ("members.toml", "".join(f'[[member]]\naddress = "{r["address"]}"\npeer_id = "{r["peer_id"]}"\n'
                             f'name = "{r["name"]}"\n' for r in ROWS)),
])
def test_members_file_forms(tmp_path: Path, filename: str, text: str) -> None:
    (tmp_path / filename).write_text(text)
    assert read_members(tmp_path / filename) == (ALICE, BOB)


def test_members_file_that_is_not_json(tmp_path: Path) -> None:
    (tmp_path / "members.json").write_text("address = 1\n")
    with pytest.raises(MembersFileError, match="cannot be parsed"):
        read_members(tmp_path / "members.json")


def test_sponsor_funds_the_pool_and_no_task_means_no_pool() -> None:
    w3 = connect("eth-tester")
    admin, sponsor = (Account.from_key(k) for k in dev_keys(w3, 2))
    deployed = deploy_ledger(w3, admin, [ALICE, BOB], TaskPlan(2, "heart-uci-mlp", 600, fund=10**18), sponsor=sponsor)
    ledger = Ledger(w3, deployed.address)
    assert (deployed.task_id, deployed.members, deployed.pool, deployed.admin) == (1, 2, 10**18, admin.address)
    assert ledger.funded(1, sponsor.address) == 10**18 and ledger.funded(1, admin.address) == 0
    assert [m.name for m in ledger.members()] == ["alice", "bob"]
    bare = deploy_ledger(w3, admin, [], None)
    assert (bare.task_id, bare.members, bare.pool) == (None, 0, 0)
