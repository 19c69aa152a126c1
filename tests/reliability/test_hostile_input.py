"""Hostile input: malicious ONNX, metacharacters and unicode in names and keys, oversized and deeply nested bodies.

Every case ends in a 4xx naming the field, or the value stored and returned verbatim; never a 500, never
interpreted. Ordinary bad input (NaN samples, bad keys, 413 bodies, small sample limits) is in
tests/server/test_bad_input.py.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid

import httpx
import numpy as np
import onnx
import pytest
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from profiler_server.example_ops import RUNTIME
from tests.server.helpers import Setup, task_result, unique


@pytest.fixture(scope="module")
def world(live_server):
    return live_server, Setup(live_server, unique, n_ops=2)


def _request(server, method, path, token, body=None, content=None, params=None):
    headers = {"Authorization": f"Bearer {token}"}
    if content is not None:
        headers["Content-Type"] = "application/json"
    return httpx.request(method, server.url + path, json=body, content=content, params=params, headers=headers,
                         timeout=60)  # fmt: skip


def _external(location: str) -> TensorProto:
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4, 4, 1, 1])
    tensor.data_location = TensorProto.EXTERNAL
    tensor.external_data.add(key="location", value=location)
    return tensor


def _model(initializers, nodes=None, input_shape=(1, 4, 8, 8)) -> bytes:
    nodes = nodes or [helper.make_node("Conv", ["input", "w"], ["output"])]
    graph = helper.make_graph(
        nodes,
        "hostile",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def _in_subgraph(tensor: TensorProto) -> bytes:
    """The external tensor hidden in a Constant inside an If branch."""
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["w"], value=tensor)],
        "branch",
        [],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 4, 1, 1])],
    )
    cond = numpy_helper.from_array(np.array(True), "cond")
    if_node = helper.make_node("If", ["cond"], ["w"], then_branch=branch, else_branch=branch)
    assert if_node.attribute[0].type == AttributeProto.GRAPH
    return _model([cond], [if_node, helper.make_node("Conv", ["input", "w"], ["output"])])


def _huge_without_data() -> TensorProto:
    tensor = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 20, 1 << 20, 1, 1])
    tensor.raw_data = b"\0" * 64
    return tensor


def _constant_of_shape(dims: list[int]) -> bytes:
    """A model of the contract's I/O that computes a tensor of `dims` from a 32-byte constant (a few hundred bytes
    in all): only shape inference with data propagation sees what it allocates."""
    shape = numpy_helper.from_array(np.array(dims, np.int64), "shape")
    nodes = [
        helper.make_node("Constant", [], ["s"], value=shape),
        helper.make_node("ConstantOfShape", ["s"], ["big"]),
        helper.make_node("ReduceMean", ["big"], ["m"], keepdims=1),
        helper.make_node("Add", ["input", "m"], ["output"]),
    ]
    return _model([], nodes)


def _negative_input_dim() -> bytes:
    return _model(
        [numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")], input_shape=(1, 4, -8, 8)
    )


def _external_in_training_info() -> bytes:
    model = onnx.load_model_from_string(
        _model([numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")])
    )
    training = model.training_info.add()
    training.initialization.name = "init"
    training.initialization.initializer.append(_external("../../etc/passwd"))
    return model.SerializeToString()


def _negative_dim_in_training_info() -> bytes:
    model = onnx.load_model_from_string(
        _model([numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")])
    )
    training = model.training_info.add()
    training.initialization.name = "init"
    training.initialization.initializer.append(
        TensorProto(name="t", data_type=TensorProto.FLOAT, dims=[-1, 4])
    )
    return model.SerializeToString()


MALICIOUS_ONNX = {
    "constant-of-shape-1-gib": (_constant_of_shape([1, 256, 1024, 1024]), "the limit is"),
    "constant-of-shape-4-tb": (_constant_of_shape([1024, 1024, 1024, 1024]), "the limit is"),
    "negative-input-dim": (_negative_input_dim(), "negative dimension"),
    "external-data-in-training-info": (_external_in_training_info(), "external file ('../../etc/passwd')"),
    "negative-dim-in-training-info": (_negative_dim_in_training_info(), "negative dimension"),
    "external-data-traversal": (
        _model([_external("../../etc/passwd")]),
        "external file ('../../etc/passwd')",
    ),
    "external-data-absolute": (_model([_external("/etc/passwd")]), "external file ('/etc/passwd')"),
    "external-data-next-to-the-model": (
        _model([_external("pyproject.toml")]),
        "external file ('pyproject.toml')",
    ),
    "external-data-in-a-subgraph": (_in_subgraph(_external("../../etc/shadow")), "external file"),
    "huge-declared-input": (
        _model(
            [numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")],
            input_shape=(1, 4, 10**6, 10**6),
        ),
        "the limit is",
    ),
    "huge-declared-initializer": (_model([_huge_without_data()]), "too small for the declared shape"),
}


@pytest.mark.parametrize("case", sorted(MALICIOUS_ONNX))
def test_malicious_onnx_is_refused_with_422_and_no_file_is_read(world, case):
    server, _ = world
    content, message = MALICIOUS_ONNX[case]
    key = unique("hostile")
    body = {"ops": [{"key": key, "spec": {}, "onnx_b64": base64.b64encode(content).decode()}]}
    response = _request(server, "POST", "/ops", server.admin_token, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "ops[0].onnx_b64" and message in response.json()["detail"]
    assert "root:" not in response.text  # nothing of a local file comes back
    assert _request(server, "GET", f"/ops/{key}", server.admin_token).status_code == 404


def test_external_data_is_refused_the_same_whether_the_file_exists_or_not(world):
    """No oracle: the refusal happens before any path is looked at (the checker would stat it)."""
    server, _ = world
    answers = []
    for location in ("pyproject.toml", f"no-such-file-{uuid.uuid4().hex}"):
        body = {"ops": [{"key": unique("probe"), "spec": {},
                         "onnx_b64": base64.b64encode(_model([_external(location)])).decode()}]}  # fmt: skip
        response = _request(server, "POST", "/ops", server.admin_token, body)
        answers.append((response.status_code, response.json()["detail"].replace(location, "<path>")))
    assert answers[0] == answers[1]


# Stored verbatim: JSON is data to the server (bound parameters, JSON columns), never SQL or a path.
NASTY_STRINGS = [
    "'; DROP TABLE devices; --",
    '" OR 1=1 --',
    "../../../../etc/passwd",
    "..\\..\\windows\\system32",
    "%00%2e%2e%2f",
    "Robert'); DELETE FROM measurements;--",
    "日本語のデバイス",
    "emoji 📱🔥 and RTL \u202eevil",
    "e\u0301 combining",
    "<script>alert(1)</script>",
    "{{7*7}} ${7*7}",
    "x" * 5000,
]


def test_nasty_strings_in_attributes_specs_runtime_and_failures_are_stored_verbatim(world, unique_name):
    server, s = world
    attributes = {f"k{i}": value for i, value in enumerate(NASTY_STRINGS)} | {"'; --": NASTY_STRINGS}
    name = unique_name("nasty")
    registered = _request(server, "POST", "/devices/register", server.enroll_token,
                          {"name": name, "platform": "'; DROP TABLE ops; -- 📱", "attributes": attributes})  # fmt: skip
    assert registered.status_code == 201, registered.text
    device = _request(server, "GET", f"/devices/{name}", server.admin_token).json()
    assert device["attributes"] == attributes and device["platform"] == "'; DROP TABLE ops; -- 📱"

    key = unique("nastyop")
    spec = {"kind": "test_conv", "batch": 1, "dtype": "float32", "notes": NASTY_STRINGS}
    onnx_b64 = base64.b64encode(
        _model([numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")])
    ).decode()
    assert _request(server, "POST", "/ops", server.admin_token,
                    {"ops": [{"key": key, "spec": spec, "onnx_b64": onnx_b64}]}).status_code == 200  # fmt: skip
    assert _request(server, "GET", f"/ops/{key}", server.admin_token).json()["spec"] == spec

    # A runtime description and a failure reason from the device, both full of metacharacters.
    task = s.agent.lease()[0]
    reason = "\n".join(NASTY_STRINGS[:-1])  # the long one is over the 4,000-character limit on reasons
    failure = {"task_id": task.task_id, "result_id": str(uuid.uuid4()), "error": reason}
    posted = _request(server, "POST", "/agent/results", s.device_token, {"results": [failure]})
    assert posted.status_code == 200 and posted.json()["failures"] == 1, posted.text
    other = s.agent.lease()[0]
    result = task_result(other.task_id, other.key, [5.0, 6.0])
    result["runtime"] = {**RUNTIME, "runtime_version": NASTY_STRINGS[0][:50], "extra": {"n": NASTY_STRINGS}}
    assert (
        _request(server, "POST", "/agent/results", s.device_token, {"results": [result]}).json()["accepted"]
        == 1
    )
    # The tables the strings tried to drop are all still there.
    assert len(_request(server, "GET", "/devices", server.admin_token).json()["data"]) >= 2
    assert s.admin.get_lut(s.device_name).entries[other.key]["median_us"] == 5.5
    # The dashboard shows the failure reason as text, never as markup.
    page = httpx.get(f"{server.url}/dashboard/devices/{s.device_name}").text
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/devices/register", "name"),
        ("/jobs", "device"),
    ],
)
@pytest.mark.parametrize("name", ["'; DROP TABLE devices; --", "../etc", "日本", "a b", "", "x" * 101])
def test_names_outside_the_safe_alphabet_are_refused_naming_the_field(world, path, field, name):
    server, s = world
    token = server.enroll_token if path == "/devices/register" else server.admin_token
    body = {"name": name, "platform": "p"} if field == "name" else {"device": name, "keys": [s.keys[0]]}
    response = _request(server, "POST", path, token, body)
    assert response.status_code == 422 and response.json()["field"] == field, response.text


@pytest.mark.parametrize("value", ["'; DROP TABLE ops; --", "../../etc/passwd", "ключ", "k" * 201])
def test_op_keys_and_key_filters_outside_the_safe_alphabet_are_refused(world, value):
    server, s = world
    onnx_b64 = base64.b64encode(
        _model([numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")])
    ).decode()
    upload = _request(
        server,
        "POST",
        "/ops",
        server.admin_token,
        {"ops": [{"key": value, "spec": {}, "onnx_b64": onnx_b64}]},
    )
    assert upload.status_code == 422 and upload.json()["field"] == "ops[0].key"
    lut = _request(
        server, "GET", f"/lut/{s.device_name}", server.admin_token, params={"keys": f"{s.keys[0]},{value}"}
    )
    assert lut.status_code == 422 and lut.json()["field"] == "keys[1]"


@pytest.mark.parametrize("path", ["/devices/%2e%2e%2fetc%2fpasswd", "/lut/..%2F..%2Fetc", "/ops/%00/model.onnx",
                                  "/devices/%27%3B%20DROP%20TABLE%20devices%3B--"])  # fmt: skip
def test_encoded_traversal_and_metacharacters_in_paths_are_4xx(world, path):
    server, _ = world
    response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {server.admin_token}"})
    assert 400 <= response.status_code < 500, response.text


def test_nul_characters_are_stored_or_refused_never_a_500(world, unique_name):
    server, s = world
    name = unique_name("nul")
    registered = _request(server, "POST", "/devices/register", server.enroll_token,
                          {"name": name, "platform": "p\u0000q", "attributes": {"a\u0000": "b\u0000c"}})  # fmt: skip
    assert registered.status_code in (201, 422), registered.text
    if registered.status_code == 201:
        device = _request(server, "GET", f"/devices/{name}", server.admin_token).json()
        assert device["attributes"] == {"a\u0000": "b\u0000c"}
    else:
        assert registered.json()["field"]
    task = s.agent.lease()
    if task:
        failure = {"task_id": task[0].task_id, "result_id": str(uuid.uuid4()), "error": "bad\u0000reason"}
        response = _request(server, "POST", "/agent/results", s.device_token, {"results": [failure]})
        assert response.status_code in (200, 422), response.text


def test_deeply_nested_and_huge_number_bodies_are_4xx(world):
    server, s = world
    nested = '{"results": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = _request(server, "POST", "/agent/results", s.device_token, content=nested)
    assert 400 <= response.status_code < 500, response.text
    huge_number = '{"max_tasks": ' + "9" * 10_000 + "}"  # past the JSON parser's range for numbers
    response = _request(server, "POST", "/agent/lease", s.device_token, content=huge_number)
    assert response.status_code == 422 and response.json()["field"] == "body", response.text
    assert "number out of range" in response.json()["detail"]


def test_request_count_limits_name_the_field(live_server_factory, unique_name):
    server = live_server_factory(max_results_per_request=3, max_keys_per_job=3)
    s = Setup(server, unique_name, n_ops=4, queue=False)
    jobs = _request(server, "POST", "/jobs", server.admin_token, {"device": s.device_name, "keys": s.keys})
    assert (
        jobs.status_code == 422 and jobs.json()["field"] == "keys" and "limit is 3" in jobs.json()["detail"]
    )
    s.admin.create_jobs(s.device_name, s.keys[:3])
    results = [task_result(t.task_id, t.key, [1.0]) for t in s.agent.lease(max_tasks=3)]
    too_many = _request(server, "POST", "/agent/results", s.device_token, {"results": results + results[:1]})
    assert too_many.status_code == 422 and too_many.json()["field"] == "results"


def test_declared_but_unsent_huge_body_is_413_without_reading_it(world):
    server, s = world
    host, port = server.url.removeprefix("http://").split(":")
    # A raw request: HTTP clients refuse to send a Content-Length they do not honour.
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(
            f"POST /agent/results HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {s.device_token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {10**12}\r\n\r\n{{}}".encode()
        )
        reply = sock.makefile("rb")
        status = reply.readline().decode()
        headers = dict(line.decode().strip().lower().split(": ", 1) for line in iter(reply.readline, b"\r\n"))
        body = json.loads(reply.read(int(headers["content-length"])))
    assert status.startswith("HTTP/1.1 413"), status
    assert body["field"] == "body"
