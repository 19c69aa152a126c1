"""Load run: 200 simulated agents leasing and posting for 60 s against one server, on SQLite and on PostgreSQL,
while search clients pull LUTs; then every acknowledged result is checked in the database (none lost, none
doubled).

Per backend, a private database (a temporary SQLite file; `fbnet_load_<pid>_<hex>` on 127.0.0.1:5432, dropped at
the end) and a real `profiler-server serve` process with its default settings (per-token rate limit included) on
127.0.0.1. The agents are threads with their own ProfilerClient: `--devices` devices, `--agents` agents spread
over them, each leasing `--lease` tasks, "measuring" each for `--measure-ms`, then posting the results
(`--samples` samples each) until they are acknowledged. An admin feeder re-queues a device's ops (remeasure) when
its queue runs low, so work never runs out. Search clients pull full and key-filtered LUTs with ETags. Everything
stops by itself after `--seconds`.

    .venv/bin/python bench/bench_load.py [--backend sqlite,postgresql] [--seconds 60] [--agents 200] [--devices 100]

Every response is recorded: a 503 with `Retry-After` is the server shedding load (the agent retries, as a real
one does); any other 5xx, a 503 without `Retry-After`, or a connection error is a failure. Exit status 0 only
when there was no failure and the database holds exactly the acknowledged results, each once.
"""

from __future__ import annotations

import argparse
import contextvars
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from db.models import Measurement, Task, TaskStatus  # noqa: E402
from db.session import make_engine  # noqa: E402
from fbnet_core.client import ProfilerClient, ProfilerError  # noqa: E402
from profiler_server.example_ops import RUNTIME, op_upload  # noqa: E402
from profiler_server.local_server import LiveServer, PostgresDatabases  # noqa: E402

FEED_BELOW = 40  # re-queue a device's ops when fewer than this many are queued


class Recorder:
    """Latencies, shed requests (503 + Retry-After) and failures per endpoint, shared by all threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, list[float]] = defaultdict(list)
        self.shed: dict[str, int] = defaultdict(int)
        self.limited: dict[str, int] = defaultdict(int)
        self.errors: dict[str, list[str]] = defaultdict(list)

    def timed(self, endpoint: str, call):  # noqa: ANN001, ANN201 - any client call
        started = time.perf_counter()
        try:
            return call()
        except ProfilerError as exc:
            with self._lock:
                if exc.status_code == 503 and _retry_after.get():
                    self.shed[endpoint] += 1
                elif exc.status_code == 429:
                    self.limited[endpoint] += 1
                else:
                    self.errors[endpoint].append(str(exc)[:200])
            return None
        finally:
            with self._lock:
                self.seconds[endpoint].append(time.perf_counter() - started)


# The last response's Retry-After header in this thread (the client's errors carry no headers).
_retry_after: contextvars.ContextVar[str | None] = contextvars.ContextVar("retry_after", default=None)


class RecordingTransport(httpx.HTTPTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        _retry_after.set(response.headers.get("retry-after"))
        return response


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run_agent(url: str, token: str, args: argparse.Namespace, stop: threading.Event, rec: Recorder,
              acked: list[str], leased: list[int]) -> None:  # fmt: skip
    with ProfilerClient(url, token, transport=RecordingTransport()) as client:
        while not stop.is_set():
            tasks = rec.timed("POST /agent/lease", lambda: client.lease(args.lease))
            if not tasks:
                stop.wait(0.2)
                continue
            leased.extend(t.task_id for t in tasks)
            time.sleep(args.measure_ms / 1000 * len(tasks))  # the device measuring
            results = [
                {"task_id": t.task_id, "result_id": str(uuid.uuid4()), "key": t.key, "onnx_sha256": t.onnx_sha256,
                 "samples_us": [100.0 + (i % 13) for i in range(args.samples)], "runtime": RUNTIME}
                for t in tasks
            ]  # fmt: skip
            # An agent keeps its results until acknowledged: retry until the server takes them.
            while (
                rec.timed("POST /agent/results", lambda results=results: client.post_results(results)) is None
            ):
                time.sleep(0.5)
            acked.extend(r["result_id"] for r in results)


def run_search_client(url: str, token: str, devices: list[str], keys: list[str], stop: threading.Event,
                      rec: Recorder) -> None:  # fmt: skip
    with ProfilerClient(url, token, transport=RecordingTransport()) as client:
        i = 0
        while not stop.is_set():
            device = devices[i % len(devices)]
            rec.timed("GET /lut/{device}", lambda device=device: client.get_lut(device))
            rec.timed("GET /lut/{device}?keys=", lambda device=device: client.get_lut(device, keys[:50]))
            i += 1
            stop.wait(0.05)


def run_feeder(admin: ProfilerClient, devices: list[str], keys: list[str], stop: threading.Event,
               rec: Recorder) -> None:  # fmt: skip
    while not stop.wait(1.0):
        for device in devices:
            found = rec.timed("GET /devices/{name}", lambda device=device: admin.get_device(device))
            if found is not None and found.coverage.queued < FEED_BELOW:
                rec.timed("POST /jobs", lambda device=device: admin.create_jobs(device, keys, remeasure=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--search-clients", type=int, default=4)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--lease", type=int, default=4)
    parser.add_argument("--measure-ms", type=float, default=25.0)
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args()
    status = 0
    for backend in [b.strip() for b in args.backend.split(",") if b.strip()]:
        status |= run_backend(backend, args)
    return status


def run_backend(backend: str, args: argparse.Namespace) -> int:
    from db.migrate import upgrade

    databases = PostgresDatabases(prefix="fbnet_load")
    databases.prefix = f"fbnet_load_{databases.prefix.removeprefix('fbnet_test_')}"
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    server = None
    try:
        url = databases.create() if backend == "postgresql" else f"sqlite:///{work / 'profiler.sqlite3'}"
        upgrade(url)
        server = LiveServer(backend, url, work)
        server.start()
        admin = ProfilerClient(server.url, server.admin_token)
        enroll = ProfilerClient(server.url, server.enroll_token)
        devices = [f"load-dev-{i:03d}" for i in range(args.devices)]
        tokens = {d: enroll.register_device(d, "simulated", {"bench": "load"}).token for d in devices}
        keys = [f"load.op{i:04d}" for i in range(args.ops)]
        admin.upload_ops([op_upload(key, seed) for seed, key in enumerate(keys)])
        for device in devices:
            admin.create_jobs(device, keys)
        print(f"\n=== {backend}: server {server.url}; {args.devices} devices, {args.ops} ops each; "
              f"{args.agents} agents, {args.search_clients} search clients, {args.seconds:g} s")  # fmt: skip

        rec = Recorder()
        stop = threading.Event()
        acked: list[list[str]] = [[] for _ in range(args.agents)]
        leased: list[list[int]] = [[] for _ in range(args.agents)]
        threads = [
            threading.Thread(target=run_agent, args=(server.url, tokens[devices[i % len(devices)]], args, stop, rec,
                                                     acked[i], leased[i]))
            for i in range(args.agents)
        ]  # fmt: skip
        threads += [
            threading.Thread(target=run_search_client, args=(server.url, server.admin_token, devices, keys, stop, rec))
            for _ in range(args.search_clients)
        ]  # fmt: skip
        threads.append(threading.Thread(target=run_feeder, args=(admin, devices, keys, stop, rec)))
        load_before = os.getloadavg()[0]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        stop.wait(args.seconds)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.monotonic() - started
        # The figures depend on what else the machine runs: say so with them.
        version = _postgres_version(url) if backend == "postgresql" else f"SQLite {sqlite3.sqlite_version}"
        print(f"machine: {os.cpu_count()} CPUs, load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} "
              f"after; Python {platform.python_version()}; {version}")  # fmt: skip
        if any(thread.is_alive() for thread in threads):
            print("FAIL: a worker did not stop within 60 s of the end")
            return 1
        return report(rec, url, [r for a in acked for r in a], [t for a in leased for t in a], elapsed)
    finally:
        if server is not None:
            server.close()
        databases.drop_all()


def _postgres_version(url: str) -> str:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return "PostgreSQL " + str(conn.exec_driver_sql("SHOW server_version").scalar())
    finally:
        engine.dispose()


def report(rec: Recorder, url: str, acked: list[str], leased: list[int], elapsed: float) -> int:
    print(f"\n{'endpoint':26} {'requests':>8} {'503+RA':>7} {'429':>5} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'max ms':>8}")  # fmt: skip
    for endpoint in sorted(rec.seconds):
        seconds = rec.seconds[endpoint]
        print(f"{endpoint:26} {len(seconds):>8} {rec.shed.get(endpoint, 0):>7} {rec.limited.get(endpoint, 0):>5} "
              f"{len(rec.errors.get(endpoint, [])):>6} {1000 * statistics.median(seconds):>8.1f} "
              f"{1000 * _percentile(seconds, 0.99):>8.1f} {1000 * max(seconds):>8.1f}")  # fmt: skip
    total_requests = sum(len(s) for s in rec.seconds.values())
    errors = sum(len(e) for e in rec.errors.values())
    shed = sum(rec.shed.values())
    print(f"\n{total_requests} requests in {elapsed:.1f} s ({total_requests / elapsed:.0f}/s); "
          f"{len(acked)} results acknowledged ({len(acked) / elapsed:.0f}/s); {shed} answered 503 with Retry-After; "
          f"{sum(rec.limited.values())} answered 429; {errors} failed")  # fmt: skip
    for endpoint, messages in rec.errors.items():
        print(f"  {endpoint}: {len(messages)} errors, e.g. {messages[:3]}")

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            stored = set(conn.scalars(select(Measurement.result_id)))
            doubled = conn.scalar(
                select(func.count()).select_from(
                    select(Measurement.task_id)
                    .group_by(Measurement.task_id)
                    .having(func.count() > 1)
                    .subquery()
                )
            )
            done = set(conn.scalars(select(Task.id).where(Task.status == TaskStatus.done)))
    finally:
        engine.dispose()
    lost = set(acked) - stored
    leased_twice = len(leased) - len(set(leased))
    not_done = set(leased) - done
    print(f"database: {len(stored)} measurements; acknowledged but missing {len(lost)}; stored but never "
          f"acknowledged {len(stored - set(acked))}; tasks with two measurements {doubled}; "
          f"tasks leased twice {leased_twice}; leased tasks not done {len(not_done)}")  # fmt: skip
    ok = errors == 0 and stored == set(acked) and doubled == 0 and leased_twice == 0 and not not_done
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
