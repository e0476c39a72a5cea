#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs what is missing, starts a throwaway
# PostgreSQL (scripts/postgres.sh) for the store suite, builds, runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# A fresh PostgreSQL data folder for this run, removed afterwards.
export GATEWAY_PG_DIR=${GATEWAY_PG_DIR:-/tmp/gateway-pg-test-$$}
GATEWAY_POSTGRES_URL=$(scripts/postgres.sh start)
export GATEWAY_POSTGRES_URL
trap 'scripts/postgres.sh stop; rm -rf "$GATEWAY_PG_DIR"' EXIT
swift build --build-tests
swift test
