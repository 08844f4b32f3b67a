#!/usr/bin/env bash
# Runs every libFuzzer target for a bounded time (FUZZ_SECONDS each, default
# 20) under ASan+UBSan, after replaying the inputs that once crashed it
# (fuzz/regressions/<target>/). A crash fails the run and leaves the input in
# build-fuzz/crashes/<target>/: copy it to fuzz/regressions/<target>/ once fixed.
# Usage: scripts/fuzz-smoke.sh BUILD_DIR [target ...]
set -euo pipefail
build="$1"; shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(ws_reader http frames jwt config webhook cluster_wire)
seconds="${FUZZ_SECONDS:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
for t in "${targets[@]}"; do
  bin="$build/fuzz/${t}_fuzz"
  work="$build/corpus/$t"
  crashes="$build/crashes/$t"
  mkdir -p "$work" "$crashes"
  cp -n "$root/fuzz/corpus/$t/"* "$work/" 2>/dev/null || true
  if compgen -G "$root/fuzz/regressions/$t/*" >/dev/null; then
    echo "fuzz $t: replaying regressions"
    "$bin" "$root/fuzz/regressions/$t/"*
  fi
  echo "fuzz $t: ${seconds}s"
  rc=0
  "$bin" -max_total_time="$seconds" -max_len=8192 -artifact_prefix="$crashes/" "$work" \
    >"$build/$t.log" 2>&1 || rc=$?
  grep -E "^Done [0-9]+ runs" "$build/$t.log" || true
  if [ "$rc" -ne 0 ]; then
    tail -40 "$build/$t.log" >&2
    echo "fuzz $t: FAILED (exit $rc), inputs in $crashes" >&2
    exit 1
  fi
done
echo "fuzz: all targets clean"
