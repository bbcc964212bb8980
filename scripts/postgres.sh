#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback for the multi-worker and storage tests.
#   scripts/postgres.sh start DIR   -> prints the SQLAlchemy URL of a fresh database
#   scripts/postgres.sh stop DIR
# Installs Debian's postgresql when absent (needs root and the package registry). The server refuses
# to run as root, so the data directory belongs to the 'postgres' user when we are root.
set -euo pipefail
action=${1:?usage: postgres.sh start|stop DIR}
dir=${2:?usage: postgres.sh start|stop DIR}

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
start)
  bin=$(find_bin)
  if [ -z "$bin" ]; then
    echo "installing postgresql from Debian's packages" >&2
    bash "$(dirname "$0")/apt_install.sh" postgresql >&2
    bin=$(find_bin)
  fi
  [ -n "$bin" ] || { echo "postgresql is not installed and could not be installed" >&2; exit 1; }
  rm -rf "$dir"
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
  as_owner "$bin/initdb" -D "$dir/data" -U hpsearch --auth=trust -E UTF8 >/dev/null
  # A free loopback port chosen by the kernel, so parallel runs never collide.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=200" start >/dev/null
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U hpsearch hpsearch_test
  # The documented form (docs/parallel.md): SQLAlchemy 2.1 reads postgresql:// as psycopg (version 3), the postgres extra.
  echo "postgresql://hpsearch@127.0.0.1:$port/hpsearch_test"
  ;;
stop)
  bin=$(find_bin)
  if [ -n "$bin" ] && [ -d "$dir/data" ]; then
    as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
  ;;
*)
  echo "usage: postgres.sh start|stop DIR" >&2; exit 2 ;;
esac
