#!/usr/bin/env python3
"""Cold start: process start to first 200 response, polled every 0.5 ms.

Usage: coldstart.py RUNS NAME=PORT[;HEADER=VALUE...]:CMD... — runs each command RUNS times,
alternating between them, and prints the median, min and max in ms. The optional headers go with the
polling request (a platform adapter that needs its own, e.g. Function Compute's x-fc-control-path).
"""
import socket
import statistics
import subprocess
import sys
import time

def request(headers):
    extra = "".join(f"{name}: {value}\r\n" for name, value in headers)
    return f"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\n{extra}connection: close\r\n\r\n".encode()


def first_ok(port, headers, deadline):
    req = request(headers)
    while time.perf_counter() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(req)
                if s.recv(16).startswith(b"HTTP/1.1 200"):
                    return True
        except OSError:
            pass
        time.sleep(0.0005)
    return False


def measure(port, headers, cmd):
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, shell=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    ok = first_ok(port, headers, t0 + 60)
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
        target, cmd = rest.split(":", 1)
        port, *pairs = target.split(";")
        headers = [tuple(p.split("=", 1)) for p in pairs]
        specs.append((name, int(port), headers, cmd))
    results = {name: [] for name, _, _, _ in specs}
    for _ in range(runs):
        for name, port, headers, cmd in specs:
            results[name].append(measure(port, headers, cmd))
            time.sleep(0.05)
    for name, _, _, _ in specs:
        xs = results[name]
        print(f"{name:32} median {statistics.median(xs):7.1f} ms   min {min(xs):7.1f}   max {max(xs):7.1f}")


if __name__ == "__main__":
    main()
