#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs what is missing, starts a throwaway
# PostgreSQL (scripts/postgres.sh) for the store suite, builds, runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# A fresh PostgreSQL data folder for this run, removed afterwards.
export GATEWAY_PG_DIR=${GATEWAY_PG_DIR:-/tmp/gateway-pg-test-$$}
# A free loopback port, so a PostgreSQL already running here (another checkout's) is no obstacle.
export GATEWAY_PG_PORT=${GATEWAY_PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
GATEWAY_POSTGRES_URL=$(scripts/postgres.sh start)
export GATEWAY_POSTGRES_URL
trap 'scripts/postgres.sh stop; rm -rf "$GATEWAY_PG_DIR"' EXIT
swift build --build-tests
swift test
# Fuzzing (Fuzz/README.md): a bounded run of every libFuzzer target, after the unit tests.
# Off unless GATEWAY_FUZZ_CI=1: only the project's targets are instrumented now, but the fuzz
# products still need their own release build of the whole dependency graph (.build-fuzz),
# which took 16.6 minutes from a clean folder on this two-core machine (Fuzz/README.md), far
# over what CI can add. With it: 20 s per target, 8 targets (GATEWAY_FUZZ_SECONDS), under 3 min.
if [ "${GATEWAY_FUZZ_CI:-0}" = 1 ]; then
  scripts/fuzz.sh --time "${GATEWAY_FUZZ_SECONDS:-20}"
fi
