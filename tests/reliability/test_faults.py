"""Faults: the server killed mid-batch, the database unavailable, full or read-only - nothing lost or doubled.

Already proven elsewhere (see docs/reliability.md): an agent SIGKILLed mid-lease (tests/agents/test_online.py),
spooling across a graceful server restart (same file), lease expiry and re-queueing (tests/server/test_leasing.py).
"""

from __future__ import annotations

import queue
import resource
import threading
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from device_agents.state import AgentPaths, Credentials, save_credentials
from tests.agents.helpers import queue_ops, write_conv_onnx
from tests.reliability.helpers import (
    PG_ADMIN_DSN,
    Collector,
    agent_log,
    database_unavailable,
    measurements_by_task,
    start_agent,
    stored_result_ids,
    wait_for,
)
from tests.server.helpers import Setup, task_result

N_TASKS = 40
RESULTS_PER_BATCH = 2
SAMPLES_PER_RESULT = 500
POSTERS = 3


def _batches(setup: Setup) -> list[list[dict]]:
    tasks = [t for _ in range(N_TASKS // 20) for t in setup.agent.lease(max_tasks=20)]
    assert len(tasks) == N_TASKS
    results = [
        task_result(t.task_id, t.key, [100.0 + i % 7] * SAMPLES_PER_RESULT) for i, t in enumerate(tasks)
    ]
    return [results[i : i + RESULTS_PER_BATCH] for i in range(0, len(results), RESULTS_PER_BATCH)]


def _post(url: str, token: str, batch: list[dict]) -> httpx.Response:
    return httpx.post(
        f"{url}/agent/results",
        json={"results": batch},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_server_killed_mid_batch_keeps_every_acknowledged_result_and_retries_add_nothing(
    backend, live_server_factory, unique_name
):
    server = live_server_factory(backend)
    s = Setup(server, unique_name, n_ops=N_TASKS)
    batches = _batches(s)
    todo: queue.Queue[int] = queue.Queue()
    for i in range(len(batches)):
        todo.put(i)
    seen = Collector()
    killed = threading.Event()

    def poster() -> None:
        # Posts batches until the server dies; records which ones the server acknowledged (HTTP 200).
        while not killed.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                response = _post(server.url, s.device_token, batches[i])
            except httpx.TransportError:
                seen.add("lost", i)
                continue
            assert response.status_code == 200, response.text
            seen.add("acked", i)

    threads = [threading.Thread(target=poster) for _ in range(POSTERS)]
    for thread in threads:
        thread.start()
    wait_for(lambda: len(seen.get("acked")) >= 3, "three acknowledged batches")
    server.kill()  # SIGKILL while the other posters are mid-request
    killed.set()
    for thread in threads:
        thread.join()
    acked = seen.get("acked")
    assert len(acked) < len(batches), "the kill came after the last batch: nothing was in flight"

    server.start()
    acked_ids = {r["result_id"] for i in acked for r in batches[i]}
    assert acked_ids <= stored_result_ids(server.database_url, s.device_name), (
        "an acknowledged result was lost"
    )
    # The agents' retry: every batch again, acknowledged or not. Acknowledged ones are all duplicates.
    accepted = duplicates = 0
    for i, batch in enumerate(batches):
        receipt = _post(server.url, s.device_token, batch).json()
        if i in acked:
            assert receipt["accepted"] == 0, f"batch {i} was stored twice"
        accepted += receipt["accepted"]
        duplicates += receipt["duplicates"]
    assert accepted + duplicates == N_TASKS
    per_task = measurements_by_task(server.database_url, s.device_name)
    assert len(per_task) == N_TASKS and set(per_task.values()) == {1}, "a task has no or two measurements"
    assert len(s.admin.get_lut(s.device_name).entries) == N_TASKS
    assert s.admin.get_device(s.device_name).coverage.leased == 0


def _agent_ops(folder: Path, count: int) -> list[tuple[str, Path]]:
    ops = []
    for i in range(count):
        path = folder / f"outage{i}.onnx"
        write_conv_onnx(path, channels=4 + i, size=8)
        ops.append((f"outage.c{4 + i}", path))
    return ops


def test_database_outage_is_a_clear_503_the_agent_spools_and_everything_arrives_afterwards(
    backend, live_server_factory, tmp_path
):
    # A 200 ms busy timeout: SQLite writes give up quickly while the lock is held.
    server = live_server_factory(backend, sqlite_busy_timeout_ms=200)
    admin = server.client(server.admin_token)
    registered = server.client(server.enroll_token).register_device("outage", "linux-x86_64")
    paths = AgentPaths.for_agent(tmp_path, "outage")
    save_credentials(paths, Credentials(server.url, "outage", registered.token))
    ops = _agent_ops(tmp_path, 4)
    queue_ops(server, "outage", ops)
    agent = start_agent(server, "outage", tmp_path, "--post-batch", "100", "--max-s", "0.2", "--target-ci", "0.001",
                        "--warmup-max-s", "0.02", "--once")  # fmt: skip
    try:
        wait_for(lambda: paths.spool.exists() and len(paths.spool.read_text().splitlines()) >= 2,
                 "two spooled results", agent)  # fmt: skip
        device_token = registered.token
        with database_unavailable(backend, server.database_url):
            lease = httpx.post(
                f"{server.url}/agent/lease", json={"max_tasks": 1},
                headers={"Authorization": f"Bearer {device_token}"}, timeout=30,
            )  # fmt: skip
            assert lease.status_code == 503, lease.text
            assert lease.json()["detail"].startswith("database unavailable, retry later: ")
            assert int(lease.headers["Retry-After"]) > 0
            if backend == "postgresql":  # SQLite readers go on under a writer's lock (WAL)
                assert httpx.get(f"{server.url}/healthz").status_code == 503
            # The agent meets the outage on its next call (lease, model download) and retries with backoff.
            log = agent_log(tmp_path, "outage")
            wait_for(lambda: "failed (503: database unavailable" in log.read_text(), "a call refused", agent)
            spooled_during_outage = len(paths.spool.read_text().splitlines())
            assert agent.poll() is None, "the agent gave up during the outage"
        stdout, _ = agent.communicate(timeout=120)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.communicate()
    assert agent.returncode == 0, agent_log(tmp_path, "outage").read_text()
    assert spooled_during_outage >= 2
    assert "measured 4, failed 0, posted 4, rejected 0" in stdout, stdout
    assert not paths.spool.exists()
    per_task = measurements_by_task(server.database_url, "outage")
    assert len(per_task) == 4 and set(per_task.values()) == {1}
    assert sorted(admin.get_lut("outage").entries) == sorted(key for key, _ in ops)


def test_disk_full_sqlite_is_a_clear_503_and_the_retry_after_space_returns_stores_everything_once(
    live_server_factory, unique_name
):
    server = live_server_factory("sqlite")
    s = Setup(server, unique_name, n_ops=5)
    tasks = s.agent.lease(max_tasks=5)
    # 5 x 100,000 samples: ~4 MB of rows, far more than the files may grow by.
    batch = [task_result(t.task_id, t.key, [50.0 + i] * 100_000) for i, t in enumerate(tasks)]
    database = Path(make_url(server.database_url).database)
    largest = max(p.stat().st_size for p in database.parent.iterdir() if p.is_file())
    # The server's process may not grow any file past this: what a full disk looks like to SQLite.
    resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (largest + 256 * 1024, resource.RLIM_INFINITY))
    try:
        full = _post(server.url, s.device_token, batch)
    finally:
        resource.prlimit(server.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    assert full.status_code == 503, full.text
    assert full.json()["detail"].startswith("database unavailable, retry later: ")
    assert "full" in full.json()["detail"] or "I/O" in full.json()["detail"]
    assert stored_result_ids(server.database_url, s.device_name) == set(), "a refused batch was half stored"
    retry = _post(server.url, s.device_token, batch)
    assert retry.status_code == 200 and retry.json()["accepted"] == 5
    assert set(measurements_by_task(server.database_url, s.device_name).values()) == {1}


def test_read_only_sqlite_database_refuses_writes_with_a_clear_503_and_still_serves_reads(
    live_server_factory, unique_name
):
    writable = live_server_factory("sqlite")
    s = Setup(writable, unique_name, n_ops=2)
    writable.stop()
    path = make_url(writable.database_url).database
    # The file opened read-only, as on a read-only mount or a snapshot: no migration, no writes.
    read_only = live_server_factory(
        "sqlite", database_url=f"sqlite:///file:{path}?mode=ro&uri=true", migrate_on_start=False
    )
    headers = {"Authorization": f"Bearer {s.device_token}"}
    lease = httpx.post(f"{read_only.url}/agent/lease", json={"max_tasks": 1}, headers=headers)
    assert lease.status_code == 503, lease.text
    assert "readonly" in lease.json()["detail"] or "read-only" in lease.json()["detail"]
    admin = {"Authorization": f"Bearer {read_only.admin_token}"}
    assert httpx.get(f"{read_only.url}/devices/{s.device_name}", headers=admin).status_code == 200


def test_read_only_postgresql_database_refuses_writes_with_a_clear_503(live_server_factory, unique_name):
    server = live_server_factory("postgresql")
    s = Setup(server, unique_name, n_ops=2)
    name = make_url(server.database_url).database
    # A hot standby after a failover, or a database an operator froze: transactions are read-only.
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
    headers = {"Authorization": f"Bearer {s.device_token}"}
    # Each pooled connection that was terminated answers one 503 of its own first; then the read-only refusal.
    for _ in range(12):
        lease = httpx.post(f"{server.url}/agent/lease", json={"max_tasks": 1}, headers=headers)
        assert lease.status_code == 503, lease.text
        if "terminating connection" not in lease.json()["detail"]:
            break
    assert "read-only" in lease.json()["detail"], lease.text
    assert s.admin.get_device(s.device_name).coverage.queued == 2
