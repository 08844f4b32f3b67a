#!/usr/bin/env bash
# A throwaway NATS cluster for tests, the demo and the bench: N nats-server
# processes (default 3) on free 127.0.0.1 ports, routed to each other, with
# JetStream (files in DIR) and the system account's client DISCONNECT
# advisories imported into the application account, so a plain nats:// URL
# (no credentials: no_auth_user) sees a peer's connection end.
#   scripts/nats-cluster.sh start DIR [N]   prints the client URLs, comma-separated
#   scripts/nats-cluster.sh stop DIR        stops every server and removes DIR
#   scripts/nats-cluster.sh kill DIR I      kill -9 server I (1-based), keeps its files
#   scripts/nats-cluster.sh restart DIR I   starts server I again on its ports
set -euo pipefail

cmd="${1:?usage: nats-cluster.sh start|stop|kill|restart DIR [N|I]}"
dir="${2:?usage: nats-cluster.sh start|stop|kill|restart DIR [N|I]}"

wait_port() {  # PORT [I]: until it accepts, at most 20 s; fails at once if server I died
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [ -n "${2:-}" ] && ! kill -0 "$(cat "$dir/n$2.pid")" 2>/dev/null; then
      echo "nats-cluster.sh: server $2 exited before listening on 127.0.0.1:$1:" >&2
      tail -n 5 "$dir/n$2.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  echo "nats-cluster.sh: nothing listens on 127.0.0.1:$1" >&2
  tail -n 5 "$dir/n${2:-1}.log" >&2 || true
  return 1
}

stop_all() {
  for f in "$dir"/n*.pid; do
    [ -f "$f" ] || continue
    kill "$(cat "$f")" 2>/dev/null || true
  done
  for f in "$dir"/n*.pid; do
    [ -f "$f" ] || continue
    for _ in $(seq 1 50); do kill -0 "$(cat "$f")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$f")" 2>/dev/null || true
  done
}

launch() {  # I
  local i="$1"
  nohup nats-server -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
  echo $! >"$dir/n$i.pid"
}

case "$cmd" in
  start)
    n="${3:-3}"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    # A server that cannot bind (a port taken since it was chosen) or does not
    # come up in time: stop them all and try again on new ports, three times.
    for attempt in 1 2 3; do
      read -r -a ports <<<"$("$(dirname "$0")/free-ports" $((2 * n)))"
      routes=""
      for i in $(seq 1 "$n"); do
        echo "${ports[$((2 * i - 2))]} ${ports[$((2 * i - 1))]}" >"$dir/n$i.ports"
        routes="$routes nats://127.0.0.1:${ports[$((2 * i - 1))]}"
      done
      urls=""
      for i in $(seq 1 "$n"); do
        read -r port cport <"$dir/n$i.ports"
        cat >"$dir/n$i.conf" <<CONF
server_name: onl-n$i
listen: 127.0.0.1:$port
jetstream { store_dir: "$dir/js$i" }
cluster {
  name: onlined-test
  listen: 127.0.0.1:$cport
  routes: [$(echo $routes | sed 's/ /, /g')]
}
accounts {
  SYS { users: [{ user: sys, password: sys }], exports: [{ stream: "\$SYS.ACCOUNT.APP.>" }] }
  APP {
    jetstream: enabled
    users: [{ user: app, password: app }]
    imports: [{ stream: { account: SYS, subject: "\$SYS.ACCOUNT.APP.>" } }]
  }
}
system_account: SYS
no_auth_user: app
CONF
        if [ "$n" -eq 1 ]; then sed -i '/^cluster {/,/^}/d' "$dir/n$i.conf"; fi
        launch "$i"
        urls="${urls:+$urls,}nats://127.0.0.1:$port"
      done
      up=1
      for i in $(seq 1 "$n"); do
        read -r port _ <"$dir/n$i.ports"
        wait_port "$port" "$i" || { up=0; break; }
      done
      if [ "$up" -eq 1 ]; then
        echo "$urls" | tee "$dir/urls"
        exit 0
      fi
      echo "nats-cluster.sh: attempt $attempt failed, trying again on other ports" >&2
      stop_all
      rm -rf "$dir"/js* "$dir"/n*.pid
    done
    exit 1
    ;;
  kill)
    i="${3:?which server}"
    kill -9 "$(cat "$dir/n$i.pid")" 2>/dev/null || true
    ;;
  restart)
    i="${3:?which server}"
    launch "$i"
    read -r port _ <"$dir/n$i.ports"
    wait_port "$port" "$i"
    ;;
  stop)
    stop_all
    rm -rf "$dir"
    ;;
  *)
    echo "nats-cluster.sh: unknown command '$cmd'" >&2; exit 2 ;;
esac
