"""What checking peers' commitments costs a node per round: one read per peer against one per round.

    .venv/bin/python -m scripts.bench.chainreads [--quick] [--out reports/bench] [--members 8,16,32]

On anvil (in-process eth-tester with --quick), N members commit round 1 of a task; then a node
checks all N - 1 peers' commitments the way it did before `node.commitbook` (one
`Ledger.commitment` read per peer: each a log query) and the way it does now (one
`Ledger.commitments` read for the round, kept). Reported: seconds per node per round for each
way, the median of --repeats tries, and the number of chain reads. Writes chainreads.json and
chainreads.md into --out.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from eth_account import Account
from eth_utils import keccak

from incentive.anvil import Anvil
from incentive.chain import ANVIL_MNEMONIC, connect, dev_keys
from incentive.ledger import Ledger
from scripts.bench import harness as B
from scripts.bench.output import publish


def funded_keys(w3, n: int, anvil: bool) -> list:
    """n funded accounts: anvil funds as many mnemonic accounts as it was started with."""
    if not anvil:
        return [Account.from_key(k) for k in dev_keys(w3, n)]
    Account.enable_unaudited_hdwallet_features()
    return [Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


def measure(url: str, members: int, repeats: int) -> dict:
    w3 = connect(url)
    keys = funded_keys(w3, members + 1, url != "eth-tester")
    admin = Ledger.deploy(w3, keys[0], name="consortium")
    ledgers = []
    for i, key in enumerate(keys[1:]):
        admin.register_member(key.address, f"12D3KooWPeer{i}", f"hospital-{i}")
        ledgers.append(admin.with_account(key, name=f"hospital-{i}"))
    task = admin.create_task(quorum=2, model_id="bench", round_duration=600)
    for i, ledger in enumerate(ledgers):
        ledger.commit(task, 1, "0x" + keccak(text=f"update {i}").hex())
    me, peers = ledgers[0], [k.address for k in keys[2:]]

    def per_peer() -> None:
        for peer in peers:
            assert me.commitment(task, 1, peer) is not None

    def per_round() -> None:
        found = me.commitments(task, 1)
        assert all(peer in found for peer in peers)

    out = {"members": members}
    for name, way, reads in (("per_peer", per_peer, len(peers)), ("per_round", per_round, 1)):
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            way()
            times.append(time.perf_counter() - t0)
        out[name] = {"seconds": statistics.median(times), "reads": reads}
    return out


def markdown(rows: list[dict], meta: dict) -> str:
    lines = ["# Commitment reads per node per round", "",
             f"{meta['chain']}; median of {meta['repeats']} tries; load average at start {meta['load']}.", "",
             "| members | one read per peer: reads, seconds | one read per round: reads, seconds |",
             "|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['members']} | {r['per_peer']['reads']}, {r['per_peer']['seconds']:.3f} | "
                     f"{r['per_round']['reads']}, {r['per_round']['seconds']:.3f} |")
    return "\n".join(lines + [""])


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench-chainreads", "eth-tester, 4 members")
    ap.add_argument("--members", default="8,16,32")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    B.quiet()
    load = round(os.getloadavg()[0], 2)
    sizes = [4] if args.quick else [int(x) for x in args.members.split(",") if x]
    rows = []
    with ExitStack() as stack:
        url = "eth-tester" if args.quick else stack.enter_context(Anvil(accounts=max(sizes) + 2)).url
        for n in sizes:
            rows.append(measure(url, n, args.repeats))
            B.say(f"N={n}: per peer {rows[-1]['per_peer']}, per round {rows[-1]['per_round']}")
    meta = {"chain": "eth-tester" if args.quick else "anvil", "repeats": args.repeats, "load": load,
            "machine": B.machine()}
    publish(Path(args.out), "chainreads", {"meta": meta, "rows": rows}, markdown(rows, meta))
    print(markdown(rows, meta))
    B.say(f"chainreads benchmark done: {args.out}/chainreads.json, chainreads.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
