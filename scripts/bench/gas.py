"""Gas per node per round (commit + scores) for N = 4, 8, 16 members, on eth-tester.

    .venv/bin/python -m scripts.bench.gas [--sizes 4,8,16] [--rounds 3] [--out reports/gas.json]

Two ways to send a node's round: `separate` = commit(r) then submitScores(r) (two
transactions), `combined` = commitAndScore(r + 1 commit, r scores) (one transaction, what a
node in a steady run of rounds sends). Every node scores every other committer and attests
the same merged-model digest (a swarm that agrees: the round's first attester pays for a fresh
counter, the others increment it). Figures are means over nodes and rounds after the first
(the first round of a task pays for fresh storage once); finalize, deploy, register and
withdraw are shown for scale.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from eth_account import Account
from eth_utils import keccak

from incentive.chain import connect, dev_keys
from incentive.ledger import Ledger, pack_scores


def _setup(n: int):
    w3 = connect("eth-tester")
    keys = [Account.from_key(k) for k in dev_keys(w3, n + 1)]
    admin, nodes = keys[0], keys[1:]
    receipt_gas = {}
    ledger = Ledger.deploy(w3, admin)
    reg = [ledger.transact("registerMember", m.address, f"12D3KooPeer{i}", f"hospital-{i}")["gasUsed"]
           for i, m in enumerate(nodes)]
    receipt_gas["register"] = statistics.mean(reg)
    task = ledger.create_task(quorum=max(2, n // 2), model_id="bench", round_duration=3600)
    ledger.fund(task, 10**18)
    return w3, ledger, [ledger.with_account(m) for m in nodes], task, receipt_gas


def _model(n: int, r: int) -> bytes:
    """The merged model every node holds after round r."""
    return keccak(b"model%d-%d" % (n, r))


def _scores(i: int, n: int, r: int) -> list[int]:
    peers = [j for j in range(n) if j != i]
    return pack_scores(peers, [(1000 + 611 * i + 97 * j + 13 * r) % 10001 for j in peers])


def bench(n: int, rounds: int) -> dict:
    w3, ledger, nodes, task, extra = _setup(n)
    commit, score, fin = [], [], []
    for r in range(1, rounds + 1):
        c = [nd.transact("commit", task, r, keccak(b"s%d-%d-%d" % (n, r, i)))["gasUsed"] for i, nd in enumerate(nodes)]
        s = [nd.transact("submitScores", task, r, _model(n, r), _scores(i, n, r))["gasUsed"]
             for i, nd in enumerate(nodes)]
        fin.append(ledger.transact("finalize", task, r)["gasUsed"])
        if r > 1:
            commit += c
            score += s
    # combined: commit(r + 1) + scores(r) in one transaction
    w3, ledger, nodes, task, _ = _setup(n)
    for i, nd in enumerate(nodes):
        nd.transact("commit", task, 1, keccak(b"c%d-1-%d" % (n, i)))
    combined = []
    for r in range(1, rounds + 1):
        g = [nd.transact("commitAndScore", task, r + 1, keccak(b"c%d-%d-%d" % (n, r + 1, i)), r, _model(n, r),
                         _scores(i, n, r))["gasUsed"] for i, nd in enumerate(nodes)]
        ledger.transact("finalize", task, r)
        if r > 1:
            combined += g
    ledger.close_task(task)
    withdraw = nodes[0].transact("withdraw", task)["gasUsed"]
    return {
        "members": n,
        "commit": round(statistics.mean(commit)),
        "submit_scores": round(statistics.mean(score)),
        "separate_per_node_round": round(statistics.mean(commit) + statistics.mean(score)),
        "combined_per_node_round": round(statistics.mean(combined)),
        "finalize": round(statistics.mean(fin[1:] or fin)),
        "register_member": round(extra["register"]),
        "withdraw": withdraw,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="4,8,16")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", type=Path, default=Path("reports/gas.json"))
    args = p.parse_args(argv)
    rows = [bench(int(n), args.rounds) for n in args.sizes.split(",")]
    cols = ["members", "commit", "submit_scores", "separate_per_node_round", "combined_per_node_round", "finalize",
            "register_member", "withdraw"]
    heads = ["N", "commit", "scores", "commit+scores", "commitAndScore", "finalize", "register", "withdraw"]
    widths = [max(len(h), 8) for h in heads]
    print("  ".join(h.rjust(w) for h, w in zip(heads, widths)))
    for row in rows:
        print("  ".join(str(row[c]).rjust(w) for c, w in zip(cols, widths)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"chain": "eth-tester (py-evm, prague)", "rounds": args.rounds, "results": rows},
                                   indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
