#!/usr/bin/env bash
# Installs the programs the baseline benchmarks run (Debian packages): aria2c, opentracker, curl.
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq aria2 opentracker curl
