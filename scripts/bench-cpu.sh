#!/usr/bin/env bash
# CPU per request of the plain route, the steadier measure on a shared machine: the user and
# system CPU time of each proxy process (/proc/PID/stat) over a wrk load, divided by the
# requests it served. HAProxy's plain proxy and `gateway --threads 1` are loaded in turn,
# ROUNDS times, against the same nginx (../shared/bench/peers.sh), so both see the same
# spells of machine noise; the last lines are the medians.
#
#   scripts/bench-cpu.sh [ROUNDS]        (default 5; PEERS_DURATION as in peers.sh, default 5s here)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-5}
. scripts/bench-common.sh
DUR=${PEERS_DURATION:-5s}
bench_need_peers bench-cpu
scripts/install-deps.sh --runtime-only
scripts/build-release.sh --product gateway >/dev/null
work=$(mktemp -d)
trap 'kill ${gw:-} 2>/dev/null || true; bash "$PEERS_SH" stop >/dev/null 2>&1 || true' EXIT
bench_start_gateway "$work"
haproxy=$(cat "$PEERS_DIR/haproxy.run.pid")

# cost NAME PID PORT: one load, one line "NAME rps user sys total" (microseconds per request)
cost() {
  local name=$1 pid=$2 port=$3 u0 s0 u1 s1 out rps secs
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  out=$(PEERS_DURATION=$DUR bash "$PEERS_SH" load "$port" none)
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
  rps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$out")
  secs=${DUR%s}
  awk -v n="$name" -v r="$rps" -v d="$secs" -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v hz="$(getconf CLK_TCK)" \
    'BEGIN { q = r * d; printf "%-8s %9.0f %7.2f %7.2f %7.2f\n", n, r, u * 1e6 / hz / q, s * 1e6 / hz / q, (u + s) * 1e6 / hz / q }'
}

printf '%-8s %9s %7s %7s %7s   (CPU microseconds per request)\n' proxy rps user sys total
results=$work/results
for _ in $(seq 1 "$ROUNDS"); do
  cost haproxy "$haproxy" 18085 | tee -a "$results"
  cost gateway "$gw" "$PORT" | tee -a "$results"
done
echo "median round by total CPU, of $ROUNDS:"
for name in haproxy gateway; do
  awk -v n="$name" '$1 == n' "$results" | sort -k5 -n | awk -v n="$name" '{ a[NR] = $0 } END { m = a[int((NR + 1) / 2)]; print m }'
done
