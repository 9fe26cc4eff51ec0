"""Gas per node per round of the v3 ledger (one vote on one score vector) for N = 4, 8, 16, 32.

    .venv/bin/python -m scripts.bench.gas [--sizes 4,8,16,32] [--rounds 12] [--out reports/bench]

A steady run of rounds on eth-tester: every node sends `commitAndVote` (commit round r + 1,
vote on round r; every honest node votes the same vector, self included, and attests the same
merged model). The round's last vote is the winner's, so it also finalizes the round: no
separate `finalize` transaction is needed, and the per-node figure (the mean over all nodes'
commitAndVote) includes the finalize share. Round words live in a ring of RING slots per task,
so the first RING rounds pay for fresh storage once; the figures are means over the rounds after
that (the steady state of a long task). On the last round all nodes but one `vote` alone (two
transactions per round instead of one) and, once the voting window has closed, a separate
`finalize` is measured (what anyone pays when the last vote is not the winner's). Target: 50k
per node per round at N = 8 (without stake): the command exits 1 above it. Writes gas.json and
gas.md through scripts.bench.output.publish.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from pathlib import Path

from eth_account import Account
from eth_utils import keccak

from incentive.chain import advance_time, connect, dev_keys
from incentive.ledger import Ledger, PrivacyTerms, pack_vector
from scripts.bench.output import publish

logger = logging.getLogger(__name__)

RING = 8  # the contract's ring of round words
ROUND_SECONDS = 3600
TARGET_N, TARGET_GAS = 8, 50_000


def _setup(n: int, stake: int, dp: bool = False) -> tuple[Ledger, list[Ledger], int]:
    w3 = connect("eth-tester")
    keys = [Account.from_key(k) for k in dev_keys(w3, n + 1)]
    ledger = Ledger.deploy(w3, keys[0])
    for i, m in enumerate(keys[1:]):
        ledger.register_member(m.address, f"12D3KooPeer{i}", f"hospital-{i}")
    task = ledger.create_task(quorum=max(2, n // 2), model_id="bench", round_duration=ROUND_SECONDS, stake=stake,
                              slash=stake // 2, privacy=PrivacyTerms(epsilon=1000.0) if dp else None)
    ledger.fund(task, 10**18)
    nodes = [ledger.with_account(m) for m in keys[1:]]
    if stake:
        for nd in nodes:
            nd.bond(task)
    return ledger, nodes, task


def _vector(n: int, r: int) -> list[int]:
    """The round's score vector every honest node computes (self included)."""
    return pack_vector(list(range(n)), [(1000 + 611 * j + 13 * r) % 10001 for j in range(n)])


def _model(r: int) -> bytes:
    return keccak(b"merged model after round %d" % r)


def _digest(r: int, i: int) -> bytes:
    return keccak(b"update %d of node %d" % (r, i))


def bench(n: int, rounds: int, stake: int = 0, dp: bool = False) -> dict[str, int]:
    """Gas of a steady run of `rounds` rounds (rounds > RING + 1) with n nodes bonding `stake` wei."""
    ledger, nodes, task = _setup(n, stake, dp)
    for i, nd in enumerate(nodes):
        nd.commit(task, 1, "0x" + _digest(1, i).hex())
    combined: list[int] = []
    closing: list[int] = []  # the round's last commitAndVote, which finalizes the round
    for r in range(1, rounds):
        gas = [nd.transact("commitAndVote", task, r + 1, _digest(r + 1, i), 100 * (r + 1) if dp else 0,
                             r, _model(r), _vector(n, r))["gasUsed"]
               for i, nd in enumerate(nodes)]
        if r > RING:
            combined += gas
            closing.append(gas[-1])
    last = rounds
    vote = [nd.transact("vote", task, last, _model(last), _vector(n, last))["gasUsed"] for nd in nodes[:-1]]
    advance_time(ledger.w3, 2 * ROUND_SECONDS)  # the voting window closes without the last node's vote
    fin = ledger.transact("finalize", task, last, _model(last), _vector(n, last))["gasUsed"]
    return {
        "members": n,
        "stake": stake,
        "commit_and_vote": round(statistics.mean(combined)),
        "last_commit_and_vote": round(statistics.mean(closing)),
        "vote": round(statistics.mean(vote)),
        "finalize": fin,
        "per_node_round": round(statistics.mean(combined)),
    }


def markdown(rows: list[dict[str, int]]) -> str:
    lines = ["| N | commitAndVote (mean, = per node per round) | the last one (finalizes) | vote alone | "
             "finalize alone |", "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['members']} | {r['commit_and_vote']:,} | {r['last_commit_and_vote']:,} | {r['vote']:,} | "
              f"{r['finalize']:,} |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4,8,16,32")
    p.add_argument("--rounds", type=int, default=RING + 4, help=f"rounds per run (> {RING + 1})")
    p.add_argument("--stake", type=int, default=10**16, help="wei bonded per member in the staked run at N = 8")
    p.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = p.parse_args(argv)
    if args.rounds <= RING + 1:
        p.error(f"--rounds must exceed {RING + 1}: the first {RING} rounds pay for fresh round words")
    rows = [bench(int(n), args.rounds) for n in args.sizes.split(",")]
    staked = bench(TARGET_N, args.rounds, args.stake)  # a bonded member's commit also reads its bond
    # A DP task: every commit reports a grown cumulative epsilon, checked against the budget
    private = bench(TARGET_N, args.rounds, dp=True)
    table = markdown(rows) + (f"\nWith a stake of {args.stake} wei at N = {TARGET_N}: commitAndVote "
                              f"{staked['commit_and_vote']:,} per node per round.\n"
                              f"With a privacy budget at N = {TARGET_N} (each commit reports a grown epsilon): "
                              f"commitAndVote {private['commit_and_vote']:,} per node per round.\n")
    print(table, end="")
    at_target = [r for r in rows if r["members"] == TARGET_N]
    verdict = {"target_gas_per_node_round": TARGET_GAS, "target_members": TARGET_N,
               "met": bool(at_target) and at_target[0]["per_node_round"] <= TARGET_GAS}
    publish(args.out, "gas", {"chain": "eth-tester (py-evm, prague)", "rounds": args.rounds, "results": rows,
                              "staked": staked, "private": private, **verdict}, table)
    print(f"wrote {args.out / 'gas.json'} and {args.out / 'gas.md'}")
    if at_target and not verdict["met"]:
        logger.error("N = %d: %d gas per node per round, above the bound of %d", TARGET_N,
                     at_target[0]["per_node_round"], TARGET_GAS)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
