#!/usr/bin/env bash
# Run the whole test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest "$@"
