"""Helpers shared by the incentive tests: deployments on eth-tester or anvil, digests, rounds."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from web3 import Web3

from incentive.anvil import ToolMissing, anvil_binary
from incentive.chain import connect, dev_keys
from incentive.ledger import Ledger, RoundOutcome

ATTACKERS_DIR = Path(__file__).parent / "contracts" / "artifacts"


def digest_of(*parts: object) -> str:
    """A deterministic "0x" + 64 hex digest, like p2p.codec.digest of an update."""
    return "0x" + keccak(repr(parts).encode()).hex()


@dataclass
class Deployment:
    w3: Web3
    admin: Ledger
    members: list[Ledger]          # one Ledger per member, signing with its own key
    accounts: list[LocalAccount]   # the members' accounts
    sponsor: Ledger
    outsider: Ledger

    def new_task(self, *, quorum: int = 2, duration: int = 600, fund: int = 10**18, **terms: object) -> int:
        """A task (terms: stake, slash, referee, validation_digest) funded by the sponsor."""
        task = self.admin.create_task(quorum=quorum, model_id="heart-uci-mlp", round_duration=duration, **terms)
        if fund:
            self.sponsor.fund(task, fund)
        return task

    def addr(self, i: int) -> str:
        return self.accounts[i].address


def make_deployment(url: str = "eth-tester", n_members: int = 4) -> Deployment:
    w3 = connect(url)
    keys = [Account.from_key(k) for k in dev_keys(w3, n_members + 3)]
    admin = Ledger.deploy(w3, keys[0], name="consortium")
    members = keys[1:1 + n_members]
    for i, m in enumerate(members):
        admin.register_member(m.address, f"12D3KooWPeer{i}", f"hospital-{i}")
    return Deployment(
        w3=w3,
        admin=admin,
        members=[admin.with_account(m, name=f"hospital-{i}") for i, m in enumerate(members)],
        accounts=members,
        sponsor=admin.with_account(keys[1 + n_members], name="sponsor"),
        outsider=admin.with_account(keys[2 + n_members], name="outsider"),
    )


def run_round(dep: Deployment, task: int, rnd: int, votes: dict[int, dict[int, int]],
              committers: list[int] | None = None, finalize: bool = True, model: str | None = None) -> None:
    """Members in `committers` commit; member i votes the vector votes[i] = {member index: score}; finalize."""
    committers = list(range(len(dep.members))) if committers is None else committers
    for i in committers:
        dep.members[i].commit(task, rnd, digest_of(task, rnd, i))
    for i, vector in votes.items():
        dep.members[i].vote(task, rnd, [dep.addr(j) for j in vector], list(vector.values()), model=model)
    if finalize:
        settle(dep, task, rnd)


def settle(dep: Deployment, task: int, rnd: int) -> RoundOutcome:
    """The round's outcome: finalize it, unless its last vote already did (the winner's does)."""
    state = dep.admin.round_state(task, rnd)
    if state.finalized:
        assert state.outcome is not None
        return state.outcome
    return dep.outsider.finalize(task, rnd)


def honest(scores: list[int]) -> dict[int, dict[int, int]]:
    """Every member votes the same vector {j: scores[j]} (what honest nodes compute)."""
    vector = dict(enumerate(scores))
    return {i: vector for i in range(len(scores))}


def counted(w3) -> Counter:
    """JSON-RPC requests that reach the node through `w3`, by method, from now on."""
    calls: Counter = Counter()
    send = w3.provider._make_request

    def make_request(method, data):
        calls[method] += 1
        return send(method, data)

    w3.provider._make_request = make_request
    return calls


def on_anvil() -> list:
    """The marks of a test module that needs anvil: marked, and skipped (saying why) without it."""
    try:
        anvil_binary()
        missing = ""
    except ToolMissing as exc:
        missing = str(exc)
    return [pytest.mark.anvil, pytest.mark.skipif(bool(missing), reason=missing or "ok")]
