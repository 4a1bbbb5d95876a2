#!/usr/bin/env python3
"""Hostile clients for the robustness tests of `digitnet serve` (tests/http/run.sh, tests/load/run.sh).
Loopback only: every connection goes to 127.0.0.1.

    attack.py slowloris PORT PID CONNECTIONS SECONDS
        CONNECTIONS sockets, each sending a request's header one byte at a time, a byte per socket
        every 2 s; a socket the server closes is opened again at once.
    attack.py flood PORT PID CLIENTS SECONDS FILE
        CLIENTS threads each POSTing FILE to /api/predict, one request after the other.
    attack.py trickle PORT
        one connection sending a request's header a byte every 0.5 s; prints how many seconds
        passed before the server closed it (or "open" after 60 s).
    attack.py crowd PORT CONNECTIONS
        opens CONNECTIONS idle sockets, then asks GET /api/health; prints {"health": status,
        "closed": how many of the idle sockets the server has closed}.
    attack.py idle PORT CONNECTIONS
        opens CONNECTIONS sockets, prints "ready N" (how many are open), then holds them, sending
        nothing, until stdin closes.

While slowloris or flood runs, a probe asks GET /api/health every 0.2 s (5 s timeout, a new
connection each time, from the source address 127.0.0.2) and reads the server's VmRSS from /proc/PID/status. Prints one JSON object:
health probes, failures, the slowest answer (s), the largest RSS (MB), and for the attacks the
number of open sockets (slowloris) or the status codes (flood).
"""
import http.client
import json
import os
import selectors
import socket
import sys
import threading
import time

HOST = "127.0.0.1"
# The probe connects from another loopback address: the server's per-client limit counts
# connections by source address, so from 127.0.0.1 the probe would share the attacker's quota and
# could be the connection the limit closes. It measures whether other clients are still served.
PROBE_SOURCE = ("127.0.0.2", 0)


def rss_mb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


class Probe(threading.Thread):
    """Health latency and server memory, sampled until stop is set."""

    def __init__(self, port, pid):
        super().__init__(daemon=True)
        self.port, self.pid = port, pid
        self.stop = threading.Event()
        self.latencies, self.failures, self.rss = [], 0, 0.0
        self.errors = {}

    def run(self):
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                c = http.client.HTTPConnection(HOST, self.port, timeout=5, source_address=PROBE_SOURCE)
                c.request("GET", "/api/health")
                r = c.getresponse()
                body = r.read()
                c.close()
                if r.status != 200 or b'"status":"ok"' not in body:
                    raise RuntimeError("status %d" % r.status)
                self.latencies.append(time.monotonic() - t0)
            except Exception as e:  # refused, reset, timed out: all failures
                self.failures += 1
                self.errors[type(e).__name__] = self.errors.get(type(e).__name__, 0) + 1
            self.rss = max(self.rss, rss_mb(self.pid))
            self.stop.wait(0.2)

    def summary(self):
        lat = sorted(self.latencies)
        return {
            "probes": len(lat) + self.failures,
            "failures": self.failures,
            "errors": self.errors,
            "health_max_s": round(lat[-1], 3) if lat else None,
            "health_median_s": round(lat[len(lat) // 2], 3) if lat else None,
            "rss_max_mb": round(self.rss, 1),
        }


HEADER = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\nX-Padding: " + b"a" * 4000


def slowloris(port, pid, n, seconds):
    sel = selectors.DefaultSelector()
    socks = {}  # socket -> bytes sent
    reopened = 0

    def open_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((HOST, port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return False
        socks[s] = 0
        sel.register(s, selectors.EVENT_READ)
        return True

    def drop(s):
        sel.unregister(s)
        socks.pop(s, None)
        s.close()

    for _ in range(n):
        open_one()
    probe = Probe(port, pid)
    probe.start()
    end = time.monotonic() + seconds
    open_counts = []
    while time.monotonic() < end:
        round_start = time.monotonic()
        for s in list(socks):
            if s not in socks:
                continue
            i = socks[s]
            try:
                s.send(HEADER[i % len(HEADER):i % len(HEADER) + 1])
                socks[s] = i + 1
            except OSError:
                drop(s)
        # whatever the server closed (read returns b"" or an error): open again
        for key, _ in sel.select(timeout=0):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if not data:
                drop(s)
        while len(socks) < n and time.monotonic() < end:
            if not open_one():
                break
            reopened += 1
        open_counts.append(len(socks))
        left = 2.0 - (time.monotonic() - round_start)
        if left > 0:
            time.sleep(min(left, max(0, end - time.monotonic())))
    probe.stop.set()
    probe.join()
    for s in list(socks):
        drop(s)
    out = probe.summary()
    out.update({"connections": n, "reopened": reopened, "open_min": min(open_counts), "open_max": max(open_counts)})
    return out


def flood(port, pid, clients, seconds, path):
    body = open(path, "rb").read()
    statuses, lock = {}, threading.Lock()
    end = time.monotonic() + seconds

    def client():
        while time.monotonic() < end:
            try:
                c = http.client.HTTPConnection(HOST, port, timeout=30)
                c.request("POST", "/api/predict", body=body)
                r = c.getresponse()
                r.read()
                c.close()
                key = str(r.status)
            except Exception as e:
                key = type(e).__name__
            with lock:
                statuses[key] = statuses.get(key, 0) + 1

    probe = Probe(port, pid)
    probe.start()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    probe.stop.set()
    probe.join()
    out = probe.summary()
    out.update({"clients": clients, "statuses": statuses})
    return out


def idle(port, n):
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.connect((HOST, port))
            socks.append(s)
        except OSError:
            s.close()
    print("ready %d" % len(socks), flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()


def trickle(port):
    s = socket.create_connection((HOST, port))
    s.settimeout(0.5)
    t0 = time.monotonic()
    i = 0
    while time.monotonic() - t0 < 60:
        try:
            s.send(HEADER[i:i + 1])
            i += 1
            if s.recv(4096) == b"":
                return "%.1f" % (time.monotonic() - t0)
        except socket.timeout:
            continue
        except OSError:
            return "%.1f" % (time.monotonic() - t0)
    return "open"


def crowd(port, n):
    socks = [socket.create_connection((HOST, port)) for _ in range(n)]
    time.sleep(0.5)
    try:
        c = http.client.HTTPConnection(HOST, port, timeout=5)
        c.request("GET", "/api/health")
        status = c.getresponse().status
    except Exception as e:
        status = type(e).__name__
    time.sleep(0.5)
    closed = 0
    for s in socks:
        s.setblocking(False)
        try:
            closed += s.recv(4096) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
        s.close()
    return {"health": status, "closed": closed}


def main():
    # 1,100 sockets need more than the usual soft limit of 1,024 descriptors
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard) if hard != resource.RLIM_INFINITY else 4096, hard))
    mode = sys.argv[1]
    if mode == "slowloris":
        port, pid, n, seconds = map(int, sys.argv[2:6])
        print(json.dumps(slowloris(port, pid, n, seconds)))
    elif mode == "flood":
        port, pid, n, seconds = map(int, sys.argv[2:6])
        print(json.dumps(flood(port, pid, n, seconds, sys.argv[6])))
    elif mode == "trickle":
        print(trickle(int(sys.argv[2])))
    elif mode == "crowd":
        print(json.dumps(crowd(int(sys.argv[2]), int(sys.argv[3]))))
    elif mode == "idle":
        idle(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: attack.py slowloris PORT PID N SECONDS | flood PORT PID N SECONDS FILE | trickle PORT | "
                 "crowd PORT N | idle PORT N")


if __name__ == "__main__":
    main()
