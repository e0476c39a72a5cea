#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it: installs what is missing, builds, runs every
# test target (JOSE, Gateway, CLI with PyJWT/jwcrypto interop).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test
