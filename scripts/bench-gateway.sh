#!/usr/bin/env bash
# Side-by-side benchmark: the gateway (--threads 1) against HAProxy 2.6 with jwt_verify
# (single thread), both in front of the same nginx upstream, same wrk settings, in one run.
#
#   scripts/bench-gateway.sh [RUNS]      (default 3 runs; PEERS_DURATION, PEERS_CONNECTIONS as in peers.sh)
#
# Needs ../shared/bench/peers.sh (or PEERS_SH=path). Prints one table per run and the ratios
# gateway/HAProxy for requests/s and p99 (p99 ratio < 1 means the gateway's tail is lower).
# A last row loads Benchmarks/RelayCeiling (SwiftNIO relaying bytes, no HTTP) beside HAProxy's
# plain proxy: the ceiling any NIO-based proxy starts from on this machine.
#
# Then every row again in PAIRS (default 6; 0 skips them) pairs of SLICE (default 4s) loads,
# HAProxy and gateway back to back, the order swapped every pair: on a machine with spells of
# noise that last seconds, a ratio of two loads seconds apart says more than one of two loads
# in different spells. Every pair is printed, then per row the median ratios and how many
# pairs meet the row's target (the issue's: plain >= 1.0, ES256 >= 3.0, RS256 >= 2.0,
# HS256 >= 1.0, ES256-unique >= 1.0, ES256-expired >= 3.0; p99 no worse than HAProxy's).
# HS256-unique: 10,000 distinct HS256 tokens in turn (HAProxy's HS256 peer gets the same list).
# ES256-cookie: the ES256 token in `Cookie: sb-access-token=...` (the gateway's token source
# `cookie:sb-access-token`) on /cookie/, a required route with forward_authorization = false
# (the gateway cuts the token cookie from what it forwards), against HAProxy verifying the same
# token as a bearer: the path that used to hand the request to the full HTTP stack. Both >= 1.0.
# ES256-expired: every request carries the same ES256 token, signed by the peers' key and
# expired an hour ago; HAProxy verifies it, then checks exp, and answers 401; the gateway
# answers 401 expired from its refusal cache (a signed-out user's old token sent in a loop). Each pair also gives the
# CPU time each proxy's process spent per request: on two cores shared with wrk and nginx, a
# proxy's requests/s depend on how the scheduler shares them out, its CPU per request much less.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
. scripts/bench-common.sh
bench_need_peers bench-gateway

scripts/install-deps.sh --runtime-only
scripts/build-release.sh --product gateway >/dev/null
scripts/build-release.sh --product relay-ceiling >/dev/null
RELAY_PORT=$((PORT + 10))
work=$(mktemp -d)
trap 'kill ${gw:-} ${relay:-} 2>/dev/null || true; bash "$PEERS_SH" stop >/dev/null 2>&1 || true' EXIT
bench_start_gateway "$work"
# The expired token, made like peers' tokens.py makes the others (its claims, an hour past exp).
python3 - "$PEERS_DIR" "$(dirname "$PEERS_SH")" <<'PY'
import sys, time, uuid
sys.path.insert(0, sys.argv[2])
from tokens import claims, sign
from cryptography.hazmat.primitives import serialization
d = sys.argv[1]
key = serialization.load_pem_private_key(open(f"{d}/keys/es256.pem", "rb").read(), None)
payload = claims(int(time.time()) - 7200, str(uuid.uuid4()))
payload["exp"] = int(time.time()) - 3600
open(f"{d}/tokens/ES256-expired.jwt", "w").write(sign("ES256", key, payload) + "\n")
# 10,000 distinct HS256 tokens, as tokens.py makes the ES256 ones.
secret = open(f"{d}/keys/hs256.secret", "rb").read()
now = int(time.time())
with open(f"{d}/tokens/HS256-unique.txt", "w") as f:
    for _ in range(10000):
        f.write(sign("HS256", secret, claims(now, str(uuid.uuid4()))) + "\n")
PY
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$PEERS_DIR/tokens/ES256-expired.jwt")" "http://127.0.0.1:$PORT/")
[ "$code" = 401 ] || { echo "bench-gateway: the gateway answered the expired token $code" >&2; exit 1; }
.build/release/relay-ceiling "$RELAY_PORT" 18090 >/dev/null 2>&1 &
relay=$!

# bench_load PORT KIND [DURATION]: peers.sh load, and ES256-cookie (the ES256 token in a cookie),
# printed in peers.sh's format.
bench_load() {
  local port=$1 kind=$2 dur=${3:-${PEERS_DURATION:-8s}}
  if [ "$kind" != ES256-cookie ]; then PEERS_DURATION=$dur bash "$PEERS_SH" load "$port" "$kind"; return; fi
  local lua="$PEERS_DIR/wrk-ES256-cookie.lua" out rps p99 non2xx
  printf 'local t = io.open("%s"):read("*l")\nrequest = function() return wrk.format("GET", "/cookie/", { ["Cookie"] = "theme=dark; sb-access-token=" .. t }) end\n' "$PEERS_DIR/tokens/ES256.jwt" > "$lua"
  out=$(wrk -t"${PEERS_THREADS:-1}" -c"${PEERS_CONNECTIONS:-64}" -d"$dur" --latency -s "$lua" "http://127.0.0.1:$port/" 2>&1)
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out"); p99=$(awk '$1=="99%" {print $2}' <<<"$out"); non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '%-6s %-13s rps=%s p99=%s non2xx=%s\n' "$port" "$kind" "${rps:-?}" "${p99:-?}" "${non2xx:-0}"
}
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: sb-access-token=$(cat "$PEERS_DIR/tokens/ES256.jwt")" "http://127.0.0.1:$PORT/cookie/")
[ "$code" = 200 ] || { echo "bench-gateway: the gateway answered the cookie token $code" >&2; exit 1; }

to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else if (v ~ /s$/) { sub(/s$/, "", v); print v * 1000 } else print v }'; }

for run in $(seq 1 "$RUNS"); do
  echo "run $run/$RUNS (wrk -t${PEERS_THREADS:-1} -c${PEERS_CONNECTIONS:-64} -d${PEERS_DURATION:-8s})"
  out=$(bash "$PEERS_SH" compare "$PORT")
  printf '%-14s %12s %10s %12s %10s %9s %9s\n' kind haproxy_rps p99_ms gateway_rps p99_ms rps_ratio p99_ratio
  out+=$'\n'$(bench_load 18081 ES256-expired)$'\n'$(bench_load "$PORT" ES256-expired)
  out+=$'\n'$(bench_load 18084 HS256-unique)$'\n'$(bench_load "$PORT" HS256-unique)
  out+=$'\n'$(bench_load "$PORT" ES256-cookie)
  for kind in none ES256 RS256 HS256 ES256-unique ES256-expired HS256-unique ES256-cookie; do
    pkind=$kind; [ "$kind" = ES256-cookie ] && pkind=ES256
    peer=$(awk -v k="$pkind" -v p="$PORT" '$2==k && $1!=p' <<<"$out" | head -1)
    ours=$(awk -v k="$kind" -v p="$PORT" '$2==k && $1==p' <<<"$out" | head -1)
    prps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$peer"); grps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$ours")
    pp99=$(to_ms "$(sed -n 's/.*p99=\([^ ]*\).*/\1/p' <<<"$peer")"); gp99=$(to_ms "$(sed -n 's/.*p99=\([^ ]*\).*/\1/p' <<<"$ours")")
    awk -v k="$kind" -v a="$prps" -v b="$pp99" -v c="$grps" -v d="$gp99" \
      'BEGIN { printf "%-14s %12.0f %10.2f %12.0f %10.2f %8.2fx %8.2fx\n", k, a, b, c, d, (a > 0 ? c / a : 0), (b > 0 ? d / b : 0) }'
  done
  # The floor: SwiftNIO relaying bytes with no HTTP at all, against the same nginx.
  relay_rps=$(bash "$PEERS_SH" load "$RELAY_PORT" none | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')
  plain_rps=$(bash "$PEERS_SH" load 18085 none | sed -n 's/.*rps=\([0-9.]*\).*/\1/p')
  awk -v r="$relay_rps" -v h="$plain_rps" 'BEGIN { printf "%-14s %12.0f %10s %12.0f %10s %8.2fx   (SwiftNIO byte relay, no HTTP: the floor under the gateway)\n", "relay-ceiling", h, "", r, "", (h > 0 ? r / h : 0) }'
  echo
done

# Every row again in interleaved pairs: HAProxy and gateway loaded back to back for SLICE each,
# the order swapped every pair, PAIRS pairs a row; each pair's ratios, then per row the median
# ratios and how many pairs meet the row's target.
pairs=${PAIRS:-6}
if [ "$pairs" -gt 0 ]; then
  slice=${SLICE:-4s}
  echo "every row in $pairs interleaved pairs (wrk -t${PEERS_THREADS:-1} -c${PEERS_CONNECTIONS:-64} -d$slice each, HAProxy and gateway back to back, order swapped every pair)"
  echo "(us/req: CPU time of the proxy's process per request, user + system, from /proc over the load; cpu_ratio < 1: the gateway spends less)"
  printf '%-14s %4s %12s %10s %12s %10s %9s %9s %8s %8s %9s\n' kind pair haproxy_rps p99_ms gateway_rps p99_ms rps_ratio p99_ratio hap_us gw_us cpu_ratio
  summary=$work/summary
  haproxy_pid=$(cat "$PEERS_DIR/haproxy.run.pid")
  tick_us=$(awk -v t="$(getconf CLK_TCK)" 'BEGIN { print 1000000 / t }')
  # cpu_load PID PORT KIND: a load, and " ticks=N": the CPU clock ticks PID used meanwhile.
  cpu_load() {
    local before after out
    before=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
    out=$(bench_load "$2" "$3" "$slice")
    after=$(awk '{ print $14 + $15 }' "/proc/$1/stat")
    echo "$out ticks=$((after - before))"
  }
  : > "$summary"
  median() { sort -n | awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
  for kind in none ES256 RS256 HS256 ES256-unique ES256-expired HS256-unique ES256-cookie; do
    peer_kind=$kind
    case $kind in none) peer_port=18085 target=1.0 ;; ES256) peer_port=18081 target=3.0 ;; RS256) peer_port=18083 target=2.0 ;;
                  HS256) peer_port=18084 target=1.0 ;; ES256-unique) peer_port=18081 target=1.0 ;;
                  ES256-expired) peer_port=18081 target=3.0 ;; HS256-unique) peer_port=18084 target=1.0 ;;
                  ES256-cookie) peer_port=18081 target=1.0 peer_kind=ES256 ;; esac
    rows=$work/pairs-$kind
    : > "$rows"
    for pair in $(seq 1 "$pairs"); do
      if [ $((pair % 2)) = 1 ]; then
        peer=$(cpu_load "$haproxy_pid" "$peer_port" "$peer_kind"); ours=$(cpu_load "$gw" "$PORT" "$kind")
      else
        ours=$(cpu_load "$gw" "$PORT" "$kind"); peer=$(cpu_load "$haproxy_pid" "$peer_port" "$peer_kind")
      fi
      prps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$peer"); grps=$(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$ours")
      pp99=$(to_ms "$(sed -n 's/.*p99=\([^ ]*\).*/\1/p' <<<"$peer")"); gp99=$(to_ms "$(sed -n 's/.*p99=\([^ ]*\).*/\1/p' <<<"$ours")")
      pticks=$(sed -n 's/.*ticks=\([0-9]*\).*/\1/p' <<<"$peer"); gticks=$(sed -n 's/.*ticks=\([0-9]*\).*/\1/p' <<<"$ours")
      awk -v k="$kind" -v n="$pair" -v a="$prps" -v b="$pp99" -v c="$grps" -v d="$gp99" -v pt="$pticks" -v gt="$gticks" -v us="$tick_us" -v s="${slice%s}" \
        'BEGIN { pu = (a > 0 ? pt * us / (a * s) : 0); gu = (c > 0 ? gt * us / (c * s) : 0)
                 printf "%-14s %4s %12.0f %10.2f %12.0f %10.2f %8.2fx %8.2fx %8.2f %8.2f %8.2fx\n", k, n, a, b, c, d, (a > 0 ? c / a : 0), (b > 0 ? d / b : 0), pu, gu, (pu > 0 ? gu / pu : 0) }' | tee -a "$rows"
    done
    rps_median=$(awk '{ sub(/x$/, "", $7); print $7 }' "$rows" | median)
    p99_median=$(awk '{ sub(/x$/, "", $8); print $8 }' "$rows" | median)
    met=$(awk -v t="$target" '{ sub(/x$/, "", $7); if ($7 + 0 >= t) n++ } END { print n + 0 }' "$rows")
    tail_met=$(awk '{ sub(/x$/, "", $8); if ($8 + 0 <= 1) n++ } END { print n + 0 }' "$rows")
    cpu_median=$(awk '{ sub(/x$/, "", $11); print $11 }' "$rows" | median)
    printf '%-14s %8.2fx %8.2fx %8.2fx   rps_ratio >= %s in %s of %s pairs, p99_ratio <= 1 in %s of %s\n' \
      "$kind" "$rps_median" "$p99_median" "$cpu_median" "$target" "$met" "$pairs" "$tail_met" "$pairs" >> "$summary"
  done
  echo
  echo "medians of the pairs"
  printf '%-14s %9s %9s %9s\n' kind rps_ratio p99_ratio cpu_ratio
  cat "$summary"
fi
