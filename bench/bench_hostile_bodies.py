"""Tokenless big bodies: how fast the server refuses them, and what they do to everyone else's `/healthz`.

A real `profiler-server serve` (defaults) on a temporary SQLite database on 127.0.0.1. First an idle run:
`--probes` sequential `GET /healthz`, their latencies recorded. Then the hostile run: `--clients` raw sockets at
once, each sending a `--mib` MiB JSON body to a body-taking endpoint (`/agent/results` without a token,
`/devices/register` with a bogus one, alternately), as fast as loopback takes it, while the same `/healthz`
probes run. For each hostile request: the time from the end of its headers to the first byte of the answer, and
the answer's status. Printed: the statuses, the time-to-answer (median, max), and the `/healthz` p50/p99 of the
hostile run as a ratio of the idle run's, measured in the same process.

    .venv/bin/python bench/bench_hostile_bodies.py [--clients 10] [--mib 50] [--probes 400]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402

from db.migrate import upgrade  # noqa: E402
from profiler_server.local_server import LiveServer  # noqa: E402

CHUNK = 1 << 20


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def probe_healthz(url: str, count: int, out: list[float]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(count):
            started = time.perf_counter()
            assert client.get("/healthz").status_code == 200
            out.append(time.perf_counter() - started)
            time.sleep(0.005)


def hostile_post(port: int, path: str, token: str | None, mib: int, out: list[tuple[int, float]]) -> None:
    """One request with a `mib` MiB body, sent by a thread while this one waits for the answer."""
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
            f"Content-Length: {mib * CHUNK}"]  # fmt: skip
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    body = b'{"results": [' + b" " * (CHUNK - 13)
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        headers_sent = time.perf_counter()

        def send_body() -> None:
            try:
                for _ in range(mib):
                    sock.sendall(body)
            except OSError:
                pass  # the server answered and closed: the rest is never read

        sender = threading.Thread(target=send_body)
        sender.start()
        first = sock.recv(64)
        answered = time.perf_counter()
        sender.join()
    status = int(first.split(b" ", 2)[1]) if first.startswith(b"HTTP/1.1 ") else -1
    out.append((status, answered - headers_sent))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--mib", type=int, default=50)
    parser.add_argument("--probes", type=int, default=400)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-hostile-"))
    url = f"sqlite:///{work / 'profiler.sqlite3'}"
    upgrade(url)
    server = LiveServer("sqlite", url, work)
    server.start()
    try:
        idle: list[float] = []
        probe_healthz(server.url, args.probes, idle)

        loaded: list[float] = []
        answers: list[tuple[int, float]] = []
        targets = [("/agent/results", None), ("/devices/register", "bogus-token-0123456789abcdef")]
        hostile = [
            threading.Thread(target=hostile_post, args=(server.port, *targets[i % 2], args.mib, answers))
            for i in range(args.clients)
        ]
        probes = threading.Thread(target=probe_healthz, args=(server.url, args.probes, loaded))
        probes.start()
        time.sleep(0.05)
        for thread in hostile:
            thread.start()
        for thread in [*hostile, probes]:
            thread.join()
    finally:
        server.stop()

    statuses = sorted({status for status, _ in answers})
    seconds = [s for _, s in answers]
    print(f"{args.clients} tokenless or bogus-token POSTs of {args.mib} MiB at once; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"answers: {', '.join(f'{sum(1 for s, _ in answers if s == st)} x {st}' for st in statuses)}")
    print(f"time to answer after the headers: median {1000 * statistics.median(seconds):.1f} ms, "
          f"max {1000 * max(seconds):.1f} ms")  # fmt: skip
    print(
        f"/healthz idle:    p50 {1000 * statistics.median(idle):.2f} ms, p99 {1000 * _percentile(idle, 0.99):.2f} ms"
    )
    print(f"/healthz hostile: p50 {1000 * statistics.median(loaded):.2f} ms, "
          f"p99 {1000 * _percentile(loaded, 0.99):.2f} ms")  # fmt: skip
    print(f"ratio hostile/idle: p50 {statistics.median(loaded) / statistics.median(idle):.2f}, "
          f"p99 {_percentile(loaded, 0.99) / _percentile(idle, 0.99):.2f}")  # fmt: skip
    return 0 if statuses == [401] else 1


if __name__ == "__main__":
    sys.exit(main())
