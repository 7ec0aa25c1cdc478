#!/usr/bin/env bash
# Installs the project into .venv, lints and type-checks it, and runs the whole test suite (what CI
# runs): first what plain `pytest` runs, then the long suites it leaves out (markers fuzz, netns,
# ssh, tmux, build, chaos; see the README's Testing section). Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check lanscatter tui tests benchmarks
.venv/bin/mypy lanscatter tui
.venv/bin/python -m pytest -q --durations=15 "$@"
status=0
.venv/bin/python -m pytest -q -m "fuzz or netns or ssh or tmux or build or chaos" "$@" || status=$?
# 5: nothing of the long suites among the tests asked for (e.g. a path given as an argument)
if [ "$status" -ne 0 ] && [ "$status" -ne 5 ]; then
  exit "$status"
fi
