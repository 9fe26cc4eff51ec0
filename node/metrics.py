"""Clinical metrics of a model's predictions, as JSON and as a picture (ROC and calibration).

`binary_metrics(y, p)` takes labels and predicted probabilities of class 1 and returns accuracy,
balanced accuracy, ROC AUC, sensitivity, specificity, Brier score and the confusion matrix. A
metric that the rows cannot support (AUC on rows of one class, sensitivity without a positive
row) is "n/a", never 0 and never an exception: a one-class site is evaluated like any other.
`medswarm evaluate` (node.cli) runs these on a finished run's model and a CSV.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from .training import roc_auc

NA = "n/a"
CALIBRATION_BINS = 10


def _ratio(num: int, den: int) -> float | str:
    return num / den if den else NA


def binary_metrics(y: np.ndarray, p1: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Metrics of P(class 1) = `p1` against binary labels `y` (predicted 1 where p1 >= threshold)."""
    y = np.asarray(y).astype(np.int64)
    p1 = np.asarray(p1, dtype=np.float64)
    if y.shape != p1.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"need matching, non-empty label and probability vectors, got {y.shape} and {p1.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("binary metrics need labels 0 and 1")
    pred = (p1 >= threshold).astype(np.int64)
    tp = int(((pred == 1) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    auc = roc_auc(y, p1)
    return {
        "n": int(len(y)), "positives": tp + fn, "negatives": tn + fp, "threshold": threshold,
        "accuracy": (tp + tn) / len(y),
        "balanced_accuracy": (sens + spec) / 2 if isinstance(sens, float) and isinstance(spec, float) else NA,
        "roc_auc": auc if math.isfinite(auc) else NA,
        "sensitivity": sens, "specificity": spec,
        "brier": float(np.mean((p1 - y) ** 2)),
        "confusion_matrix": {"rows": "true 0, true 1", "columns": "predicted 0, predicted 1",
                             "values": [[tn, fp], [fn, tp]]},
    }


def roc_points(y: np.ndarray, p1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold (empty with one class)."""
    y = np.asarray(y).astype(bool)
    if y.all() or not y.any():
        return np.empty(0), np.empty(0)
    thresholds = np.unique(p1)[::-1]
    tpr = np.array([0.0] + [float((p1[y] >= t).mean()) for t in thresholds])
    fpr = np.array([0.0] + [float((p1[~y] >= t).mean()) for t in thresholds])
    return fpr, tpr


def calibration_points(y: np.ndarray, p1: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, float]]:
    """Per probability bin with rows: mean predicted probability, observed share of class 1, rows."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p1, edges[1:-1]), 0, bins - 1)
    return [{"predicted": float(p1[which == b].mean()), "observed": float(np.mean(y[which == b])),
             "n": int((which == b).sum())} for b in range(bins) if (which == b).any()]


def plot_evaluation(y: np.ndarray, p1: np.ndarray, title: str, path: Path) -> None:
    """ROC curve (left) and calibration curve (right) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (roc, cal) = plt.subplots(1, 2, figsize=(9, 4.2), dpi=110)
    fpr, tpr = roc_points(y, p1)
    if len(fpr):
        roc.plot(fpr, tpr, color="C0", label=f"AUC {roc_auc(y, p1):.3f}")
        roc.legend(loc="lower right")
    else:
        roc.text(0.5, 0.5, "ROC n/a: one class only", ha="center")
    roc.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    roc.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC", xlim=(0, 1), ylim=(0, 1.02))
    points = calibration_points(np.asarray(y), np.asarray(p1))
    cal.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    cal.plot([q["predicted"] for q in points], [q["observed"] for q in points], marker="o", color="C1")
    cal.set(xlabel="predicted probability of class 1", ylabel="observed share of class 1",
            title=f"calibration ({CALIBRATION_BINS} bins)", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (roc, cal):
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def metrics_table(metrics: dict[str, Any]) -> str:
    """The metrics as aligned text lines for the terminal."""
    lines = []
    for key in ("n", "accuracy", "balanced_accuracy", "roc_auc", "sensitivity", "specificity", "brier"):
        value = metrics[key]
        lines.append(f"{key:<18} {value:.4f}" if isinstance(value, float) else f"{key:<18} {value}")
    (tn, fp), (fn, tp) = metrics["confusion_matrix"]["values"]
    lines += ["confusion matrix   predicted 0  predicted 1", f"  true 0           {tn:>11}  {fp:>11}",
              f"  true 1           {fn:>11}  {tp:>11}"]
    return "\n".join(lines)
