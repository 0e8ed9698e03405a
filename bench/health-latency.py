#!/usr/bin/env python3
"""How fast does the health endpoint turn 503 after SIGTERM?

Starts `lastcall run --health-listen 127.0.0.1:0 -- sleep 60` ROUNDS times, probes /health
over keep-alive-free connections in a tight loop, sends SIGTERM, and records the time from
the signal to the first 503 (an upper bound: it includes the probe's own round trip).
Also reports the round trip of a 503 probe itself.

    python3 bench/health-latency.py [ROUNDS]
"""
import os, re, signal, socket, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target/x86_64-unknown-linux-gnu/release/lastcall")


def probe(addr):
    s = socket.create_connection(addr, timeout=5)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: lb\r\nConnection: close\r\n\r\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    s.close()
    return int(data.split(b" ", 2)[1])


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    to_503, rtt = [], []
    for _ in range(rounds):
        p = subprocess.Popen([BIN, "run", "--health-listen", "127.0.0.1:0", "--deregistration-delay", "5s",
                              "--", "sleep", "60"], stderr=subprocess.PIPE, text=True)
        line = ""
        while "health endpoint on" not in line:
            line = p.stderr.readline()
        host, port = re.search(r"http://([\d.]+):(\d+)", line).groups()
        addr = (host, int(port))
        assert probe(addr) == 200
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGTERM)
        while probe(addr) != 503:
            pass
        to_503.append(time.monotonic() - t0)
        t1 = time.monotonic()
        probe(addr)
        rtt.append(time.monotonic() - t1)
        p.kill()
        p.wait()
    ms = lambda xs: f"p50 {statistics.median(xs) * 1000:.2f} ms, max {max(xs) * 1000:.2f} ms"
    print(f"SIGTERM -> first 503 ({rounds} rounds): {ms(to_503)}")
    print(f"503 probe round trip:            {ms(rtt)}")


main()
