#!/usr/bin/env bash
# `lanscatter simulate` with the planner and simulator compiled (scripts/build-fast-sim.py builds
# them into .fast/ when the sources changed). Same arguments, same results, about 1.6x faster.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="$ROOT/.venv/bin/python"
"$PY" "$ROOT/scripts/build-fast-sim.py" --out "$ROOT/.fast"
# -P: the current folder must not come first on the path (from the project root it would put the
# uncompiled sources ahead of the compiled copy).
PYTHONPATH="$ROOT/.fast" exec "$PY" -P -m lanscatter simulate "$@"
