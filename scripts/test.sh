#!/usr/bin/env bash
# Run the whole test suite (the README's test command); sets the project up first if needed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
