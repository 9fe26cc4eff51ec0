#!/usr/bin/env bash
# Run a whole local swarm end to end (the README's first command); sets the project up first if needed.
# Default: the four UCI Heart Disease hospitals as four node processes on a local anvil chain.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/swarm.py "$@"
