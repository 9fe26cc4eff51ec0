"""Write the four UCI heart hospitals as a per-hospital train/test split, as the FLamby
Fed-Heart-Disease benchmark describes it, into node/data/heart_split/ (committed).

    .venv/bin/python -m scripts.heart_split [--out node/data/heart_split] [--check]

The benchmark's recipe (Ogier du Terrail et al., NeurIPS 2022 Datasets and Benchmarks): per
hospital, keep the 10 attributes age, sex, cp, trestbps, chol, fbs, restecg, thalach, exang,
oldpeak (13 inputs once cp and restecg are one-hot with a reference level dropped), drop every row
with a missing value among them (740 of 920 rows stay), label = disease (num > 0), and split each
hospital 66 / 34 into train and test, stratified by label when both classes have more than two
rows (Switzerland, 45 positive and 1 negative, is split unstratified). That gives 486 train and
254 test rows. The row draw is ours (seeded below, fixed once, never tuned): the benchmark's own
split is made with another generator, so the rows differ but the sizes and the recipe match.

``--draw benchmark`` writes the benchmark's own draw instead (its code's: scikit-learn's
`train_test_split`, random_state 43, each hospital's rows in the order of UCI's processed files,
which our CSV keeps), in the same columns, to ``--out`` (required then: that split is the
benchmark's test, not ours, so nothing ships it and nothing was chosen on it).

Zeros are kept as they are in the source (Switzerland records cholesterol 0 for every patient):
the benchmark drops only missing cells. Columns written: the 10 attributes (sex, fbs, exang as
0/1; cp and restecg as their text categories, which `--data` one-hots) and `target`.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

import numpy as np

from node.datasets import HEART_CSV, HEART_HOSPITALS

ATTRIBUTES = ("age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalch", "exang", "oldpeak")
BINARY = {"sex": ("Male", "Female"), "fbs": ("TRUE", "FALSE"), "exang": ("TRUE", "FALSE")}
TRAIN_FRACTION = 0.66
SEED = 20221128  # fixed when the split was first written; not a tuned value
OUT = Path(__file__).resolve().parents[1] / "node" / "data" / "heart_split"


def _rows(hospital: str) -> tuple[list[dict[str, str]], np.ndarray]:
    with HEART_CSV.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["dataset"] == hospital]
    kept = [r for r in rows if all(r[c].strip() for c in ATTRIBUTES + ("num",))]
    out = []
    for r in kept:
        row = {c: r[c].strip() for c in ATTRIBUTES}
        for c, (yes, no) in BINARY.items():
            row[c] = {yes: "1", no: "0"}[row[c]]
        row["target"] = "1" if int(r["num"]) > 0 else "0"
        out.append(row)
    return out, np.array([int(r["target"]) for r in out])


def split(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Boolean train mask: floor(66%) of rows, stratified when every class has more than 2 rows."""
    n_train = math.floor(TRAIN_FRACTION * len(y))
    classes, counts = np.unique(y, return_counts=True)
    mask = np.zeros(len(y), dtype=bool)
    if len(classes) < 2 or counts.min() <= 2:
        mask[rng.permutation(len(y))[:n_train]] = True
        return mask
    quota = counts * n_train / len(y)  # largest remainder: per-class shares that sum to n_train
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[:n_train - take.sum()]] += 1
    for label, k in zip(classes, take):
        idx = np.flatnonzero(y == label)
        mask[idx[rng.permutation(len(idx))[:k]]] = True
    return mask


def benchmark_split(y: np.ndarray) -> np.ndarray:
    """Boolean train mask as the benchmark's code draws it (scikit-learn, random_state 43)."""
    from sklearn.model_selection import train_test_split

    classes, counts = np.unique(y, return_counts=True)
    stratify = y if len(classes) > 1 and counts.min() > 2 else None
    train, _ = train_test_split(np.arange(len(y)), test_size=1.0 - TRAIN_FRACTION, train_size=TRAIN_FRACTION,
                                random_state=43, shuffle=True, stratify=stratify)
    mask = np.zeros(len(y), dtype=bool)
    mask[train] = True
    return mask


DRAWS = {"ours": lambda y, h: split(y, np.random.default_rng([SEED, h])), "benchmark": lambda y, h: benchmark_split(y)}


def render(draw: str = "ours") -> dict[str, str]:
    """File name -> CSV text of every hospital's train and test file, rows drawn by `draw`."""
    files = {}
    for h, hospital in enumerate(HEART_HOSPITALS):
        rows, y = _rows(hospital)
        mask = DRAWS[draw](y, h)
        name = hospital.lower().replace(" ", "-")
        for part, keep in (("train", mask), ("test", ~mask)):
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(ATTRIBUTES) + ["target"], lineterminator="\n")
            writer.writeheader()
            writer.writerows(r for r, k in zip(rows, keep) if k)
            files[f"{name}_{part}.csv"] = buf.getvalue()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, help=f"the folder to write (default for our draw: {OUT})")
    parser.add_argument("--check", action="store_true", help="verify the files in --out instead of writing")
    parser.add_argument("--draw", choices=sorted(DRAWS), default="ours",
                        help="whose row draw: ours (shipped) or the benchmark's own (FLamby's code)")
    args = parser.parse_args(argv)
    if args.out is None:
        if args.draw != "ours":
            parser.error("--draw benchmark needs --out: the benchmark's test rows are not shipped")
        args.out = OUT
    files = render(args.draw)
    if args.check:
        stale = [n for n, text in files.items() if not (args.out / n).is_file() or (args.out / n).read_text() != text]
        if stale:
            print(f"{args.out}: out of date: {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.out / name).write_text(text)
    counts = {n: text.count("\n") - 1 for n, text in files.items()}
    print(", ".join(f"{n} {c}" for n, c in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
