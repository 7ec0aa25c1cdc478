#!/usr/bin/env bash
# Installs the system programs some tests need (Debian packages), only those that are missing:
# openssh-server (sshd, for the SSH bring-up test), tmux (the monitor in a real terminal,
# tests/tui/test_up_in_tmux.py) and faketime (libfaketime: a host whose clock is hours off,
# tests/integration/test_clock_skew.py). Needs root to install; without root it installs nothing and the
# tests that need a missing program skip with the reason.
set -euo pipefail
missing=()
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
  missing+=(openssh-server)
fi
if ! command -v tmux >/dev/null 2>&1; then
  missing+=(tmux)
fi
if ! command -v faketime >/dev/null 2>&1; then
  missing+=(faketime)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ci-packages: not installing ${missing[*]} (needs root and apt-get); tests that need them skip" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
