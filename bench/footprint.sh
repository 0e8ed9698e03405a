#!/usr/bin/env bash
# What lastcall costs every container: binary size, resident memory of the supervisor
# alone and with the proxy idle, page faults of a whole start-to-exit, and how much of
# link/startup.order the linker found (a low count means: run link/order.sh).
#
#   bash bench/footprint.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
bin=$PWD/target/x86_64-unknown-linux-gnu/release/lastcall
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

rss() { # LABEL ARGS...: resident memory of `lastcall ARGS` one second after it starts
  local label=$1
  shift
  "$bin" "$@" >/dev/null 2>&1 &
  local pid=$!
  sleep 1
  printf '%-44s %6s kB resident, %4s kB anonymous, %s threads\n' "$label" \
    "$(awk '/^Rss/ {print $2}' "/proc/$pid/smaps_rollup")" \
    "$(awk '/^Anonymous/ {print $2}' "/proc/$pid/smaps_rollup")" \
    "$(ls "/proc/$pid/task" | wc -l)"
  kill -TERM "$pid"
  wait "$pid" || true
}

printf '%-44s %s bytes\n' "binary" "$(stat -c %s "$bin")"
rss "lastcall run -- sleep 60" run -- sleep 60
rss "lastcall run --health-listen -- sleep 60" run --health-listen 127.0.0.1:0 -- sleep 60
rss "lastcall run --listen --upstream -- sleep 60" run --listen 127.0.0.1:0 --upstream 127.0.0.1:9 -- sleep 60
if perf stat -e page-faults true >/dev/null 2>&1; then
  faults=$(perf stat -x, -e page-faults "$bin" run -q -- true 2>&1 >/dev/null | awk -F, '/page-faults/ {print $1}')
  printf '%-44s %s (lastcall and the app)\n' "page faults of lastcall run -- true" "$faults"
fi

# The same build with its symbols, to see which ordered names exist (see link/order.sh).
CARGO_TARGET_DIR=target/order cargo rustc --release --bin lastcall -q -- -C strip=none
nm target/order/x86_64-unknown-linux-gnu/release/lastcall | awk '{print $NF}' | sort -u >"$work/syms"
grep -v '^#' link/startup.order | sort -u >"$work/order"
printf '%-44s %s of %s\n' "link/startup.order symbols found" \
  "$(comm -12 "$work/syms" "$work/order" | wc -l)" "$(wc -l <"$work/order")"
