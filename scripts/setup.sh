#!/usr/bin/env bash
# Set up MedSwarm on a fresh machine: a Python venv in .venv with the project installed
# (torch pinned to its CPU build), and the pinned npm toolchain (solc, anvil, cast).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: any other version pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[test]"

if command -v npm >/dev/null 2>&1; then
    if [ -f package-lock.json ]; then
        npm ci --silent --no-audit --no-fund
    else
        npm install --silent --no-audit --no-fund
    fi
else
    echo "setup: npm not found; anvil, cast and the Solidity compiler will be unavailable" >&2
fi
echo "setup: done (.venv ready; activate with 'source .venv/bin/activate')"
