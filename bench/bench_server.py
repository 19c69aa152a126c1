"""Benchmark: the profiler server's LUT reads and measurement ingest, as ratios against baselines in one run.

For each database backend, a real server process (uvicorn, the app of `profiler_server.app.create_app`, plus three
baseline routes added for this benchmark only) is filled with N ops and N measurements, then measured:
- ingest: measurements/s posted to /agent/measurements in batches of 100 (100 samples each), against the same
  bodies posted to a parse-only route (same pydantic validation, no database); once by one sequential client
  (each batch waits for the previous one's answer: the server idles while the database flushes) and once by
  `--clients` concurrent clients, as several agents post (a second device, so both passes insert new LUT rows);
- GET /lut/{device} (N entries, JSON; one sequential client) against a route returning the same bytes precomputed in memory;
- GET /lut/{device} with If-None-Match (304) against a trivial route returning a constant.

    .venv/bin/python bench/bench_server.py [--entries 10000] [--seconds 3] [--clients 4]
        [--backends sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated

import httpx
import numpy as np
from fastapi import Depends

from profiler_server.json_body import json_body
from profiler_server.schemas import MeasurementsPost

# Module level: FastAPI resolves the route's (string) annotation from the module's globals.
ParsedMeasurements = Annotated[MeasurementsPost, Depends(json_body(MeasurementsPost))]

BATCH = 100
SAMPLES_PER_RESULT = 100
ROUNDS = 3
PG_ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=test"


def serve(database_url: str, port: int, precomputed_path: str) -> None:
    """The server under test, plus the baseline routes (run in a child process)."""
    import uvicorn
    from fastapi import Response

    from db.migrate import upgrade
    from profiler_server.app import create_app
    from profiler_server.config import Settings

    upgrade(database_url)
    settings = Settings(
        database_url=database_url,
        admin_token=os.environ["BENCH_ADMIN"],
        enroll_token=os.environ["BENCH_ENROLL"],
    )
    app = create_app(settings)
    precomputed: dict[str, bytes] = {}

    # Baselines are async routes: FastAPI's cheapest kind (no worker-thread hop).
    @app.get("/bench/trivial")
    async def trivial() -> Response:
        return Response(b'{"ok":true}', media_type="application/json")

    @app.get("/bench/precomputed")
    async def precomputed_lut() -> Response:
        if "body" not in precomputed:
            precomputed["body"] = Path(precomputed_path).read_bytes()
        return Response(precomputed["body"], media_type="application/json")

    # Parsed as the ingest route parses it (pydantic's JSON parser, `profiler_server.json_body`).
    @app.post("/bench/parse")
    def parse_only(body: ParsedMeasurements) -> dict[str, int]:
        return {"accepted": len(body.results)}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _identity_onnx() -> bytes:
    """One small valid model (input [1, 8, 4, 4]); ops share it, as content-addressed ops do."""
    from onnx import TensorProto, helper

    shape = [1, 8, 4, 4]
    graph = helper.make_graph(
        [helper.make_node("Relu", ["input"], ["output"])],
        "bench",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, shape)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _rate(client: httpx.Client, request: Callable[[httpx.Client], httpx.Response], seconds: float) -> float:
    count = 0
    deadline = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        request(client)
        count += 1
    return count / (time.perf_counter() - start)


def _compare(client: httpx.Client, ours, baseline, seconds: float) -> tuple[float, float]:
    """Requests/s of both, interleaved over a few rounds so drift hits both alike."""
    ours_rates, baseline_rates = [], []
    for _ in range(ROUNDS):
        ours_rates.append(_rate(client, ours, seconds / ROUNDS))
        baseline_rates.append(_rate(client, baseline, seconds / ROUNDS))
    return float(np.median(ours_rates)), float(np.median(baseline_rates))


def _ingest_bodies(keys: list[str], sha256: str) -> list[bytes]:
    rng = np.random.default_rng(0)
    runtime = {"runtime": "onnxruntime", "runtime_version": "1.32.0", "execution_provider": "CPUExecutionProvider",
               "threads": 1, "agent_version": "bench", "warmup_runs": 10, "timed_runs": SAMPLES_PER_RESULT}  # fmt: skip
    bodies = []
    for start in range(0, len(keys), BATCH):
        results = [
            {
                "result_id": str(uuid.uuid4()),
                "key": key,
                "onnx_sha256": sha256,
                "runtime": runtime,
                "samples_us": [round(float(v), 3) for v in rng.lognormal(6.0, 0.05, SAMPLES_PER_RESULT)],
            }  # fmt: skip
            for key in keys[start : start + BATCH]
        ]
        bodies.append(json.dumps({"results": results}).encode())
    return bodies


def _post_all(url: str, path: str, bodies: list[bytes], headers: dict[str, str], clients: int) -> float:
    """Post every body (`clients` connections, each taking the next body when free); returns the seconds."""
    pending = iter(bodies)  # next() on a shared iterator is atomic under the GIL: each body is posted once

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=120) as client:
            for body in pending:
                receipt = client.post(path, content=body, headers=headers)
                receipt.raise_for_status()
                assert receipt.json()["accepted"] == BATCH, receipt.text

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - start


def _ingest_rates(
    url: str, bodies: list[bytes], headers: dict[str, str], clients: int
) -> tuple[float, float]:
    """Measurements/s through the parse-only route and through the real one, same bodies, same clients."""
    measurements = BATCH * len(bodies)
    parse_s = _post_all(url, "/bench/parse", bodies, headers, clients)
    ingest_s = _post_all(url, "/agent/measurements", bodies, headers, clients)
    return measurements / parse_s, measurements / ingest_s


def bench_backend(
    backend: str, database_url: str, entries: int, seconds: float, clients: int, workdir: Path
) -> dict[str, float]:
    import base64
    import hashlib

    admin, enroll = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    precomputed_path = workdir / f"lut-{backend}.json"
    env = {**os.environ, "BENCH_ADMIN": admin, "BENCH_ENROLL": enroll}
    process = subprocess.Popen(
        [sys.executable, __file__, "_serve", database_url, str(port), str(precomputed_path)], env=env
    )
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(600):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            device = client.post(
                "/devices/register",
                json={"name": "bench", "platform": "bench"},
                headers={"Authorization": f"Bearer {enroll}"},
            ).json()
            as_admin = {"Authorization": f"Bearer {admin}"}
            as_device = {"Authorization": f"Bearer {device['token']}", "Content-Type": "application/json"}
            model = _identity_onnx()
            model_b64, sha256 = base64.b64encode(model).decode(), hashlib.sha256(model).hexdigest()
            keys = [f"bench-op-{i:06d}" for i in range(entries)]
            for start in range(0, entries, 1000):
                ops = [
                    {"key": k, "spec": {"kind": "bench", "i": k}, "onnx_b64": model_b64}
                    for k in keys[start : start + 1000]
                ]
                client.post("/ops", json={"ops": ops}, headers=as_admin).raise_for_status()

            parse_rate, ingest_rate = _ingest_rates(url, _ingest_bodies(keys, sha256), as_device, clients=1)
            second = client.post(
                "/devices/register",
                json={"name": "bench-concurrent", "platform": "bench"},
                headers={"Authorization": f"Bearer {enroll}"},
            ).json()
            as_second = {**as_device, "Authorization": f"Bearer {second['token']}"}
            parse_concurrent, ingest_concurrent = _ingest_rates(
                url, _ingest_bodies(keys, sha256), as_second, clients
            )

            start = time.perf_counter()
            lut = client.get("/lut/bench", headers=as_admin)
            cold_ms = (time.perf_counter() - start) * 1000
            assert len(lut.json()["entries"]) == entries
            precomputed_path.write_bytes(lut.content)
            etag = lut.headers["ETag"]

            def lut_full(c: httpx.Client) -> httpx.Response:
                return c.get("/lut/bench", headers=as_admin)

            def lut_304(c: httpx.Client) -> httpx.Response:
                response = c.get("/lut/bench", headers={**as_admin, "If-None-Match": etag})
                assert response.status_code == 304
                return response

            full, precomputed = _compare(client, lut_full, lambda c: c.get("/bench/precomputed"), seconds)
            not_modified, trivial = _compare(client, lut_304, lambda c: c.get("/bench/trivial"), seconds)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "ingest_per_s": ingest_rate,
        "parse_only_per_s": parse_rate,
        "ingest_concurrent_per_s": ingest_concurrent,
        "parse_only_concurrent_per_s": parse_concurrent,
        "lut_cold_ms": cold_ms,
        "lut_bytes": float(len(lut.content)),
        "lut_full_rps": full,
        "precomputed_rps": precomputed,
        "lut_304_rps": not_modified,
        "trivial_rps": trivial,
    }


def _database(backend: str, workdir: Path) -> tuple[str, Callable[[], None]]:
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'bench.sqlite3'}", lambda: None
    import psycopg

    name = f"fbnet_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}", drop


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_serve":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="per endpoint, split over 3 interleaved rounds"
    )
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients of the second ingest pass")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    print(f"{args.entries} entries; batches of {BATCH} measurements x {SAMPLES_PER_RESULT} samples")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends.split(","):
            database_url, drop = _database(backend, Path(tmp))
            try:
                r = bench_backend(backend, database_url, args.entries, args.seconds, args.clients, Path(tmp))
            finally:
                drop()
            print(f"\n[{backend}]")
            for label, ours, parse in [
                ("1 client", r["ingest_per_s"], r["parse_only_per_s"]),
                (f"{args.clients} clients", r["ingest_concurrent_per_s"], r["parse_only_concurrent_per_s"]),
            ]:
                print(
                    f"ingest {label:<10}{ours:7.0f} measurements/s  (goal 5000)   "
                    f"parse-only baseline {parse:.0f}/s  ratio {ours / parse:.2f}"
                )
            print(
                f"GET /lut        {r['lut_full_rps']:9.1f} req/s   ({r['lut_bytes'] / 1e6:.1f} MB; first, uncached: "
                f"{r['lut_cold_ms']:.0f} ms)  precomputed {r['precomputed_rps']:.1f} req/s  "
                f"ratio {r['lut_full_rps'] / r['precomputed_rps']:.2f} (goal >= 0.5)"
            )
            print(f"GET /lut 304    {r['lut_304_rps']:9.1f} req/s   trivial endpoint {r['trivial_rps']:.1f} req/s  "
                  f"ratio {r['lut_304_rps'] / r['trivial_rps']:.2f} (goal >= 0.9)")  # fmt: skip


if __name__ == "__main__":
    main()
