#!/usr/bin/env python
"""Audit a MedSwarm ledger from an RPC URL and the contract address alone.

    .venv/bin/python scripts/audit.py --rpc http://127.0.0.1:8545 --address 0x... \
        [--json reports/audit.json] [--expect node-contributions.json]

Prints the rebuilt history as a table, writes it as JSON with --json, and exits 1 on any
mismatch between events, the audit's own recomputation, the contract's state and the
optional expectations file ({"contributions": {task: {address: n}}, "credits": {task:
{round: {address: n}}}}); exit 2 when the chain cannot be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from incentive.audit import audit  # noqa: E402
from incentive.chain import ChainUnavailable, connect  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rpc", required=True)
    p.add_argument("--address", required=True)
    p.add_argument("--json", type=Path, help="write the full report as JSON here")
    p.add_argument("--expect", type=Path, help="JSON expectations (e.g. contributions the nodes logged)")
    p.add_argument("--from-block", type=int, default=None, help="skip the deploy-block search")
    p.add_argument("--window", type=int, default=500, help="blocks per log query")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    try:
        w3 = connect(args.rpc)
    except ChainUnavailable as exc:
        print(f"audit: {exc}", file=sys.stderr)
        return 2
    expectations = json.loads(args.expect.read_text()) if args.expect else None
    report = audit(w3, args.address, expectations=expectations, from_block=args.from_block, window=args.window)
    print(report.format_table())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(report.to_json() + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
