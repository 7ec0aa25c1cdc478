#!/usr/bin/env bash
# Debian packages the test suite uses beyond Python: tmux (the monitor tested in a real terminal,
# tests/tui/test_up_in_tmux.py). Installs only what is missing; needs root (CI runs as root).
# Without it those tests skip.
set -euo pipefail
missing=()
for pkg in tmux; do
  command -v "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ci-packages: missing ${missing[*]} (install them; the tests that need them skip meanwhile)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y --no-install-recommends "${missing[@]}"
