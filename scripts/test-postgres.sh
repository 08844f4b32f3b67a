#!/usr/bin/env bash
# A throwaway PostgreSQL 15 for the tests: its own data directory, a free
# port on 127.0.0.1, the socket in that directory, trust authentication.
#   scripts/test-postgres.sh start DIR   prints postgresql://postgres@127.0.0.1:PORT
#   scripts/test-postgres.sh stop DIR    stops it (fast) and removes DIR
#   scripts/test-postgres.sh halt DIR    stops it, keeps DIR (start again later)
#   scripts/test-postgres.sh pause DIR   SIGSTOP to the server and its backends: the
#                                        connections stay open and nothing answers
#   scripts/test-postgres.sh resume DIR  SIGCONT to them
# As root it runs the server as the unprivileged user `nobody` (initdb
# refuses root); then DIR is given to nobody and DIR's parents get o+x (the
# server must reach its directory), nothing else outside DIR changes. PG_SERVER_OPTS adds
# server settings ("-c shared_buffers=512MB" for the bench).
set -euo pipefail

cmd="${1:?usage: test-postgres.sh start|stop|halt|pause|resume DIR}"
dir="${2:?usage: test-postgres.sh start|stop|halt|pause|resume DIR}"
bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [ "$(id -u)" -eq 0 ]; then
      chown nobody:nogroup "$dir"
      # The server must reach its directory through every parent.
      p="$dir"; while [ "$p" != / ]; do p="$(dirname "$p")"; chmod o+x "$p" 2>/dev/null || true; done
    fi
    if [ -f "$dir/url" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      cat "$dir/url"; exit 0  # already running
    fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-instructions \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    # A restart keeps its port; a first start whose port was taken meanwhile
    # tries again on another (scripts/free-ports), three times.
    for attempt in 1 2 3; do
      port="$(cat "$dir/port" 2>/dev/null || "$(dirname "$0")/free-ports")"
      if as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 ${PG_SERVER_OPTS:-}" >/dev/null; then
        break
      fi
      tail -n 5 "$dir/server.log" >&2
      if [ -f "$dir/port" ] || [ "$attempt" -eq 3 ]; then exit 1; fi
      echo "test-postgres.sh: start on port $port failed, trying another" >&2
    done
    echo "$port" >"$dir/port"
    echo "postgresql://postgres@127.0.0.1:$port" | tee "$dir/url"
    ;;
  stop|halt)
    if [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
    fi
    if [ "$cmd" = stop ]; then rm -rf "$dir"; fi
    ;;
  pause|resume)
    sig=STOP; [ "$cmd" = resume ] && sig=CONT
    pid="$(head -1 "$dir/data/postmaster.pid")"
    # The postmaster first (it forks no new backend meanwhile), then the rest.
    kill -"$sig" "$pid"
    pkill -"$sig" -P "$pid" || true
    ;;
  *)
    echo "test-postgres.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
