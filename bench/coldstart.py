#!/usr/bin/env python3
"""Cold start: process start to first 200 response, polled every 0.5 ms.

Usage: coldstart.py RUNS NAME=PORT:CMD... — runs each command RUNS times,
alternating between them, and prints the median, min and max in ms.
"""
import socket
import statistics
import subprocess
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"


def first_ok(port, deadline):
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(REQUEST)
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            pass
        time.sleep(0.0005)
    return False


def measure(port, cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ok = first_ok(port, t0 + 60)
    took = (time.perf_counter() - t0) * 1000
    p.kill()
    p.wait()
    if not ok:
        raise SystemExit(f"no 200 from: {cmd}")
    return took


def main():
    runs = int(sys.argv[1])
    specs = []
    for arg in sys.argv[2:]:
        name, rest = arg.split("=", 1)
        port, cmd = rest.split(":", 1)
        specs.append((name, int(port), cmd))
    results = {name: [] for name, _, _ in specs}
    for _ in range(runs):
        for name, port, cmd in specs:
            results[name].append(measure(port, cmd))
            time.sleep(0.05)
    for name, _, _ in specs:
        xs = results[name]
        print(f"{name:32} median {statistics.median(xs):7.1f} ms   min {min(xs):7.1f}   max {max(xs):7.1f}")


if __name__ == "__main__":
    main()
