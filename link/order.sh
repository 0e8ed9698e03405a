#!/usr/bin/env bash
# Regenerate link/startup.order: the functions lastcall runs, in the order it first runs
# them, for the linker to place first and together (lld --symbol-ordering-file, set in
# .cargo/config.toml).
#
# Why: the kernel maps a binary's code into a process in whole page-cache folios around
# each page the process touches. lastcall's start-up and supervision loop run ~400 KB of
# code, but scattered over the 2.7 MB of text they touched nearly all of it, so `lastcall
# run -- sleep 60` had 3.2 MB resident. Placed together they touch ~1/6 of it.
#
# When to run: after a dependency, feature or profile change (those change the hashes in
# Rust's symbol names), after a stretch of code changes, before measuring or releasing, or
# when `bash bench/footprint.sh` reports that few of the ordered symbols were found. A
# stale file costs resident memory, never correctness.
#
# Needs valgrind (callgrind records every function that runs), python3, and perf for the
# native pass (optional). Takes about two minutes.
#
#   bash link/order.sh
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

# The same crate graph and flags as the release build, with the symbols left in: flags
# given to `cargo rustc` do not change the hashes in symbol names, so the names match the
# stripped release binary's (its .text is byte-for-byte the same).
CARGO_TARGET_DIR=target/order cargo rustc --release --bin lastcall -q -- -C strip=none
bin=$PWD/target/order/x86_64-unknown-linux-gnu/release/lastcall

record() { # NAME ARGS...: run lastcall under callgrind, output in $work/NAME.cg
  local name=$1
  shift
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/$name.cg" \
    "$bin" "$@" 2>"$work/$name.log" >/dev/null &
}
wait_for() { # FILE PATTERN: until lastcall has logged PATTERN
  for _ in $(seq 600); do grep -q "$2" "$1" && return; sleep 0.1; done
  echo "order.sh: lastcall never logged '$2'; its log:" >&2
  cat "$1" >&2
  exit 1
}
port_of() { grep -o "$2" "$1" | tail -1 | grep -o '[0-9]*$'; }

# 1. The supervisor as most containers run it: start, wait, the app exits.
record run run -- sleep 1
wait

# 2. A health endpoint probed, then a stop.
record health run --health-listen 127.0.0.1:0 --stop-timeout 6s -- sleep 60
wait_for "$work/health.log" 'health endpoint on'
health=$(port_of "$work/health.log" 'on http://127.0.0.1:[0-9]*')
for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$health/health"; done
kill -TERM %1
wait

# 3. The drain proxy carrying requests, then a stop.
python3 -u -m http.server 0 --bind 127.0.0.1 >"$work/up.log" 2>&1 &
up=$!
wait_for "$work/up.log" 'Serving HTTP'
upstream=$(port_of "$work/up.log" 'port [0-9]*')
record proxy run --listen 127.0.0.1:0 --upstream "127.0.0.1:$upstream" --stop-timeout 6s -- sleep 60
wait_for "$work/proxy.log" 'proxy listening on'
listen=$(port_of "$work/proxy.log" 'listening on 127.0.0.1:[0-9]*')
for _ in $(seq 20); do curl -s -o /dev/null "http://127.0.0.1:$listen/"; done
kill -TERM %2
wait %2 || true  # lastcall exits with the status of the app it stopped
kill "$up"

python3 link/order.py callgrind "$work" "$bin"

# 4. What valgrind does not show: start-up code before its first sight of the program,
# and functions that run differently natively (glibc's own locks, say). Run natively,
# record the page faults on code, and put the functions that took them with the
# supervisor's; again until none is new. Needs perf; skipped without it.
relink() {
  touch src/main.rs # cargo does not know the linker reads the order file
  CARGO_TARGET_DIR=target/order cargo rustc --release --bin lastcall -q -- -C strip=none
}
if perf stat -e page-faults true >/dev/null 2>&1; then
  for _ in 1 2 3 4 5; do
    relink
    perf record -q -e page-faults -c 1 -d -o "$work/faults.data" -- "$bin" run -q -- sleep 1 >/dev/null 2>&1
    perf script -i "$work/faults.data" --show-mmap-events -F pid,addr,ip >"$work/faults.txt" 2>/dev/null
    added=$(python3 link/order.py faults "$work" "$bin")
    echo "order.sh: $added more functions from page faults" >&2
    [ "$added" = 0 ] && break
  done
else
  echo "order.sh: no perf here; start-up code valgrind does not see stays unordered" >&2
fi
relink
echo "link/startup.order: $(grep -vc '^#' link/startup.order) functions; rebuild to use it"
