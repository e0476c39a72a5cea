#!/usr/bin/env bash
# Installs what is missing, builds the gateway (release), makes development keys in Keys/ on
# first run, and starts it with gateway.conf (listening on 127.0.0.1:8080 by default).
# Extra arguments go to `gateway serve`, e.g. scripts/run.sh --threads 2.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --runtime-only
scripts/build-release.sh --product gateway
exec .build/release/gateway serve --config gateway.conf "$@"
