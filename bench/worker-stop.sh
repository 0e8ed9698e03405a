#!/usr/bin/env bash
# Stop a busy Sidekiq worker the way ECS stops a task (SIGTERM to PID 1, SIGKILL to the
# whole container 10 s later) under different inits, and count lost jobs.
# The app is started through `sh -c` as in seed 001. Each init is PID 1 of a fresh PID
# namespace, like a container. Needs root and: redis-server redis-tools ruby-sidekiq tini dumb-init.
#
#   bash bench/worker-stop.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-1}
jobs_rb=$PWD/tests/support/sidekiq/jobs.rb
count_rb=$PWD/tests/support/sidekiq/count.rb
cargo build --release -q
lastcall=$PWD/target/x86_64-unknown-linux-gnu/release/lastcall
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export REDIS_URL=redis://127.0.0.1:$port/0
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null' EXIT
until redis-cli -u "$REDIS_URL" ping >/dev/null 2>&1; do sleep 0.05; done

app="sidekiq -r $jobs_rb -t 5 -c 10; echo sidekiq exited"
declare -A inits=(
  ["sh -c (no init)"]="sh -c"
  ["tini -g"]="tini -g -- sh -c"
  ["dumb-init"]="dumb-init sh -c"
  ["lastcall run"]="$lastcall run -q --stop-timeout 10s --signal-plan TSTP@+0,TERM@-8s -- sh -c"
)
printf '%-18s %s\n' "PID 1" "result (40 jobs of 1-8 s, sidekiq -t 5, ECS stop with stopTimeout 10 s)"
for name in "sh -c (no init)" "tini -g" "dumb-init" "lastcall run"; do
  for ((r = 0; r < rounds; r++)); do
    redis-cli -u "$REDIS_URL" flushall >/dev/null
    ruby -r sidekiq -r "$jobs_rb" -e '40.times { |i| SlowJob.perform_async(i, 1 + i % 8) }' 2>/dev/null
    # shellcheck disable=SC2086
    unshare --pid --fork --mount-proc --kill-child ${inits[$name]} "$app" >/dev/null 2>&1 &
    outer=$!
    until [ "$(redis-cli -u "$REDIS_URL" llen queue:default)" -le 30 ]; do sleep 0.05; done
    pid1=$(ps -o pid= --ppid "$outer" | tr -d ' ')
    kill -TERM "$pid1"
    for _ in $(seq 100); do kill -0 "$outer" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid1" 2>/dev/null || true # the orchestrator's SIGKILL at stopTimeout
    wait "$outer" 2>/dev/null || true
    printf '%-18s %s\n' "$name" "$(ruby "$count_rb" 40 2>/dev/null)"
  done
done
