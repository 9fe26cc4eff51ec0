#!/usr/bin/env bash
# Run the whole test suite (the README's test command); sets the project up first if needed.
#
# With no test paths given it runs in two phases: everything not marked `slow` on every core
# (pytest-xdist), then the `slow` tests (node processes, benchmark smoke runs) one at a time,
# since they time rounds against the wall clock and would starve each other. Given a path, a
# -k/-m/-n selection or an option with a separate value, it is one plain pytest run. The exit
# status is the first failing phase's.
# MEDSWARM_TEST_WORKERS sets the first phase's worker count (default: one per core).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

for arg in "$@"; do
    case "$arg" in
        -k|-m|-n|-k?*|-m?*|-n?*) exec .venv/bin/python -m pytest "$@" ;;
        -*) ;;
        *) exec .venv/bin/python -m pytest "$@" ;;  # a path, a test id or an option's value
    esac
done

status=0
.venv/bin/python -m pytest -n "${MEDSWARM_TEST_WORKERS:-auto}" -m "not slow" "$@" || status=$?
.venv/bin/python -m pytest -m slow "$@" || { rc=$?; [ "$status" -ne 0 ] || status=$rc; }
exit "$status"
