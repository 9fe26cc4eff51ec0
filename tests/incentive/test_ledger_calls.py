"""What a ledger transaction and a ledger read cost in JSON-RPC calls on anvil, and that the
local nonce count and fee caps recover whenever the chain disagrees with them."""

from __future__ import annotations

from collections import Counter

import pytest

from incentive import chain as chain_module
from incentive.anvil import Anvil
from incentive.chain import connect, send_book
from incentive.errors import UnknownTask, ZeroAmount
from incentive.ledger import Ledger

from ledger_fixtures import counted, digest_of, honest, make_deployment, on_anvil, run_round

pytestmark = on_anvil()


@pytest.fixture(scope="module")
def anvil():
    with Anvil() as chain:
        yield chain


@pytest.fixture(autouse=True)
def slow_fees(monkeypatch):
    """Fee caps are reused for FEE_SECONDS: long enough here that a loaded machine changes nothing."""
    monkeypatch.setattr(chain_module, "FEE_SECONDS", 600.0)


def funding_calls(dep, task: int, wei: int, funded_before: int) -> Counter:
    """The JSON-RPC calls of the sponsor adding `wei` to the task, checked to land on top of
    the `funded_before` wei it put in before."""
    calls = counted(dep.w3)
    dep.sponsor.fund(task, wei)
    assert dep.sponsor.funded(task, dep.sponsor.account.address) == funded_before + wei
    return calls


def test_transactions_read_nonce_and_fees_once_per_connection(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    calls = counted(dep.w3)
    for _ in range(3):
        dep.sponsor.fund(task, 1)
    assert calls["eth_getTransactionCount"] == 0  # the sponsor's nonce is counted since new_task's fund
    assert calls["eth_maxPriorityFeePerGas"] == 0 and calls["eth_getBlockByNumber"] == 0
    assert calls["eth_estimateGas"] == 3 and calls["eth_sendRawTransaction"] == 3
    assert calls["eth_getTransactionReceipt"] <= 3 and calls["eth_blockNumber"] == 0
    assert dep.sponsor.funded(task, dep.sponsor.account.address) == 10**18 + 3


def test_a_new_connection_reads_the_nonce_again(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    restarted = Ledger(connect(anvil.url), dep.admin.address, dep.sponsor.account)  # a node restart
    calls = counted(restarted.w3)
    restarted.fund(task, 5)
    restarted.fund(task, 5)
    assert calls["eth_getTransactionCount"] == 1
    assert restarted.funded(task, restarted.account.address) == 10**18 + 10


def test_a_nonce_used_elsewhere_is_read_again_and_the_send_goes_through(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    other = Ledger(connect(anvil.url), dep.admin.address, dep.sponsor.account)
    other.fund(task, 7)  # the same key sent through another connection: this one's count is stale
    calls = funding_calls(dep, task, 11, 10**18 + 7)
    assert calls["eth_getTransactionCount"] == 1 and calls["eth_sendRawTransaction"] == 2


def test_a_revert_leaves_the_nonce_count_right(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    with pytest.raises(ZeroAmount):  # refused at estimation: nothing sent, no nonce used
        dep.sponsor.fund(task, 0)
    with pytest.raises(UnknownTask):
        dep.sponsor.fund(999, 1)
    calls = funding_calls(dep, task, 2, 10**18)
    assert calls["eth_getTransactionCount"] == 0 and calls["eth_sendRawTransaction"] == 1


def test_fee_caps_the_chain_refuses_are_read_again(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    cap = send_book(dep.w3).fees()[0]["maxFeePerGas"]
    dep.w3.provider.make_request("anvil_setNextBlockBaseFeePerGas", [hex(cap * 20)])  # the base fee jumps
    dep.w3.provider.make_request("evm_mine", [])
    calls = funding_calls(dep, task, 3, 10**18)
    assert calls["eth_sendRawTransaction"] == 2 and calls["eth_maxPriorityFeePerGas"] == 1


def test_a_read_costs_one_height_query_and_a_log_query_only_for_new_blocks(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    run_round(dep, task, 1, honest([9000, 8000, 6100, 7100]))
    reader = Ledger(dep.w3, dep.admin.address, dep.accounts[1])  # caches of its own
    reader.members()  # slot -> address, as a node reads once at start
    reader.commitments(task, 1)  # the first read scans the task's history
    calls = counted(dep.w3)
    assert len(reader.commitments(task, 1)) == 4
    assert calls == Counter({"eth_blockNumber": 1})  # nothing mined since: no log query
    state = reader.round_state(task, 1)
    assert state.finalized and state.outcome is not None and state.outcome.status == "credited"
    assert calls == Counter({"eth_blockNumber": 2, "eth_call": 1})
    assert reader.round_state(task, 1) == state  # a finalized round never changes: kept
    assert reader.with_account(dep.accounts[2]).round_state(task, 1) == state  # shared with its other views
    reader.model_attestations(task, 1, "0x" + "00" * 32)
    assert calls == Counter({"eth_blockNumber": 3, "eth_call": 1})


def test_an_open_round_is_read_again(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    run_round(dep, task, 1, honest([9000, 8000, 6100, 7100]), committers=[0, 1, 2, 3], finalize=False)
    reader = dep.members[0]
    votes = {i: {j: 5000 for j in range(3)} for i in range(2)}
    run_round(dep, task, 2, votes, committers=[0, 1, 2], finalize=False)
    first = reader.round_state(task, 2)
    assert not first.finalized and len(first.scored) == 2
    dep.members[2].vote(task, 2, [dep.addr(j) for j in range(3)], [5000] * 3, model=None)
    last = reader.round_state(task, 2)
    assert last.finalized and len(last.scored) == 3 and last.outcome is not None


def test_events_mined_between_two_reads_are_in_the_second(anvil):
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    reader = dep.members[3]
    seen = []
    for i in range(3):
        dep.members[i].commit(task, 1, digest_of(task, 1, i))
        seen.append(list(reader.commitments(task, 1)))
        assert reader.votes(task, 1) == []
    assert seen == [[dep.addr(0)], [dep.addr(0), dep.addr(1)], [dep.addr(0), dep.addr(1), dep.addr(2)]]
    members = [dep.addr(i) for i in range(3)]
    dep.members[0].commit_and_vote(task, 2, digest_of(task, 2, 0), 1, members, [5000, 5000, 5000], model=None)
    assert [v.voter for v in reader.votes(task, 1)] == [dep.addr(0)]  # its vote on round 1 ...
    assert reader.commitments(task, 2) == {dep.addr(0): digest_of(task, 2, 0)}  # ... and its commit to round 2


def test_a_chain_that_forgets_blocks_has_its_logs_and_nonces_read_again(anvil):
    """A dev chain restarted from an older state file (here: reverted to a snapshot) forgets blocks
    a node already read: the node's next read notices, and its next send reads the nonce again
    instead of sending past the chain's count (which would sit queued until web3's timeout)."""
    dep = make_deployment(anvil.url)
    task = dep.new_task()
    member = dep.members[0]
    member.commit(task, 1, digest_of(task, 1, 0))
    snapshot = dep.w3.provider.make_request("evm_snapshot", [])["result"]
    dep.members[1].commit(task, 1, digest_of(task, 1, 1))
    assert set(member.commitments(task, 1)) == {dep.addr(0), dep.addr(1)}
    sponsor = dep.sponsor
    sponsor.fund(task, 7)  # counted locally from here
    assert send_book(sponsor.w3).next(sponsor.account.address)[1]
    dep.w3.provider.make_request("evm_revert", [snapshot])  # member 1's commit and the funding are gone
    assert set(sponsor.commitments(task, 1)) == {dep.addr(0)}
    assert not send_book(sponsor.w3).next(sponsor.account.address)[1]
    sponsor.fund(task, 5)
    assert sponsor.funded(task, sponsor.account.address) == 10**18 + 5
