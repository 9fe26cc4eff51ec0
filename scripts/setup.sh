#!/usr/bin/env bash
# Set up MedSwarm on a fresh machine: a Python venv in .venv with the project installed
# (torch pinned to its CPU build), and the pinned npm toolchain (solc, anvil, cast).
# Re-running is cheap: a stamp records what was installed and skips work that is current.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
stamp=.venv/.medswarm-setup
want=$(cat pyproject.toml package.json package-lock.json | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d node_modules/solc ]; then
    exit 0
fi

echo "setup: creating .venv and installing MedSwarm (torch 2.13.0 CPU, libp2p, web3, ...)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip 2>/dev/null
# torch first and pinned: any other version pulls a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[test]"
.venv/bin/python -c "import torch, libp2p, web3, node, p2p, incentive"
# The project's own bytecode, once: where PYTHONDONTWRITEBYTECODE is set (CI images) every node
# process would otherwise compile these modules again (about 0.2 s of each start).
.venv/bin/python -m compileall -q node p2p incentive scripts tests > /dev/null

if ! command -v npm >/dev/null 2>&1; then
    echo "setup: npm is required for the Solidity compiler, anvil and cast (install Node.js 20+)" >&2
    exit 1
fi
echo "setup: installing the pinned npm toolchain (solc 0.8.37, anvil and cast 1.7.1)"
npm ci --silent --no-audit --no-fund
echo "$want" > "$stamp"
echo "setup: done"
