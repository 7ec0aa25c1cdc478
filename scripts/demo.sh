#!/usr/bin/env bash
# The main job, rehearsed on this machine: installs into .venv, generates a demo data set (once) and
# runs the three-site tree of examples/topologies/rehearsal.yaml, every host on its own 127.0.0.x
# address, link speeds emulated. Ctrl-C stops everything. Extra arguments go to `lanscatter up`,
# e.g. `./scripts/demo.sh --exit-when-synced --report report.json`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/lanscatter up examples/topologies/rehearsal.yaml --local --demo-data 512MiB "$@"
