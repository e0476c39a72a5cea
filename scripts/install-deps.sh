#!/usr/bin/env bash
# Installs what the gateway and its tests need and this machine lacks: Debian packages for the
# C libraries (OpenSSL libcrypto, jansson) and tools, and the Python clients the interop tests
# drive. Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pkg in libssl-dev libjansson-dev pkg-config openssl python3-pip; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  echo "install-deps: apt-get install ${need[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ "${1:-}" != "--runtime-only" ]; then
  if ! python3 -c 'import jwt, jwcrypto, cryptography, supabase_auth' 2>/dev/null; then
    echo "install-deps: pip install -r Tests/Interop/requirements.txt"
    python3 -m pip install -q -r Tests/Interop/requirements.txt
  fi
fi
