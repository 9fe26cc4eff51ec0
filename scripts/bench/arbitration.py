"""The referee's choice in split rounds (node.arbitration) on real, honestly trained heart rounds.

    .venv/bin/python -m scripts.bench.arbitration [--quick] [--seeds 3] [--rounds 6] [--out reports/bench]

Rounds of the four UCI heart hospitals train in process as the contribution benchmark's do
(`scripts.bench.contribution.honest_rounds`, median merge, mlp and logreg); the sponsor's
published validation set stands for the hospitals' validation rows pooled. Per round it measures:

- what the checkable vector (every honest member's vote) does against the validation evidence:
  updates with a positive validation value it gives nothing (what would make the protocol's own
  vector lose a split: must be none), and updates it credits whose loss gain on the set is not
  positive (what a rule that also counted those would hand to colluders who zero them);
- the referee's choice when Switzerland and VA Long Beach split the vote against Cleveland and
  Hungary with: their `collude` vector (each other 5000, the rest 0); the validation shares
  themselves (closer to the validation judgement than the protocol's vector); everyone credited
  but 1 point each for the honest pair; and the honest vector with the honest update of the
  smallest validation gain zeroed. The honest vector must win every one of them.

Writes arbitration.json and arbitration.md into --out.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from node.arbitration import Candidate, choose, validation_value
from node.contribution import PublicValidation, checkable_scores
from node.launcher import SwarmPlan
from node.merge import rule_by_name
from scripts.bench import harness as B
from scripts.bench.contribution import honest_rounds, public_validation
from scripts.bench.output import publish

HONEST, COLLUDERS = ("cleveland", "hungary"), ("switzerland", "va-long-beach")
MODELS = ("mlp", "logreg")


def colluding_vectors(honest: dict[str, int], value: dict[str, int]) -> dict[str, dict[str, int]]:
    """The vectors two colluders of four may vote against the honest pair's."""
    weakest = min(HONEST, key=lambda m: value.get(m, 0))
    return {"collude": {**{m: 0 for m in HONEST}, **{m: 5000 for m in COLLUDERS}},
            "validation shares": dict(value),
            "everyone credited, honest 1 point": {**{m: 1 for m in HONEST}, **{m: 4999 for m in COLLUDERS}},
            "weakest honest zeroed": {**honest, weakest: 0}}


def judge_rounds(model: str, seed: int, rounds: int) -> list[dict[str, Any]]:
    setups, trained = honest_rounds(SwarmPlan(nodes=4, dataset="heart", model=model, seed=seed), rounds,
                                    rule_by_name("median"))
    net, x, y = public_validation(setups)
    out = []
    for r, now in enumerate(trained):
        basis = (trained[r - 1].updates, trained[r - 1].merged) if r else ([], None)
        honest = checkable_scores(now.updates, *basis, starts=[now.start]).scores
        report = checkable_scores(now.updates, *basis, starts=[now.start],
                                  validation=PublicValidation(net, now.start, x, y))
        value = validation_value(report)
        gains = {s: m.get("validation_gain") for s, m in report.measures.items()}
        own = Candidate(honest, None)
        h = Candidate(honest, None, "honest", HONEST)
        choices = {name: choose([Candidate(v, None, name, COLLUDERS), h], own, value).winner.vote_hash
                   for name, v in colluding_vectors(honest, value).items()}
        out.append({"model": model, "seed": seed, "round": r + 1, "scores": honest, "validation_value": value,
                    "validation_gain": gains,
                    "denied": [s for s, v in value.items() if v > 0 and honest.get(s, 0) <= 0],
                    "credited_not_helping": [s for s, g in gains.items() if g is not None and g <= 0 and honest[s] > 0],
                    "choice": choices})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = B.bench_arguments(__doc__, "runs/bench/arbitration", "one seed, 2 rounds")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args(argv)
    B.quiet()
    started = time.monotonic()
    seeds, rounds = ([0], 2) if args.quick else (list(range(args.seeds)), args.rounds)
    rows = [row for model in MODELS for seed in seeds for row in judge_rounds(model, seed, rounds)]
    attacks = sorted({a for row in rows for a in row["choice"]})
    lines = ["| model | rounds | updates given 0 despite a positive validation value | rounds crediting an update "
             "whose validation gain is <= 0 | " + " | ".join(f"honest wins vs '{a}'" for a in attacks) + " |",
             "|---|---|---|---|" + "---|" * len(attacks)]
    summary = {}
    for model in MODELS:
        mine = [row for row in rows if row["model"] == model]
        summary[model] = {"rounds": len(mine), "updates": sum(len(r["scores"]) for r in mine),
                          "denied": sum(len(r["denied"]) for r in mine),
                          "rounds_crediting_non_helping": sum(bool(r["credited_not_helping"]) for r in mine),
                          "honest_wins": {a: sum(r["choice"][a] == "honest" for r in mine) for a in attacks}}
        s = summary[model]
        lines.append(f"| heart {model} | {s['rounds']} | {s['denied']} of {s['updates']} | "
                     f"{s['rounds_crediting_non_helping']} | "
                     + " | ".join(f"{s['honest_wins'][a]}/{s['rounds']}" for a in attacks) + " |")
    command = "python -m scripts.bench.arbitration" + (" --quick" if args.quick else
                                                       f" --seeds {args.seeds} --rounds {args.rounds}")
    meta = {"command": command, "seconds": time.monotonic() - started, "machine": B.machine(), "seeds": seeds}
    markdown = "\n".join(["# The referee's choice in split rounds", "",
                          f"Command: `{command}`; {meta['seconds']:.0f} s.", "", *lines, ""])
    publish(Path(args.out), "arbitration", {"meta": meta, "summary": summary, "rounds": rows}, markdown)
    print("\n".join(lines))
    B.say(f"arbitration benchmark done in {meta['seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
