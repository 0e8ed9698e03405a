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
# Everything listens on 127.0.0.1 only.
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

nginx -p "$TMP/up" -c "$TMP/up/nginx.conf" -g 'daemon off;' & PIDS+=($!)
nginx -p "$TMP/ng" -c "$TMP/ng/nginx.conf" -g 'daemon off;' & PIDS+=($!)
haproxy -db -f "$TMP/haproxy.cfg" >/dev/null 2>&1 & PIDS+=($!)
# The app under lastcall only has to stay alive; the upstream is the shared nginx.
"$BIN" run --quiet --listen "127.0.0.1:$LC" --upstream "127.0.0.1:$UP" -- sleep 100000 & PIDS+=($!)
for p in $UP $LC $HA $NG; do wait_port "$p"; done

# One wrk run: prints "rps p50_ms p99_ms".
measure() {
    wrk -t2 -c"$CONNS" -d"$DURATION" --latency "http://127.0.0.1:$1/" | awk '
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
            printf "%s %.3f %.3f\n", rps, ms(p50), ms(p99)
        }'
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
        echo "$name $(measure "${t#*:}")" >>"$TMP/results"
        echo "round $r: $name $(tail -1 "$TMP/results" | cut -d' ' -f2-)" >&2
    done
done

echo
echo "wrk -t2 -c$CONNS -d$DURATION, median of $ROUNDS round(s), $(nproc) CPUs, $(date -u +%FT%TZ)"
python3 - "$TMP/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p50, p99 = line.split()
    rows.setdefault(name, []).append((float(rps), float(p50), float(p99)))
med = {n: tuple(statistics.median(v[i] for v in vals) for i in range(3)) for n, vals in rows.items()}
d = med["direct"]
print(f"{'target':<10} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'vs direct':>10} {'p99 added':>10}")
for name in ["direct", "lastcall", "haproxy", "nginx"]:
    rps, p50, p99 = med[name]
    print(f"{name:<10} {rps:>10.0f} {p50:>8.3f} {p99:>8.3f} {rps / d[0]:>10.2f} {p99 - d[2]:>9.3f}ms")
lc = med["lastcall"][0]
print(f"lastcall / haproxy = {lc / med['haproxy'][0]:.2f}, lastcall / nginx = {lc / med['nginx'][0]:.2f}")
EOF
