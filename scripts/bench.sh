#!/usr/bin/env bash
# Runs the throughput bench: installs its load generator (Debian's wrk) if missing, then
# `cargo bench --bench throughput`. PostgreSQL must be running (HERALD_TEST_PG, default
# postgres://postgres@127.0.0.1:5432/test). Settings: HERALD_BENCH_SECONDS (default 10),
# HERALD_BENCH_BACKLOGS (default 100000,1000000).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian's package)"
    if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi
# The plug-in phase runs the example plug-ins.
scripts/build-plugins.sh
exec cargo bench --locked --bench throughput "$@"
