"""Fuzz every decoder of peer bytes and operator files; exit 1 if any case crashed, hung or was unsound.

    python -m scripts.bench.fuzz --cases 10000 --out reports/bench

Prints one line per decoder (cases tried, rejected cleanly with the decoder's own error, crashed,
hung, accepted) and writes the same, with the rejections by error class and the first failing
cases, to <out>/fuzz.json. See `scripts.bench.fuzzing` for what is generated and how it is judged.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .fuzzing import CASE_SECONDS, OUTCOMES, Result, run_target, targets

logger = logging.getLogger("fuzz")


def table(results: list[Result]) -> str:
    """One row per decoder: cases tried, then each outcome, then seconds."""
    head = f"{'decoder':<13}" + "".join(f"{c:>10}" for c in ("tried", *OUTCOMES, "seconds"))
    rows = [f"{r.name:<13}" + "".join(f"{n:>10}" for n in (r.tried, *(r.outcomes[k] for k in OUTCOMES)))
            + f"{r.seconds:>10.1f}" for r in results]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.bench.fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000, help="cases per decoder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", action="append", default=[], help="run only this decoder (repeatable)")
    parser.add_argument("--case-seconds", type=float, default=CASE_SECONDS, help="per-case bound before 'hung'")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The decoders log their own warnings (e.g. a key file's mode being fixed); thousands of them
    # would bury the table.
    logging.getLogger("p2p").setLevel(logging.ERROR)
    chosen = targets()
    unknown = sorted(set(args.only) - set(chosen))
    if unknown:
        parser.error(f"unknown decoder(s) {unknown}; known: {sorted(chosen)}")
    results = []
    for name, target in chosen.items():
        if args.only and name not in args.only:
            continue
        logger.info("fuzzing %s: %d cases", name, args.cases)
        results.append(run_target(target, args.cases, args.seed, args.case_seconds))
    print(table(results))
    for r in results:
        for failure in r.failures:
            print(f"  {r.name}: {failure}")
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"cases_per_decoder": args.cases, "seed": args.seed, "case_seconds": args.case_seconds,
              "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "decoders": {r.name: r.as_dict() for r in results}}
    path = args.out / "fuzz.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report: {path}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
