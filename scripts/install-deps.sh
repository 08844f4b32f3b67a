#!/usr/bin/env bash
# Installs the Debian packages onlined needs to build, test and run.
# Idempotent: when everything is present it prints nothing and exits 0.
# Usage: scripts/install-deps.sh [build|test|bench]   (default: test)
set -euo pipefail

profile="${1:-test}"

build_pkgs=(
  build-essential cmake pkg-config ninja-build
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libssl-dev libsqlite3-dev libtomlplusplus-dev libjwt-dev
  libspdlog-dev libcli11-dev libpq-dev libnats-dev liburing-dev
)
test_pkgs=(libgtest-dev libgmock-dev libbenchmark-dev python3 curl chromium clang libclang-rt-14-dev clang-format clang-tidy postgresql-15 nats-server libwebsockets-dev)
bench_pkgs=(linux-perf redis-server gnuplot-nox)

pkgs=("${build_pkgs[@]}")
case "$profile" in
  build) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "install-deps: unknown profile '$profile' (build|test|bench)" >&2; exit 2 ;;
esac

node_ok() { command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; }

missing=()
if [ "$profile" != build ] && ! node_ok; then missing+=(nodejs npm); fi
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The peers of the benchmark (ws, Socket.IO, presence in Redis) are Node programs.
if [ "$profile" = bench ]; then
  peers="$(dirname "$0")/../bench/peers/node"
  if [ ! -d "$peers/node_modules/socket.io" ] || [ ! -d "$peers/node_modules/pg" ]; then
    echo "install-deps: npm install (bench/peers/node)"
    (cd "$peers" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi

# The browser tests drive Debian's Chromium with playwright-core (no browser download).
if [ "$profile" != build ]; then
  e2e="$(dirname "$0")/../tests/e2e"
  if [ ! -d "$e2e/node_modules/playwright-core" ]; then
    echo "install-deps: npm install (tests/e2e)"
    (cd "$e2e" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
  fi
fi
