#!/usr/bin/env bash
# Creates .venv beside the project and installs lanscatter (editable) with its test extras.
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[test]'
# The package's bytecode, written once here: where PYTHONDONTWRITEBYTECODE is set, every process
# would otherwise compile each module it imports again at each start (about 0.1 s of CPU for a
# role, paid by every role of a rehearsal: docs/benchmarks.md, "Start-up"). Run it again after
# pulling changes.
.venv/bin/python -m compileall -q lanscatter tui >/dev/null
