"""The protocol end to end against a real server (uvicorn on 127.0.0.1), on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from fbnet_core.client import NotFoundError
from profiler_server import __version__
from profiler_server.example_ops import op_upload
from tests.server.helpers import Setup, offline_result, sha256, task_result


def test_full_cycle_register_upload_queue_lease_report_read_lut(live_server, unique_name):
    s = Setup(live_server, unique_name)
    tasks = s.agent.lease(max_tasks=10)
    assert [t.key for t in tasks] == s.keys  # FIFO: in the order they were queued
    assert all(t.attempt == 1 and t.onnx_sha256 == s.sha[t.key] for t in tasks)
    assert tasks[0].spec["kind"] == "test_conv"

    rng = np.random.default_rng(0)
    samples = {t.key: [float(v) for v in rng.uniform(100, 200, size=50)] for t in tasks}
    receipt = s.agent.post_results(
        [task_result(t.task_id, t.key, samples[t.key], t.onnx_sha256) for t in tasks]
    )
    assert (receipt.accepted, receipt.duplicates, receipt.failures) == (3, 0, 0)

    lut = s.admin.get_lut(s.device_name)
    assert sorted(lut.entries) == sorted(s.keys)
    for key, values in samples.items():
        entry = lut.entries[key]
        assert entry["n"] == 50
        assert entry["median_us"] == pytest.approx(np.median(values))
        assert entry["p10_us"] == pytest.approx(np.percentile(values, 10))
        assert entry["p90_us"] == pytest.approx(np.percentile(values, 90))
        assert entry["mean_us"] == pytest.approx(np.mean(values))
        assert entry["std_us"] == pytest.approx(np.std(values, ddof=1))
        assert entry["provenance"]["execution_provider"] == "CPUExecutionProvider"
    coverage = s.admin.get_device(s.device_name).coverage
    assert (coverage.measured, coverage.queued, coverage.leased, coverage.failed) == (3, 0, 0, 0)

    first = lut.entries[tasks[0].key]
    stored = s.agent.get_measurement(first["result_id"])
    assert stored["samples_us"] == samples[tasks[0].key]  # raw samples kept exactly (float64)
    assert (stored["device"], stored["key"], stored["task_id"]) == (
        s.device_name,
        tasks[0].key,
        tasks[0].task_id,
    )
    assert stored["runtime"]["cpu_affinity"] == [0] and stored["median_us"] == first["median_us"]


def test_lut_etag_304_keys_filter_and_csv(live_server, unique_name):
    s = Setup(live_server, unique_name)
    tasks = s.agent.lease(max_tasks=10)
    s.agent.post_results([task_result(t.task_id, t.key, [10.0, 11.0, 12.0, 10.5, 11.5]) for t in tasks[:2]])

    first = s.admin.get_lut(s.device_name)
    again = s.admin.get_lut(s.device_name)
    assert again.not_modified and again.etag == first.etag and again.entries == first.entries

    filtered = s.admin.get_lut(s.device_name, keys=[s.keys[0], s.keys[2]])
    assert list(filtered.entries) == [s.keys[0]]
    assert filtered.missing == [s.keys[2]]
    assert filtered.etag != first.etag  # each representation has its own strong ETag

    s.agent.post_results([task_result(tasks[2].task_id, tasks[2].key, [20.0, 21.0, 22.0, 20.5, 21.5])])
    changed = s.admin.get_lut(s.device_name)
    assert not changed.not_modified and changed.lut_version > first.lut_version and len(changed.entries) == 3

    rows = list(csv.DictReader(io.StringIO(s.admin.get_lut_csv(s.device_name))))
    assert sorted(r["key"] for r in rows) == sorted(s.keys)
    row = next(r for r in rows if r["key"] == tasks[2].key)
    assert float(row["median_us"]) == 21.0 and row["n"] == "5" and row["runtime"] == "onnxruntime"


def test_lut_csv_by_accept_header_and_304_on_raw_http(live_server, unique_name):
    import httpx

    s = Setup(live_server, unique_name, n_ops=1)
    task = s.agent.lease()[0]
    s.agent.post_results([task_result(task.task_id, task.key, [5.0, 5.1, 5.2, 5.3, 5.4])])
    headers = {"Authorization": f"Bearer {live_server.admin_token}", "Accept": "text/csv"}
    response = httpx.get(f"{live_server.url}/lut/{s.device_name}", headers=headers)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.text.splitlines()[0].startswith("key,median_us,")
    cached = httpx.get(
        f"{live_server.url}/lut/{s.device_name}",
        headers={**headers, "If-None-Match": response.headers["ETag"]},
    )
    assert cached.status_code == 304 and cached.content == b""


def test_jobs_report_measured_and_queued_and_remeasure(live_server, unique_name):
    s = Setup(live_server, unique_name)
    again = s.admin.create_jobs(s.device_name, s.keys)
    assert (again.queued, again.already_queued, again.already_measured) == (0, 3, 0)
    task = s.agent.lease()[0]
    s.agent.post_results([task_result(task.task_id, task.key, [1.0, 2.0, 3.0])])
    after = s.admin.create_jobs(s.device_name, s.keys)
    assert (after.queued, after.already_queued, after.already_measured) == (0, 2, 1)
    remeasure = s.admin.create_jobs(s.device_name, [task.key], remeasure=True)
    assert remeasure.queued == 1


def test_op_upload_is_content_addressed_and_model_download_matches(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    key_a, key_b = unique_name("a"), unique_name("b")
    shared_seed = 424242
    first = admin.upload_ops([op_upload(key_a, shared_seed), op_upload(key_b, shared_seed)])
    assert first.created == [key_a, key_b] and first.existing == []
    second = admin.upload_ops([op_upload(key_a, shared_seed)])
    assert second.created == [] and second.existing == [key_a]
    model = admin.get_op_model(key_b)
    assert sha256(model) == admin.get_op(key_a)["onnx_sha256"] == admin.get_op(key_b)["onnx_sha256"]
    with pytest.raises(NotFoundError):
        admin.get_op_model(unique_name("missing"))


def test_offline_measurements_fill_the_lut_and_complete_queued_tasks(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=2)
    receipt = s.agent.post_measurements(
        [offline_result(k, s.sha[k], [7.0, 7.5, 8.0, 7.2, 7.1]) for k in s.keys]
    )
    assert (receipt.accepted, receipt.duplicates) == (2, 0)
    assert s.agent.lease(max_tasks=5) == []  # the queued tasks were completed by the offline results
    lut = s.admin.get_lut(s.device_name)
    assert lut.entries[s.keys[0]]["median_us"] == 7.2


def test_failure_report_marks_task_failed_and_requeue_retries(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1)
    task = s.agent.lease()[0]
    failure = {"task_id": task.task_id, "result_id": unique_name("r"), "error": "Unsupported op: Conv3d"}
    assert s.agent.post_results([failure]).failures == 1
    assert s.agent.post_results([failure]).duplicates == 1
    assert s.admin.get_device(s.device_name).coverage.failed == 1
    assert s.admin.create_jobs(s.device_name, s.keys).queued == 1
    assert s.admin.get_device(s.device_name).coverage.failed == 0
    assert s.agent.lease()[0].key == task.key


def test_devices_list_shows_registered_device_with_attributes(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1)
    devices = {d.name: d for d in s.admin.list_devices()}
    assert devices[s.device_name].attributes == {"cores": 2}
    assert devices[s.device_name].coverage.queued == 1
    assert s.agent.get_device(s.device_name).platform == "linux-x86_64"


def test_healthz_and_metrics(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1)
    task = s.agent.lease()[0]
    s.agent.post_results([task_result(task.task_id, task.key, [3.0, 3.1, 3.2])])
    assert s.admin.healthz() == {"status": "ok", "database": "ok", "version": __version__}
    metrics = s.admin.metrics()
    ingested = [
        line for line in metrics.splitlines() if line.startswith("profiler_measurements_ingested_total ")
    ]
    assert ingested and float(ingested[0].split()[1]) >= 1
    assert 'profiler_http_requests_total{method="POST",route="/agent/lease",status="200"}' in metrics
    assert 'profiler_tasks{status="done"}' in metrics


def test_the_lut_serves_the_invocation_overhead_the_agent_measured(live_server, unique_name):
    """The agent's `runtime.extra.invocation_overhead` (device_agents/overhead.py) is served with the entry - the
    op's share and each side's; an entry measured without one, or with a malformed one, serves null."""
    from tests.server.helpers import RUNTIME

    s = Setup(live_server, unique_name)
    tasks = s.agent.lease(max_tasks=10)
    overhead = {
        "us": 3.5,
        "input_us": 3.0,
        "output_us": 4.0,
        "fixed_us": 2.0,
        "method": "2 t(P) - t(P.P)",
        "probes": [],
    }
    extras = [{"invocation_overhead": overhead}, {}, {"invocation_overhead": {"us": "fast"}}]
    results = []
    for task, extra in zip(tasks, extras, strict=True):
        result = task_result(task.task_id, task.key, [10.0, 11.0, 12.0])
        result["runtime"] = {**RUNTIME, "extra": extra}
        results.append(result)
    s.agent.post_results(results)
    entries = s.admin.get_lut(s.device_name).entries
    assert entries[tasks[0].key]["invocation_overhead"] == {
        "us": 3.5,
        "input_us": 3.0,
        "output_us": 4.0,
        "fixed_us": 2.0,
    }
    assert entries[tasks[1].key]["invocation_overhead"] is None
    assert entries[tasks[2].key]["invocation_overhead"] is None
    stored = s.agent.get_measurement(entries[tasks[0].key]["result_id"])
    assert stored["runtime"]["extra"]["invocation_overhead"]["method"] == "2 t(P) - t(P.P)"  # provenance kept
    rows = {r["key"]: r for r in csv.DictReader(io.StringIO(s.admin.get_lut_csv(s.device_name)))}
    assert float(rows[tasks[0].key]["overhead_us"]) == 3.5 and rows[tasks[1].key]["overhead_us"] == ""
