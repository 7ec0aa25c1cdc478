#!/usr/bin/env bash
# Installs the project into .venv, lints and type-checks it, and runs the whole test suite (what CI
# runs). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check lanscatter tui tests benchmarks
.venv/bin/mypy lanscatter tui
exec .venv/bin/python -m pytest -q "$@"
