# Sourced by the benchmark scripts (bench-gateway.sh, bench-cpu.sh): the peers, and the
# gateway they load, set up the same way.
#
#   PEERS_SH, PEERS_DIR      ../shared/bench/peers.sh and its directory (/tmp/gw-peers)
#   GATEWAY_BENCH_PORT       the gateway's port (18480)
PEERS_SH=${PEERS_SH:-../shared/bench/peers.sh}
PEERS_DIR=${PEERS_DIR:-/tmp/gw-peers}
PORT=${GATEWAY_BENCH_PORT:-18480}

# bench_need_peers NAME: stops with a message when peers.sh is missing.
bench_need_peers() {
  [ -f "$PEERS_SH" ] || { echo "$1: $PEERS_SH not found (set PEERS_SH)" >&2; exit 2; }
}

# bench_start_gateway WORK: starts the peers and `gateway serve --threads 1` with one
# optional-auth route to the peers' nginx (and /cookie/, required, forward_authorization = false), trusting the peers' keys (tokens in the Authorization
# header, apikey or the sb-access-token cookie); sets $gw (its pid) once
# it listens. Config and logs go to WORK.
bench_start_gateway() {
  local work=$1
  bash "$PEERS_SH" start
  chmod 600 "$PEERS_DIR"/keys/*.pem "$PEERS_DIR"/keys/*.secret 2>/dev/null || true
  cat > "$work/gateway.conf" <<CONF
[server]
listen = "127.0.0.1:$PORT"
access_log = "off"

[auth]
issuer = "http://127.0.0.1:8080/auth/v1"
audience = "authenticated"
keys = "$PEERS_DIR/keys"
token_sources = ["authorization", "apikey", "cookie:sb-access-token"]

# The cookie row's route: the token comes in the sb-access-token cookie, and the gateway cuts
# it (and any Authorization) from the request it forwards.
[[route]]
path = "/cookie/"
upstream = "http://127.0.0.1:18090"
auth = "required"
forward_authorization = false

[[route]]
path = "/"
upstream = "http://127.0.0.1:18090"
auth = "optional"
CONF
  .build/release/gateway serve --config "$work/gateway.conf" --threads 1 >"$work/out.log" 2>"$work/err.log" &
  gw=$!
  for _ in $(seq 1 100); do grep -q "listening" "$work/out.log" 2>/dev/null && return 0; sleep 0.1; done
  echo "gateway did not start: $(cat "$work/err.log")" >&2
  exit 1
}
