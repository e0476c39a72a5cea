#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite: Debian's postgresql-15, its own data folder and
# port on loopback, trust auth, started as the postgres user (it refuses to run as root).
#
#   scripts/postgres.sh start    install if missing, init, start; prints the URL
#   scripts/postgres.sh stop
#   scripts/postgres.sh url
set -euo pipefail
PGDIR=${GATEWAY_PG_DIR:-/tmp/gateway-pg}
PGPORT=${GATEWAY_PG_PORT:-55432}
URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"

bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && { echo "$d"; return; }; done
  return 1
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if ! bin >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  local b; b=$(bin)
  # Debian's package may start its own cluster on 5432; ours is separate and left alone.
  if [ ! -f "$PGDIR/PG_VERSION" ]; then
    rm -rf "$PGDIR"; mkdir -p "$PGDIR"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$PGDIR"
    as_postgres "$b/initdb" -D "$PGDIR" -U postgres --auth=trust -E UTF8 >/dev/null
  fi
  if ! as_postgres "$b/pg_ctl" -D "$PGDIR" status >/dev/null 2>&1; then
    as_postgres "$b/pg_ctl" -D "$PGDIR" -l "$PGDIR/server.log" -w -t 60 \
      -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1 -c fsync=on" start >/dev/null
  fi
  echo "$URL"
}

stop() {
  local b; b=$(bin) || return 0
  as_postgres "$b/pg_ctl" -D "$PGDIR" -m fast stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$URL" ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
