#!/usr/bin/env bash
# make demo-cluster: a whole cluster on 127.0.0.1 for a newcomer to watch:
# three nats-server processes routed into one NATS cluster, a PostgreSQL in a
# temporary directory, three onlined nodes sharing both. Prints the desk's URL
# on node 1 and widget URLs on nodes 2 and 3: a widget going online, and its
# messages, show on a desk served by another process. Ctrl-C stops it all.
#   DEMO_DIR       where everything lives (default /tmp/onlined-demo-cluster, wiped first)
#   DEMO_PORT      node 1's port; nodes 2 and 3 take the next ones (default 8081)
#   DEMO_JSON      also write the URLs and tokens to this file (the browser test reads it)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/onlined"
dir="${DEMO_DIR:-/tmp/onlined-demo-cluster}"
port0="${DEMO_PORT:-8081}"
pgbin="${PG_BIN:-/usr/lib/postgresql/15/bin}"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  "$root/scripts/nats-cluster.sh" stop "$dir/nats" 2>/dev/null || true
  "$root/scripts/test-postgres.sh" stop "$dir/pg" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

rm -rf "$dir"
mkdir -p "$dir"
echo "demo-cluster: starting 3 NATS servers, PostgreSQL and 3 onlined nodes in $dir"
nats_urls="$("$root/scripts/nats-cluster.sh" start "$dir/nats" 3)"
pg_url="$("$root/scripts/test-postgres.sh" start "$dir/pg")"
pg_port="${pg_url##*:}"
"$pgbin/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres onlined
secret="$(head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 32)"
IFS=, read -r -a nats <<<"$nats_urls"

for i in 1 2 3; do
  port=$((port0 + i - 1))
  # Each node's own NATS server first, the others after.
  list=""
  for k in 0 1 2; do
    u="${nats[$(((i - 1 + k) % 3))]}"
    list="$list${list:+, }\"$u\""
  done
  cat >"$dir/node$i.toml" <<CONF
listen = "127.0.0.1:$port"
data_dir = "$dir/node$i"
metrics_listen = ""
offline_grace_ms = 3000
log_level = "info"

[cluster]
node_id = "node$i"
nats_urls = [$list]
postgres_url = "$pg_url/onlined"

[sms]
provider = "log"

[[channels]]
id = "demo"
secret = "$secret"
sms_delay_s = 30
quiet_hours = "off"
CONF
  "$bin" serve --config "$dir/node$i.toml" >"$dir/node$i.out" 2>"$dir/node$i.log" &
  pids+=($!)
done
for i in 1 2 3; do
  port=$((port0 + i - 1))
  for _ in $(seq 1 100); do
    if curl -sf "http://127.0.0.1:$port/readyz" 2>/dev/null | grep -q '"joined"'; then break; fi
    sleep 0.1
  done
  curl -sf "http://127.0.0.1:$port/readyz" | grep -q '"joined"' ||
    { echo "demo-cluster: node $i did not join; see $dir/node$i.log" >&2; tail -20 "$dir/node$i.log" >&2; exit 1; }
done

tok() { "$bin" token --config "$dir/node1.toml" --channel demo --role "$1" --sub "$2" --ttl 86400; }
manager="$(tok manager demo-manager)"
base() { echo "http://127.0.0.1:$((port0 + $1 - 1))"; }
# The users' chats and profiles, through node 3 (any node would do).
for u in alice bob carol; do
  curl -sf -X PUT "$(base 3)/v1/users/$u" -H "Authorization: Bearer $manager" \
    -H 'Content-Type: application/json' -d "{\"name\":\"${u^}\",\"phone\":\"+1555000$((RANDOM % 9000 + 1000))\",\"sms_opt_in\":true}" >/dev/null
  curl -sf -X POST "$(base 3)/v1/user-chats" -H "Authorization: Bearer $manager" \
    -H 'Content-Type: application/json' -d "{\"user_id\":\"$u\"}" >/dev/null
done

desk="$(base 1)/desk#token=$manager"
w_alice="$(base 2)/widget#token=$(tok user alice)"
w_bob="$(base 3)/widget#token=$(tok user bob)"
w_carol="$(base 2)/widget#token=$(tok user carol)"
if [ -n "${DEMO_JSON:-}" ]; then
  printf '{"desk":"%s","widgets":{"alice":"%s","bob":"%s","carol":"%s"},"nodes":["%s","%s","%s"],"manager":"%s"}\n' \
    "$desk" "$w_alice" "$w_bob" "$w_carol" "$(base 1)" "$(base 2)" "$(base 3)" "$manager" >"$DEMO_JSON.tmp"
  mv "$DEMO_JSON.tmp" "$DEMO_JSON"
fi
cat <<TXT

onlined cluster demo: 3 nodes, 3 NATS servers, 1 PostgreSQL (tokens valid 24 h)

  Desk on node 1:
    $desk

  Widgets on the other nodes (open them, watch the desk on node 1):
    alice (node 2) $w_alice
    bob   (node 3) $w_bob
    carol (node 2) $w_carol

  Each node's /readyz says how it stands: curl $(base 2)/readyz
  Kill a node (kill -9 the pid in ps) and watch its users go offline on the desk within a
  second plus the 3 s grace; logs in $dir/node*.log. Ctrl-C stops everything.
TXT
wait -n "${pids[@]}" || true
echo "demo-cluster: a node exited; stopping" >&2
