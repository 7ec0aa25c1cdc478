#!/usr/bin/env bash
# The main job, rehearsed on this machine: installs into .venv, generates a demo data set (once) and
# runs the three-site tree of examples/topologies/rehearsal.yaml, every host on its own 127.0.0.x
# address, link speeds emulated. Ctrl-C stops everything. Extra arguments go to `lanscatter up`,
# e.g. `./scripts/demo.sh --exit-when-synced --report report.json`.
#
# Disk: the data set (DEMO_SIZE, default 512MiB) is generated once in .demo/source, and each of the
# tree's other hosts keeps its own copy under examples/topologies/.lanscatter-rehearsal/ (about ten
# copies: 5 GiB at the default size). `up` says how much before it starts and asks before it would
# fill the disk; delete both folders to free the space. DEMO_SIZE=128MiB ./scripts/demo.sh for less
# (after deleting .demo/source: a source of another size is an error, not silently reused).
set -euo pipefail
cd "$(dirname "$0")/.."
# The install's own chatter (pip, setuptools) would bury what the demo says: shown only if it fails.
echo "demo: installing into .venv (about a minute the first time)" >&2
setup_log=$(mktemp)
if ! ./scripts/setup.sh >"$setup_log" 2>&1; then
  cat "$setup_log" >&2
  rm -f "$setup_log"
  exit 1
fi
rm -f "$setup_log"
size="${DEMO_SIZE:-512MiB}"
echo "demo: data set of $size in $(pwd)/.demo/source, host copies in $(pwd)/examples/topologies/.lanscatter-rehearsal" >&2
exec .venv/bin/lanscatter up examples/topologies/rehearsal.yaml --local --demo-data "$size" "$@"
