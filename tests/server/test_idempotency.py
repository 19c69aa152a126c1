"""A retried or concurrent duplicate post never stores a measurement twice."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from fbnet_core.client import NotFoundError
from tests.server.helpers import Setup, offline_result, task_result


def _measurement_count(database_url: str, result_ids: list[str]) -> int:
    from sqlalchemy import func, select

    from db.models import Measurement
    from db.session import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).where(Measurement.result_id.in_(result_ids)))
    finally:
        engine.dispose()


def test_retried_post_is_counted_as_duplicate_and_stored_once(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=2)
    tasks = s.agent.lease(max_tasks=2)
    results = [task_result(t.task_id, t.key, [9.0, 9.5, 10.0]) for t in tasks]
    assert s.agent.post_results(results).accepted == 2
    retry = s.agent.post_results(results)
    assert (retry.accepted, retry.duplicates) == (0, 2)
    version = s.admin.get_lut(s.device_name).lut_version
    s.agent.post_results(results)
    assert s.admin.get_lut(s.device_name).lut_version == version  # duplicates do not touch the LUT
    assert _measurement_count(live_server.database_url, [r["result_id"] for r in results]) == 2


def test_result_ids_are_per_device_another_devices_id_is_no_duplicate(live_server, unique_name):
    first, second = (Setup(live_server, unique_name, n_ops=1) for _ in range(2))
    shared_id = unique_name("result")
    for s in (first, second):
        task = s.agent.lease()[0]
        result = {**task_result(task.task_id, task.key, [5.0, 5.1, 5.2]), "result_id": shared_id}
        assert s.agent.post_results([result]).accepted == 1
        assert s.agent.post_results([result]).duplicates == 1  # its own retry still is one
    ambiguous = httpx.get(
        f"{live_server.url}/measurements/{shared_id}",
        headers={"Authorization": f"Bearer {live_server.admin_token}"},
    )
    assert ambiguous.status_code == 409 and ambiguous.json()["field"] == "device"
    for s in (first, second):
        found = httpx.get(
            f"{live_server.url}/measurements/{shared_id}",
            params={"device": s.device_name},
            headers={"Authorization": f"Bearer {live_server.admin_token}"},
        )
        assert found.status_code == 200 and found.json()["device"] == s.device_name


def test_concurrent_identical_jobs_queue_each_op_once(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=5, queue=False)
    admins = [live_server.client(live_server.admin_token) for _ in range(40)]
    start = threading.Barrier(len(admins))

    def create(admin):
        start.wait()
        return admin.create_jobs(s.device_name, s.keys)

    with ThreadPoolExecutor(len(admins)) as pool:
        receipts = list(pool.map(create, admins))
    assert sum(r.queued for r in receipts) == len(s.keys)
    assert all(r.queued + r.already_queued == len(s.keys) for r in receipts)
    assert s.admin.get_device(s.device_name).coverage.queued == len(s.keys)


def test_same_result_twice_in_one_request(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1)
    task = s.agent.lease()[0]
    result = task_result(task.task_id, task.key, [1.0, 1.1, 1.2])
    receipt = s.agent.post_results([result, result])
    assert (receipt.accepted, receipt.duplicates) == (1, 1)


def test_concurrent_identical_posts_store_one_measurement(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1)
    result = offline_result(s.keys[0], s.sha[s.keys[0]], [2.0, 2.1, 2.2, 2.3])
    agents = [live_server.client(s.device_token) for _ in range(6)]
    with ThreadPoolExecutor(len(agents)) as pool:
        receipts = list(pool.map(lambda agent: agent.post_measurements([result]), agents))
    assert sum(r.accepted for r in receipts) == 1
    assert sum(r.duplicates for r in receipts) == len(agents) - 1
    assert _measurement_count(live_server.database_url, [result["result_id"]]) == 1


def test_the_measurement_received_last_is_served_whatever_the_agents_clocks_say(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    key = s.keys[0]
    far_future = offline_result(key, s.sha[key], [50.0, 50.0, 50.0])
    far_future["runtime"] = {**far_future["runtime"], "finished_at": "9000-01-01T00:00:00Z"}
    from_1970 = offline_result(key, s.sha[key], [90.0, 90.0, 90.0])
    from_1970["runtime"] = {**from_1970["runtime"], "finished_at": "1970-01-01T00:00:00Z"}
    s.agent.post_measurements([far_future])
    s.agent.post_measurements([from_1970])
    entry = s.admin.get_lut(s.device_name).entries[key]
    assert entry["median_us"] == 90.0  # received last: served, although its clock says 1970
    assert entry["measured_at"] == "1970-01-01T00:00:00Z"  # the agent's timestamp, kept as provenance
    # A remeasure task measured by an agent whose clock says 1970 replaces the entry too.
    s.admin.create_jobs(s.device_name, [key], remeasure=True)
    task = s.agent.lease()[0]
    result = task_result(task.task_id, key, [30.0, 30.0, 30.0])
    result["runtime"] = {**result["runtime"], "finished_at": "1970-01-01T00:00:00Z"}
    assert s.agent.post_results([result]).accepted == 1
    assert s.admin.get_lut(s.device_name).entries[key]["median_us"] == 30.0


def test_in_one_request_the_later_measurement_of_an_op_is_served(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    key = s.keys[0]
    first, second = (offline_result(key, s.sha[key], [v, v, v]) for v in (70.0, 40.0))
    first["runtime"] = {**first["runtime"], "finished_at": "2030-01-01T00:00:00Z"}
    assert s.agent.post_measurements([first, second]).accepted == 2
    assert s.admin.get_lut(s.device_name).entries[key]["median_us"] == 40.0


def test_concurrent_overlapping_batches_store_each_measurement_once(live_server, unique_name):
    """Agents retrying overlapping batches in different orders at the same time: every result stored exactly
    once, none lost, no request failing (the inserts take their locks in one order, so they cannot deadlock)."""
    s = Setup(live_server, unique_name, n_ops=20, queue=False)
    results = [offline_result(key, s.sha[key], [3.0, 3.1, 3.2]) for key in s.keys]
    batches = [results, results[::-1], results[5:] + results[:5], results[::2] + results[1::2]]
    agents = [live_server.client(s.device_token) for _ in batches]
    with ThreadPoolExecutor(len(agents)) as pool:
        receipts = list(pool.map(lambda agent, batch: agent.post_measurements(batch), agents, batches))
    assert sum(r.accepted for r in receipts) == len(results)
    assert sum(r.duplicates for r in receipts) == len(results) * (len(batches) - 1)
    assert _measurement_count(live_server.database_url, [r["result_id"] for r in results]) == len(results)
    lut = s.admin.get_lut(s.device_name)
    assert {k: e["result_id"] for k, e in lut.entries.items()} == {r["key"]: r["result_id"] for r in results}


def test_batch_with_an_unknown_key_stores_nothing(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    good = offline_result(s.keys[0], s.sha[s.keys[0]], [4.0, 4.1, 4.2])
    unknown = offline_result(unique_name("missing"), "a" * 64, [4.0])
    version = s.admin.get_lut(s.device_name).lut_version
    with pytest.raises(NotFoundError):
        s.agent.post_measurements([good, unknown])
    assert s.admin.get_lut(s.device_name).lut_version == version
    assert _measurement_count(live_server.database_url, [good["result_id"]]) == 0
    assert s.agent.post_measurements([good]).accepted == 1


def test_same_offline_result_twice_in_one_request(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    result = offline_result(s.keys[0], s.sha[s.keys[0]], [5.0, 5.1, 5.2])
    receipt = s.agent.post_measurements([result, result])
    assert (receipt.accepted, receipt.duplicates) == (1, 1)


def test_offline_result_with_the_id_of_a_failure_report_is_a_duplicate(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1)
    task = s.agent.lease()[0]
    failure = {"task_id": task.task_id, "result_id": unique_name("r"), "error": "Unsupported op"}
    assert s.agent.post_results([failure]).failures == 1
    same_id = {**offline_result(task.key, s.sha[task.key], [6.0, 6.1]), "result_id": failure["result_id"]}
    receipt = s.agent.post_measurements([same_id])
    assert (receipt.accepted, receipt.duplicates) == (0, 1)


def test_equal_measurement_times_in_one_batch_the_later_result_is_served(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    key = s.keys[0]
    first, second = (offline_result(key, s.sha[key], [v, v, v]) for v in (20.0, 30.0))
    # Whatever order the result_ids sort in, the request's order decides between equal finished_at.
    first["result_id"], second["result_id"] = "z-" + first["result_id"], "a-" + second["result_id"]
    assert s.agent.post_measurements([first, second]).accepted == 2
    assert s.admin.get_lut(s.device_name).entries[key]["median_us"] == 30.0
