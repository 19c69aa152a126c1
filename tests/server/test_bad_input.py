"""Every bad input gets a 4xx naming the offending field, never a 500 (real server, both databases)."""

from __future__ import annotations

import base64
import json

import httpx
import pytest
from fastapi.testclient import TestClient

from profiler_server.app import create_app
from profiler_server.config import Settings
from profiler_server.example_ops import RUNTIME, tiny_onnx
from tests.server.helpers import Setup, offline_result, task_result, unique


@pytest.fixture(scope="module")
def world(live_server):
    s = Setup(live_server, unique, n_ops=2)
    tasks = s.agent.lease(max_tasks=2)
    return live_server, s, tasks


def _post(server, path, token, body=None, content=None):
    headers = {"Authorization": f"Bearer {token}"}
    if content is not None:
        headers["Content-Type"] = "application/json"
        return httpx.post(server.url + path, content=content, headers=headers)
    return httpx.post(server.url + path, json=body, headers=headers)


def _result_with(task, **changes):
    result = task_result(task.task_id, task.key, [10.0, 11.0, 12.0])
    result.update(changes)
    return result


@pytest.mark.parametrize(
    ("samples_literal", "field"),
    [
        ("[10.0, NaN, 12.0]", "results[0].samples_us[1]"),
        ("[10.0, Infinity]", "results[0].samples_us[1]"),
        ("[-Infinity]", "results[0].samples_us[0]"),
        ("[10.0, 0.0]", "results[0].samples_us[1]"),
        ("[10.0, -3.5]", "results[0].samples_us[1]"),
        ("[1e308, 1e308]", "results[0].samples_us[0]"),
        ("[]", "results[0].samples_us"),
        ('["fast"]', "results[0].samples_us[0]"),
        ('[10.0, "1"]', "results[0].samples_us[1]"),
        ("[true]", "results[0].samples_us[0]"),
    ],
    ids=[
        "nan",
        "inf",
        "minus-inf",
        "zero",
        "negative",
        "absurdly-large",
        "empty",
        "not-a-number",
        "numeric-string",
        "boolean",
    ],  # fmt: skip
)
def test_bad_samples_are_422_naming_the_sample(world, samples_literal, field):
    server, s, tasks = world
    result = _result_with(tasks[0], samples_us="__SAMPLES__")
    content = json.dumps({"results": [result]}).replace('"__SAMPLES__"', samples_literal)
    response = _post(server, "/agent/results", s.device_token, content=content)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(field)


@pytest.mark.parametrize(
    ("changes", "status", "field"),
    [
        ({"task_id": 987654321}, 404, "results[0].task_id"),
        ({"key": "some-other-key"}, 422, "results[0].key"),
        ({"key": "bad key with spaces"}, 422, "results[0].key"),
        ({"runtime": {"runtime_version": "1"}}, 422, "results[0].runtime.runtime"),
        ({"runtime": {**RUNTIME, "threads": 0}}, 422, "results[0].runtime.threads"),
        ({"result_id": ""}, 422, "results[0].result_id"),
        ({"samples_us": None, "runtime": None}, 422, "results[0]"),
        ({"onnx_sha256": "0" * 64}, 409, "results[0].onnx_sha256"),
    ],
    ids=[
        "unknown-task",
        "key-mismatch",
        "bad-key",
        "runtime-missing-name",
        "zero-threads",
        "empty-result-id",
        "neither-samples-nor-error",
        "sha-mismatch",
    ],  # fmt: skip
)
def test_bad_task_results(world, changes, status, field):
    server, s, tasks = world
    response = _post(
        server, "/agent/results", s.device_token, {"results": [_result_with(tasks[0], **changes)]}
    )
    assert response.status_code == status, response.text
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/devices/register", {"name": "nul-platform", "platform": "linux\u0000"}, "platform"),
        ("/devices/register", {"name": "big-int", "platform": "p", "attributes": {"n": 2**70}}, "attributes"),
        (
            "/ops",
            {"ops": [{"key": "big-spec", "spec": {"c": [1, 2**64]}, "onnx_b64": "AA=="}]},
            "ops[0].spec",
        ),
    ],
    ids=["nul-in-text", "int-over-64-bit-in-attributes", "int-over-64-bit-in-spec"],
)
def test_values_the_database_cannot_store_are_422(world, path, body, field):
    server, _, _ = world
    token = server.enroll_token if path == "/devices/register" else server.admin_token
    response = _post(server, path, token, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_unstorable_result_values_are_422(world):
    server, s, tasks = world
    cases = [
        (_result_with(tasks[0], task_id=2**70), "results[0].task_id"),
        ({"task_id": tasks[0].task_id, "result_id": "nul-error", "error": "bad\x00"}, "results[0].error"),
        (_result_with(tasks[0], runtime={**RUNTIME, "vendor_field": 2**80}), "results[0].runtime"),
        (
            _result_with(tasks[0], runtime={**RUNTIME, "runtime_version": "1\x00"}),
            "results[0].runtime.runtime_version",
        ),
    ]
    for result, field in cases:
        response = _post(server, "/agent/results", s.device_token, {"results": [result]})
        assert response.status_code == 422, response.text
        assert response.json()["field"] == field


def test_offline_result_with_unknown_key_is_404_and_other_sha_is_409(world):
    server, s, _ = world
    unknown = offline_result("no-such-key", "a" * 64, [1.0])
    response = _post(server, "/agent/measurements", s.device_token, {"results": [unknown]})
    assert response.status_code == 404 and response.json()["field"] == "results[0].key"
    other_sha = offline_result(s.keys[0], "b" * 64, [1.0])
    response = _post(server, "/agent/measurements", s.device_token, {"results": [other_sha]})
    assert response.status_code == 409 and response.json()["field"] == "results[0].onnx_sha256"
    no_sha = offline_result(s.keys[0], "b" * 64, [1.0])
    del no_sha["onnx_sha256"]
    response = _post(server, "/agent/measurements", s.device_token, {"results": [no_sha]})
    assert response.status_code == 422 and response.json()["field"] == "results[0].onnx_sha256"


def test_malformed_onnx_and_bad_base64_are_422(world):
    server, s, _ = world
    cases = [
        (base64.b64encode(b"definitely not protobuf").decode(), "not a valid ONNX model"),
        ("***not base64***", "not valid base64"),
        (base64.b64encode(tiny_onnx(1)[: len(tiny_onnx(1)) // 2]).decode(), "not a valid ONNX model"),
    ]
    for payload, message in cases:
        body = {"ops": [{"key": "fresh-key-for-bad-onnx", "spec": {}, "onnx_b64": payload}]}
        response = _post(server, "/ops", server.admin_token, body)
        assert response.status_code == 422, response.text
        assert response.json()["field"] == "ops[0].onnx_b64" and message in response.json()["detail"]


def test_onnx_breaking_the_io_contract_is_422(world):
    import onnx
    from onnx import TensorProto, helper

    server, _, _ = world
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3, 8, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    body = {
        "ops": [
            {"key": "wrong-io", "spec": {}, "onnx_b64": base64.b64encode(model.SerializeToString()).decode()}
        ]
    }
    response = _post(server, "/ops", server.admin_token, body)
    assert response.status_code == 422 and "named 'input'" in response.json()["detail"]


def test_op_key_rules(world):
    server, s, _ = world
    onnx_b64 = base64.b64encode(tiny_onnx(99)).decode()
    bad_key = _post(
        server, "/ops", server.admin_token, {"ops": [{"key": "a/b", "spec": {}, "onnx_b64": onnx_b64}]}
    )
    assert bad_key.status_code == 422 and bad_key.json()["field"] == "ops[0].key"
    too_long = _post(
        server, "/ops", server.admin_token, {"ops": [{"key": "k" * 201, "spec": {}, "onnx_b64": onnx_b64}]}
    )
    assert too_long.status_code == 422 and too_long.json()["field"] == "ops[0].key"
    twice = [{"key": "same-twice", "spec": {}, "onnx_b64": onnx_b64}] * 2
    response = _post(server, "/ops", server.admin_token, {"ops": twice})
    assert response.status_code == 422 and response.json()["field"] == "ops[1].key"
    other_model = base64.b64encode(tiny_onnx(12345)).decode()
    changed = _post(
        server, "/ops", server.admin_token, {"ops": [{"key": s.keys[0], "spec": {}, "onnx_b64": other_model}]}
    )
    assert changed.status_code == 409 and changed.json()["field"] == "ops[0].onnx_b64"


def test_jobs_with_unknown_device_or_key(world):
    server, s, _ = world
    response = _post(server, "/jobs", server.admin_token, {"device": "no-such-device", "keys": [s.keys[0]]})
    assert response.status_code == 404 and response.json()["field"] == "device"
    response = _post(
        server, "/jobs", server.admin_token, {"device": s.device_name, "keys": [s.keys[0], "nope"]}
    )
    assert response.status_code == 404 and response.json()["field"] == "keys[1]"
    response = _post(server, "/jobs", server.admin_token, {"device": s.device_name, "keys": []})
    assert response.status_code == 422 and response.json()["field"] == "keys"


def test_unknown_device_lut_and_bad_key_filter(world):
    server, s, _ = world
    headers = {"Authorization": f"Bearer {server.admin_token}"}
    missing = httpx.get(f"{server.url}/lut/no-such-device", headers=headers)
    assert missing.status_code == 404 and missing.json()["field"] == "device"
    assert httpx.get(f"{server.url}/devices/no-such-device", headers=headers).status_code == 404
    unknown_result = httpx.get(f"{server.url}/measurements/no-such-result", headers=headers)
    assert unknown_result.status_code == 404 and unknown_result.json()["field"] == "result_id"
    bad = httpx.get(f"{server.url}/lut/{s.device_name}", params={"keys": "ok,not ok"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["field"] == "keys[1]"
    bad_format = httpx.get(f"{server.url}/lut/{s.device_name}", params={"format": "xml"}, headers=headers)
    assert bad_format.status_code == 422 and bad_format.json()["field"] == "query.format"


def test_duplicate_device_name_is_409(world):
    server, s, _ = world
    response = _post(
        server, "/devices/register", server.enroll_token, {"name": s.device_name, "platform": "x"}
    )
    assert response.status_code == 409 and response.json()["field"] == "name"
    response = _post(server, "/devices/register", server.enroll_token, {"name": "has space", "platform": "x"})
    assert response.status_code == 422 and response.json()["field"] == "name"


@pytest.mark.parametrize("path", ["/agent/measurements", "/agent/results"])
@pytest.mark.parametrize("field", ["finished_at", "started_at"])
@pytest.mark.parametrize(
    ("at", "message"),
    [
        ("2026-11-28T12:00:00", "timezone"),
        ("9999-12-31T23:59:59-14:00", "out of range"),
        ("0001-01-01T00:00:00+14:00", "out of range"),
    ],
    ids=["no-timezone", "past-9999", "before-1"],
)
def test_timestamps_without_timezone_or_past_what_utc_can_hold_are_422(world, path, field, at, message):
    server, s, tasks = world
    runtime = {**RUNTIME, field: at}
    if path == "/agent/measurements":
        result = {**offline_result(s.keys[0], s.sha[s.keys[0]], [1.0, 2.0]), "runtime": runtime}
    else:
        result = _result_with(tasks[0], runtime=runtime)
    response = _post(server, path, s.device_token, {"results": [result]})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == f"results[0].runtime.{field}"
    assert message in response.json()["detail"]


def test_lease_limits_and_malformed_json(world):
    server, s, _ = world
    assert _post(server, "/agent/lease", s.device_token, {"max_tasks": 0}).json()["field"] == "max_tasks"
    too_many = _post(server, "/agent/lease", s.device_token, {"max_tasks": 10_000})
    assert too_many.status_code == 422 and too_many.json()["field"] == "max_tasks"
    broken = _post(server, "/agent/lease", s.device_token, content="{not json")
    assert broken.status_code == 422


@pytest.fixture
def small_body_app(fresh_database_url):
    settings = Settings(
        database_url=fresh_database_url, admin_token="a" * 20, enroll_token="e" * 20, max_body_bytes=2048
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_body_over_limit_is_413_in_process(small_body_app):
    headers = {"Authorization": "Bearer " + "a" * 20}
    body = {"ops": [{"key": "big", "spec": {"pad": "x" * 4096}, "onnx_b64": "AA=="}]}
    response = small_body_app.post("/ops", json=body, headers=headers)
    assert response.status_code == 413 and response.json()["field"] == "body"

    def chunked():  # no Content-Length: the limit is enforced while reading
        yield b'{"ops": ['
        for _ in range(100):
            yield b'{"key": "k", "spec": {}, "onnx_b64": "AAAA"},'
        yield b"]}"

    response = small_body_app.post(
        "/ops", content=chunked(), headers={**headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_limits_on_a_live_server_oversized_samples_422_and_body_413(live_server_factory, unique_name):
    server = live_server_factory(max_samples_per_result=10, max_body_bytes=4096)
    s = Setup(server, unique_name, n_ops=1)
    task = s.agent.lease()[0]
    response = _post(
        server, "/agent/results", s.device_token, {"results": [_result_with(task, samples_us=[5.0] * 11)]}
    )
    assert response.status_code == 422 and response.json()["field"] == "results[0].samples_us"
    assert "limit is 10" in response.json()["detail"]
    response = _post(
        server, "/ops", server.admin_token, {"ops": [{"key": "k", "spec": {}, "onnx_b64": "A" * 8192}]}
    )
    assert response.status_code == 413 and response.json()["field"] == "body"
