#!/usr/bin/env bash
# The release build every script uses: `swift build -c release` with dynamic exclusivity
# checks off in every module, dependencies included (-enforce-exclusivity=unchecked, as the
# Swift standard library itself is built). The compile-time exclusivity checks stay; the
# debug build the tests run keeps the dynamic ones too. On the proxy path they were about a
# tenth of the gateway's user CPU per request (swift_beginAccess and its thread-local
# access set, inside SwiftNIO). Use this script for every release build here: a release
# build with other flags rebuilds every module.
#
#   scripts/build-release.sh [swift build arguments, e.g. --product gateway]
set -euo pipefail
cd "$(dirname "$0")/.."
exec swift build -c release -Xswiftc -enforce-exclusivity=unchecked "$@"
