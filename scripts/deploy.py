#!/usr/bin/env python
"""Deploy the MedSwarm ledger, register members from a file, create a task and fund its pool.

    .venv/bin/python scripts/deploy.py --rpc http://127.0.0.1:8545 --admin-key keys/admin.key \
        --members members.json --quorum 3 --model-id heart-uci-mlp --round-duration 600 --fund 1000000000000000000

Members file (JSON list or TOML `[[member]]` tables): address, peer_id, name. Keys are read
from files (mode 0600), never printed. `--dev-admin` uses the chain's first dev key instead
(anvil / eth-tester only). Prints the contract address and task id; `--out` writes them as JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eth_account import Account  # noqa: E402

from incentive.chain import ChainUnavailable, connect, dev_keys  # noqa: E402
from incentive.errors import LedgerError  # noqa: E402
from incentive.keys import KeyFileError, load_key  # noqa: E402
from incentive.ledger import Ledger  # noqa: E402


def read_members(path: Path) -> list[dict[str, str]]:
    text = path.read_text()
    data = tomllib.loads(text).get("member", []) if path.suffix == ".toml" else json.loads(text)
    if isinstance(data, dict):
        data = data.get("members", [])
    out = []
    for i, m in enumerate(data):
        missing = {"address", "peer_id", "name"} - set(m)
        if missing:
            raise ValueError(f"{path}: member #{i} lacks {sorted(missing)}")
        out.append({k: str(m[k]) for k in ("address", "peer_id", "name")})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rpc", required=True, help="JSON-RPC URL (or eth-tester for a dry run)")
    key = p.add_mutually_exclusive_group(required=True)
    key.add_argument("--admin-key", type=Path, help="admin private key file (0600)")
    key.add_argument("--dev-admin", action="store_true", help="use the chain's first dev key (dev chains only)")
    p.add_argument("--members", type=Path, help="JSON or TOML file of members (address, peer_id, name)")
    p.add_argument("--quorum", type=int, default=2)
    p.add_argument("--model-id", default="medswarm")
    p.add_argument("--round-duration", type=int, default=600, help="seconds from a round's first commit")
    p.add_argument("--fund", type=int, default=0, help="wei to put into the pool from the admin account")
    p.add_argument("--no-task", action="store_true", help="deploy and register only")
    p.add_argument("--out", type=Path, help="write {address, task_id, chain_id} as JSON here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        w3 = connect(args.rpc)
        admin = Account.from_key(dev_keys(w3, 1)[0]) if args.dev_admin else load_key(args.admin_key)
        members = read_members(args.members) if args.members else []
        ledger = Ledger.deploy(w3, admin)
        for m in members:
            ledger.register_member(m["address"], m["peer_id"], m["name"])
        task_id = None
        if not args.no_task:
            task_id = ledger.create_task(quorum=args.quorum, model_id=args.model_id,
                                         round_duration=args.round_duration)
            if args.fund:
                ledger.fund(task_id, args.fund)
    except (ChainUnavailable, KeyFileError, ValueError, LedgerError) as exc:
        print(f"deploy: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    result = {"address": ledger.address, "task_id": task_id, "chain_id": w3.eth.chain_id,
              "admin": admin.address, "members": len(members), "pool": args.fund if task_id else 0}
    print(f"ledger {ledger.address} on chain {result['chain_id']}: {len(members)} members registered"
          + (f", task {task_id} created, pool {args.fund} wei" if task_id else ""))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
