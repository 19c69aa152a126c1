"""The auth matrix: no token -> 401, unknown token -> 401, wrong scope -> 403, on a real server."""

from __future__ import annotations

import httpx
import pytest

from tests.server.helpers import Setup, task_result, unique

# (method, path template, body, roles allowed)
ENDPOINTS = [
    ("POST", "/devices/register", {"name": "{new}", "platform": "p"}, {"enroll"}),
    ("GET", "/devices", None, {"admin", "device"}),
    ("GET", "/devices/{device}", None, {"admin", "device"}),
    ("POST", "/ops", {"ops": []}, {"admin"}),
    ("GET", "/ops/{key}", None, {"admin", "device"}),
    ("GET", "/ops/{key}/model.onnx", None, {"admin", "device"}),
    ("POST", "/jobs", {"device": "{device}", "keys": ["{key}"]}, {"admin"}),
    ("POST", "/agent/lease", {"max_tasks": 1}, {"device"}),
    ("POST", "/agent/results", {"results": []}, {"device"}),
    ("POST", "/agent/measurements", {"results": []}, {"device"}),
    ("GET", "/lut/{device}", None, {"admin", "device"}),
    ("GET", "/measurements/unknown-result", None, {"admin", "device"}),
]


@pytest.fixture(scope="module")
def world(live_server):
    s = Setup(live_server, unique, n_ops=1)
    tokens = {"admin": live_server.admin_token, "enroll": live_server.enroll_token, "device": s.device_token}
    return live_server, s, tokens


def _call(world, method, path, body, token):
    server, s, _ = world

    def fill(value):
        if isinstance(value, str):
            return value.format(device=s.device_name, key=s.keys[0], new=unique("new"))
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [fill(v) for v in value]
        return value

    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.request(method, server.url + fill(path), json=fill(body), headers=headers)


@pytest.mark.parametrize(
    ("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS]
)
def test_auth_matrix(world, method, path, body, allowed):
    _, _, tokens = world
    missing = _call(world, method, path, body, None)
    assert missing.status_code == 401 and missing.json()["field"] == "Authorization"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert _call(world, method, path, body, "not-a-real-token-at-all").status_code == 401
    for role, token in tokens.items():
        status = _call(world, method, path, body, token).status_code
        if role in allowed:
            assert status not in (401, 403), f"{role} should be allowed on {method} {path}"
        else:
            assert status == 403, f"{role} should be refused on {method} {path}, got {status}"


def test_malformed_authorization_header_is_401(world):
    server, _, tokens = world
    response = httpx.get(f"{server.url}/devices", headers={"Authorization": f"Basic {tokens['admin']}"})
    assert response.status_code == 401 and "Bearer" in response.json()["detail"]


def test_agent_cannot_post_results_for_another_devices_task(world, live_server, unique_name):
    other = Setup(live_server, unique_name, n_ops=1)
    task = other.agent.lease()[0]
    _, mine, _ = world
    response = httpx.post(
        f"{live_server.url}/agent/results",
        json={"results": [task_result(task.task_id, task.key, [1.0, 2.0])]},
        headers={"Authorization": f"Bearer {mine.device_token}"},
    )
    assert response.status_code == 403
    assert response.json()["field"] == "results[0].task_id"


def test_agent_leases_only_its_own_devices_tasks(live_server, unique_name):
    first = Setup(live_server, unique_name, n_ops=2)
    second = Setup(live_server, unique_name, n_ops=2)
    assert {t.key for t in first.agent.lease(max_tasks=10)} == set(first.keys)
    assert {t.key for t in second.agent.lease(max_tasks=10)} == set(second.keys)
