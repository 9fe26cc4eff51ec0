#!/usr/bin/env bash
# Reproduce every MedSwarm benchmark and write reports/bench/ (JSON, markdown, PNG plots).
#   scripts/bench_all.sh            full suite (~20 min on 2 cores)
#   scripts/bench_all.sh --quick    seconds-long smoke versions
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=${BENCH_OUT:-reports/bench}
RUNS=${BENCH_RUNS:-runs/bench}
mkdir -p "$OUT"
start=$(date +%s)
"$PY" -m scripts.bench.learning --out "$OUT" --runs "$RUNS/learning" "$@"
"$PY" -m scripts.bench.quality --out "$OUT" --runs "$RUNS/quality" --arms default,bestval,heart,mean,median,ladam+lr0.01+median "$@"
"$PY" -m scripts.bench.heartswarm --out "$OUT" --runs "$RUNS/heartswarm" "$@"
"$PY" -m scripts.bench.systems --out "$OUT" --runs "$RUNS/systems" "$@"
"$PY" -m scripts.bench.robustness --out "$OUT" --runs "$RUNS/robustness" "$@"
"$PY" -m scripts.bench.contribution --out "$OUT" --runs "$RUNS/contribution" "$@"
"$PY" -m scripts.bench.incentives --out "$OUT" --runs "$RUNS/incentives" "$@"
"$PY" -m scripts.bench.compression --out "$OUT" --runs "$RUNS/compression" "$@"
"$PY" -m scripts.bench.sampling --out "$OUT" --runs "$RUNS/sampling" "$@"
"$PY" -m scripts.bench.chainreads --out "$OUT" --runs "$RUNS/chainreads" "$@"
"$PY" -m scripts.bench.scenarios --out "$OUT" --runs "$RUNS/scenarios" "$@"
"$PY" -m scripts.bench.privacy --out "$OUT" "$@"
"$PY" -m scripts.bench.transport --out "$OUT" --runs "$RUNS/transport" "$@"
"$PY" -m scripts.bench.startup --out "$OUT" --runs "$RUNS/startup" "$@"
secs=$(( $(date +%s) - start ))
{
  echo "# MedSwarm benchmarks"
  echo
  echo "Reproduce: \`scripts/bench_all.sh $*\` (whole suite: ${secs} s on $(nproc) CPUs, $(date -u +%Y-%m-%d))."
  echo
  for part in learning quality heartswarm systems robustness contribution incentives compression sampling chainreads scenarios privacy transport startup; do
    sed 's/^# /## /; s/^## /### /' "$OUT/$part.md" | sed '1s/^### /## /'
    echo
  done
} > "$OUT/summary.md"
echo "{\"suite_seconds\": $secs, \"args\": \"$*\"}" > "$OUT/suite.json"
if [[ " $* " != *" --quick "* ]]; then  # the README's plots come from full runs only
  mkdir -p docs/img
  cp "$OUT/learning_curves.png" "$OUT/heartswarm.png" "$OUT/systems_phases.png" "$OUT/scenarios.png" "$OUT/privacy.png" docs/img/
fi
echo "benchmarks done in ${secs}s: $OUT/summary.md"
