"""The report of a local swarm run: a table for the terminal, JSON, a markdown summary and a plot.

Per node it shows the swarm model's accuracy on that hospital's held-out rows, the accuracy of
the same model trained on the hospital's rows alone, the contribution credited on chain, the
payout withdrawn and the rounds in which the winning vote flagged it or it voted another vector
(a deviant); below, how the rounds ended (credited, split, below quorum), the stake slashed, and
whether the independent audit of the chain found any mismatch. With differential privacy, each
node's cumulative epsilon as it committed it on chain, round by round.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

WEI_PER_ETH = 10**18


@dataclass(frozen=True)
class NodeRow:
    name: str
    test_accuracy: float | None
    local_only_accuracy: float | None
    contribution: int
    payout_wei: int
    model_digest: str
    finished: bool
    flagged: tuple[int, ...] = ()  # rounds whose winning vote flagged this node
    deviant: tuple[int, ...] = ()  # rounds in which this node voted against the winner
    slashed_wei: int = 0
    personalised_accuracy: float | None = None  # the swarm model with this node's own output layer
    epsilon: dict[int, float] = field(default_factory=dict)  # round -> cumulative DP epsilon committed on chain
    group: tuple[str, ...] = ()  # a grouped swarm: the members (names) whose model this node shares


@dataclass(frozen=True)
class SwarmReport:
    plan: dict[str, Any]
    contract: str
    task_id: int
    rows: tuple[NodeRow, ...]
    pool_wei: int
    dust_wei: int
    audit_ok: bool
    audit_mismatches: tuple[str, ...]
    curves: dict[str, list[float]]
    seconds: float
    rounds: dict[str, list[int]] = field(default_factory=dict)  # status -> rounds (credited, split, below_quorum, open)
    refereed_splits: tuple[int, ...] = ()  # rounds the members split and the referee's vote decided

    @classmethod
    def build(cls, plan, prov, summaries: Sequence[dict[str, Any] | None], payouts: dict[str, int],
              audit_report, metrics: Sequence[list[dict[str, Any]]], seconds: float) -> "SwarmReport":
        task = audit_report.tasks[prov.task_id]
        contributions = task.contributions
        rounds: dict[str, list[int]] = {}
        refereed: list[int] = []
        flagged: dict[str, list[int]] = {}
        deviant: dict[str, list[int]] = {}
        slashed: dict[str, int] = {}
        epsilon: dict[str, dict[int, float]] = {}
        for (t, r), rh in sorted(audit_report.rounds.items()):
            if t != prov.task_id:
                continue
            rounds.setdefault(rh.status, []).append(r)
            if rh.members_split and rh.decided_by == "referee":
                refereed.append(r)
            for m in rh.flagged:
                flagged.setdefault(m, []).append(r)
            for m in rh.deviants:
                deviant.setdefault(m, []).append(r)
            for m, wei, _reason in rh.slashes:
                slashed[m] = slashed.get(m, 0) + int(wei)
            for m, milli in rh.epsilons.items():
                if milli:
                    epsilon.setdefault(m, {})[r] = milli / 1000
        rows = []
        for name, address, summary in zip(prov.names, prov.addresses, summaries):
            rows.append(NodeRow(
                name=name,
                test_accuracy=summary["test_accuracy"] if summary else None,
                local_only_accuracy=summary["local_only_accuracy"] if summary else None,
                contribution=int(contributions.get(address, 0)),
                payout_wei=int(payouts.get(name, 0)),
                model_digest=summary["model_digest"] if summary else "",
                finished=summary is not None,
                flagged=tuple(flagged.get(address, ())), deviant=tuple(deviant.get(address, ())),
                slashed_wei=slashed.get(address, 0), epsilon=epsilon.get(address, {}),
                personalised_accuracy=summary.get("personalised_accuracy") if summary else None,
                group=tuple(summary.get("group", ())) if summary else ()))
        pool = int(task.received) if task.closed else int(plan.pool_eth * WEI_PER_ETH)
        plan_dict = {k: _plain(v) for k, v in vars(plan).items()}
        return cls(plan=plan_dict, contract=prov.contract, task_id=prov.task_id, rows=tuple(rows),
                   pool_wei=pool, dust_wei=pool - sum(r.payout_wei for r in rows),
                   audit_ok=not audit_report.mismatches,
                   audit_mismatches=tuple(str(m) for m in audit_report.mismatches),
                   curves={n: [m["test_accuracy"] for m in ms] for n, ms in zip(prov.names, metrics)},
                   seconds=seconds, rounds=rounds, refereed_splits=tuple(refereed))

    @property
    def failed_nodes(self) -> tuple[str, ...]:
        """Nodes that did not finish the run (no summary written)."""
        return tuple(r.name for r in self.rows if not r.finished)

    @property
    def ok(self) -> bool:
        return self.audit_ok and not self.failed_nodes

    @property
    def mean_swarm_accuracy(self) -> float:
        return _mean([r.test_accuracy for r in self.rows])

    @property
    def mean_local_accuracy(self) -> float:
        return _mean([r.local_only_accuracy for r in self.rows])

    def table(self) -> str:
        head = (f"{'node':<16}{'swarm acc':>10}{'local acc':>10}{'contribution':>14}{'payout (ETH)':>14}"
                f"  {'flagged / deviant (rounds)'}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            marks = _rounds(r.flagged, "flagged") + _rounds(r.deviant, "deviant")
            if r.slashed_wei:
                marks.append(f"slashed {r.slashed_wei} wei")
            if r.epsilon:
                last = max(r.epsilon)
                marks.append(f"epsilon {r.epsilon[last]:.3f} after round {last}")
            lines.append((f"{r.name:<16}{_pct(r.test_accuracy):>10}{_pct(r.local_only_accuracy):>10}"
                          f"{r.contribution:>14}{r.payout_wei / WEI_PER_ETH:>14.6f}  {'; '.join(marks)}").rstrip())
        lines.append("-" * len(head))
        lines.append(f"{'mean':<16}{_pct(self.mean_swarm_accuracy):>10}{_pct(self.mean_local_accuracy):>10}"
                     f"{sum(r.contribution for r in self.rows):>14}{self.pool_wei / WEI_PER_ETH:>14.6f}")
        personal = [r for r in self.rows if r.personalised_accuracy is not None]
        if personal:
            lines.append("personalised (output layer fine-tuned on own rows): "
                         + ", ".join(f"{r.name} {_pct(r.personalised_accuracy)}" for r in personal)
                         + f"; mean {_pct(_mean([r.personalised_accuracy for r in personal]))}")
        digests = {r.model_digest for r in self.rows if r.finished}
        lines.append(f"pool {self.pool_wei} wei = payouts {self.pool_wei - self.dust_wei} + dust {self.dust_wei}")
        if self.rounds:
            lines.append("rounds: " + ", ".join(f"{status} {_span(rs)}" for status, rs in sorted(self.rounds.items())))
        if self.refereed_splits:
            lines.append(f"rounds the members split, decided by the referee: {_span(self.refereed_splits)}")
        groups = sorted({r.group for r in self.rows if r.group})
        if groups:
            lines.append("groups (from round 1's updates, one model each): "
                         + " | ".join(", ".join(g) for g in groups))
            lines.append(f"final models: {len(digests)} distinct digest(s) across {len(self.rows)} nodes in "
                         f"{len(groups)} group(s)")
        else:
            lines.append(f"final models: {len(digests)} distinct digest(s) across {len(self.rows)} nodes")
        if self.failed_nodes:
            lines.append(f"FAILED: {', '.join(self.failed_nodes)} did not finish (see their node.log)")
        lines.append("audit: " + ("chain history consistent with contract state" if self.audit_ok
                                  else f"{len(self.audit_mismatches)} MISMATCH(ES): "
                                  + "; ".join(self.audit_mismatches[:5])))
        lines.append(f"ledger {self.contract}, task {self.task_id}; run took {self.seconds:.0f}s")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "plan": self.plan, "contract": self.contract, "task_id": self.task_id,
            "nodes": [vars(r) for r in self.rows], "pool_wei": self.pool_wei, "dust_wei": self.dust_wei,
            "mean_swarm_accuracy": _finite(self.mean_swarm_accuracy),
            "mean_local_accuracy": _finite(self.mean_local_accuracy),
            "audit_ok": self.audit_ok, "audit_mismatches": list(self.audit_mismatches),
            "failed_nodes": list(self.failed_nodes),
            "accuracy_per_round": self.curves, "seconds": self.seconds, "rounds": self.rounds or {},
            "refereed_splits": list(self.refereed_splits),
        }


def write_report(report: SwarmReport, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    (folder / "summary.md").write_text(
        "# MedSwarm run\n\n```\n" + report.table() + "\n```\n\n![accuracy per round](accuracy.png)\n")
    plot_curves(report, folder / "accuracy.png")


def plot_curves(report: SwarmReport, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for i, row in enumerate(report.rows):
        curve = report.curves.get(row.name, [])
        colour = f"C{i % 10}"
        if curve:
            ax.plot(range(1, len(curve) + 1), curve, marker="o", ms=3, color=colour, label=f"{row.name} (swarm)")
        if row.local_only_accuracy is not None:
            ax.axhline(row.local_only_accuracy, color=colour, ls="--", lw=1, alpha=0.7)
    ax.set_xlabel("round")
    ax.set_ylabel("test accuracy on the node's own held-out rows")
    ax.set_title("Swarm model per round (solid) vs local-only training (dashed)")
    ax.grid(alpha=0.3)
    if any(report.curves.values()):
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plain(value: Any) -> Any:
    """A plan value as JSON can hold it (paths as text, the --data folder's hospitals as a dict)."""
    if isinstance(value, Path):
        return str(value)
    if dataclasses.is_dataclass(value):
        return json.loads(json.dumps(dataclasses.asdict(value), default=str))
    return value


def _mean(values: Sequence[float | None]) -> float:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else math.nan


def _pct(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{100 * value:.1f}%"


def _rounds(rounds: Sequence[int], what: str) -> list[str]:
    return [f"{what} {_span(rounds)}"] if rounds else []


def _span(rounds: Sequence[int]) -> str:
    return f"{len(rounds)} ({', '.join(map(str, rounds))})"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
