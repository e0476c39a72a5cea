#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs what is missing, starts a throwaway
# PostgreSQL (scripts/postgres.sh) for the store suite, builds, runs every test target.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
GATEWAY_POSTGRES_URL=$(scripts/postgres.sh start)
export GATEWAY_POSTGRES_URL
trap 'scripts/postgres.sh stop' EXIT
swift build --build-tests
swift test
