#!/usr/bin/env bash
# Throughput and latency of the drain proxy, against the same upstream reached directly,
# through HAProxy and through nginx configured as plain reverse proxies — all in one run,
# so the ratios compare like with like on whatever this machine is doing right now.
#
#   bench/proxy.sh                       # 10 s per target, 64 connections, 4 rounds
#   DURATION=5s CONNS=32 ROUNDS=1 bench/proxy.sh
#
# The upstream is nginx (1 worker) answering a 13-byte static response over keep-alive.
# Every proxy gets 2 threads/workers and keep-alive upstream connections; wrk runs with 2
# threads. Rounds are interleaved, each in a rotated order (direct, lastcall, haproxy,
# nginx; then lastcall, haproxy, nginx, direct; …), and the figures are medians.
# Besides wrk's figures it prints each proxy's CPU time per request (user and kernel, read
# from /proc around each wrk run): on a shared, noisy machine that is the steadier way to
# compare how much work the proxies do. Everything listens on 127.0.0.1 only.
set -euo pipefail

DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-4}
cd "$(dirname "$0")/.."

for tool in wrk nginx haproxy python3; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is not installed" >&2; exit 2; }
done

cargo build --release --quiet
BIN=$PWD/target/x86_64-unknown-linux-gnu/release/lastcall

TMP=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        sleep 0.05
    done
    echo "bench: nothing listens on port $1" >&2
    exit 1
}

UP=$(free_port); LC=$(free_port); HA=$(free_port); NG=$(free_port)

mkdir -p "$TMP/up" "$TMP/ng"
cat >"$TMP/up/nginx.conf" <<EOF
worker_processes 1;
pid $TMP/up/nginx.pid;
error_log $TMP/up/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/up; proxy_temp_path $TMP/up; fastcgi_temp_path $TMP/up;
    uwsgi_temp_path $TMP/up; scgi_temp_path $TMP/up;
    server {
        listen 127.0.0.1:$UP;
        location / { default_type text/plain; return 200 "hello world\n"; }
    }
}
EOF
cat >"$TMP/ng/nginx.conf" <<EOF
worker_processes 2;
pid $TMP/ng/nginx.pid;
error_log $TMP/ng/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path $TMP/ng; proxy_temp_path $TMP/ng; fastcgi_temp_path $TMP/ng;
    uwsgi_temp_path $TMP/ng; scgi_temp_path $TMP/ng;
    upstream app { server 127.0.0.1:$UP; keepalive 128; }
    server {
        listen 127.0.0.1:$NG;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        }
    }
}
EOF
cat >"$TMP/haproxy.cfg" <<EOF
global
    nbthread 2
    maxconn 4096
defaults
    mode http
    option http-keep-alive
    http-reuse always
    option forwardfor
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend fe
    bind 127.0.0.1:$HA
    default_backend be
backend be
    server app 127.0.0.1:$UP
EOF

nginx -p "$TMP/up" -c "$TMP/up/nginx.conf" -g 'daemon off;' & PIDS+=($!); UP_PID=$!
nginx -p "$TMP/ng" -c "$TMP/ng/nginx.conf" -g 'daemon off;' & PIDS+=($!); NG_PID=$!
haproxy -db -f "$TMP/haproxy.cfg" >/dev/null 2>&1 & PIDS+=($!); HA_PID=$!
# The app under lastcall only has to stay alive; the upstream is the shared nginx.
"$BIN" run --quiet --listen "127.0.0.1:$LC" --upstream "127.0.0.1:$UP" -- sleep 100000 & PIDS+=($!)
LC_PID=$!
for p in $UP $LC $HA $NG; do wait_port "$p"; done

# The processes doing a target's work: for a proxy, the proxy (nginx's master and its
# workers); for direct, the upstream itself. lastcall's app (sleep) does nothing here.
declare -A WORKERS=(
    [direct]="$UP_PID $(pgrep -P "$UP_PID" | tr '\n' ' ')"
    [lastcall]="$LC_PID"
    [haproxy]="$HA_PID"
    [nginx]="$NG_PID $(pgrep -P "$NG_PID" | tr '\n' ' ')"
)
# User and kernel CPU time of processes, in clock ticks: "utime stime".
ticks() {
    local u=0 s=0 f
    for pid in "$@"; do
        # Fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the name.
        read -ra f < <(sed 's/.*) //' "/proc/$pid/stat")
        u=$((u + f[11])); s=$((s + f[12]))
    done
    echo "$u $s"
}

# One wrk run against port $1 while the processes $2 do the work: prints
# "rps p50_ms p99_ms user_us_per_request kernel_us_per_request".
measure() {
    local before after
    # shellcheck disable=SC2086 # the pid list is meant to split
    before=$(ticks $2)
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$1/" >"$TMP/wrk.out"
    # shellcheck disable=SC2086
    after=$(ticks $2)
    awk -v before="$before" -v after="$after" -v hz="$(getconf CLK_TCK)" '
        /requests in/ { n = $1 }
        /Requests\/sec/ { rps = $2 }
        /^ +50%/ { p50 = $2 } /^ +99%/ { p99 = $2 }
        /Non-2xx|Socket errors/ { errors = errors " [" $0 "]" }
        function ms(v) {
            if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
            if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
            if (v ~ /s$/) return substr(v, 1, length(v) - 1) * 1000
            return v
        }
        END {
            if (errors != "") print "bench: wrk reported" errors > "/dev/stderr"
            split(before, b); split(after, a)
            us = 1e6 / hz / n
            printf "%s %.3f %.3f %.2f %.2f\n", rps, ms(p50), ms(p99), (a[1] - b[1]) * us, (a[2] - b[2]) * us
        }' "$TMP/wrk.out"
}

TARGETS="direct:$UP lastcall:$LC haproxy:$HA nginx:$NG"
# Warm up every path (connections, pools, caches) before measuring.
for t in $TARGETS; do wrk -t2 -c"$CONNS" -d2s "http://127.0.0.1:${t#*:}/" >/dev/null; done

for r in $(seq "$ROUNDS"); do
    # Rotate the order every round, so no target always follows the same one.
    read -ra all <<<"$TARGETS"
    k=$(( (r - 1) % ${#all[@]} ))
    for t in "${all[@]:k}" "${all[@]:0:k}"; do
        name=${t%%:*}
        echo "$name $r $(measure "${t#*:}" "${WORKERS[$name]}")" >>"$TMP/results"
        echo "round $r: $name $(tail -1 "$TMP/results" | cut -d' ' -f3-)" >&2
    done
done

echo
echo "wrk -t2 -c$CONNS -d$DURATION, median of $ROUNDS round(s), $(nproc) CPUs, $(date -u +%FT%TZ)"
python3 - "$TMP/results" <<'EOF'
import statistics, sys
rows, by_round = {}, {}
for line in open(sys.argv[1]):
    name, rnd, *figures = line.split()
    figures = tuple(map(float, figures))
    rows.setdefault(name, []).append(figures)
    by_round.setdefault(rnd, {})[name] = figures
med = {n: tuple(statistics.median(v[i] for v in vals) for i in range(5)) for n, vals in rows.items()}
d = med["direct"]
print(f"{'target':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs direct':>10} {'p99 added':>10}"
      f" {'CPU µs/req':>11} {'user+kernel':>12}")
for name in ["direct", "lastcall", "haproxy", "nginx"]:
    rps, p50, p99, user, kernel = med[name]
    print(f"{name:<10} {rps:>10.0f} {p50:>8.3f} {p99:>8.3f} {rps / d[0]:>10.2f} {p99 - d[2]:>9.3f}ms"
          f" {user + kernel:>11.2f} {f'{user:.2f}+{kernel:.2f}':>12}")
print("(direct's CPU is the upstream's; a proxy's is the proxy's alone)")
# Each round measures all four within a minute, so a round's ratio is a fairer pairing
# than a ratio of medians when the machine's load drifts; the spread says how far to
# trust the medians.
for other in ["haproxy", "nginx"]:
    tput = sorted(r["lastcall"][0] / r[other][0] for r in by_round.values())
    cpu = sorted((r["lastcall"][3] + r["lastcall"][4]) / (r[other][3] + r[other][4])
                 for r in by_round.values())
    print(f"lastcall / {other}: throughput {statistics.median(tput):.2f}"
          f" (rounds {tput[0]:.2f}-{tput[-1]:.2f}), CPU per request {statistics.median(cpu):.2f}"
          f" (rounds {cpu[0]:.2f}-{cpu[-1]:.2f})")
EOF
