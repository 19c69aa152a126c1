"""The full authorisation matrix, generated from the app's routes: a new endpoint without a rule here fails.

Every endpoint is called on a real server with no token, an unknown token and each kind of token (admin, enroll,
device). Roles it allows must get past authentication (any answer but 401/403: 200, or 404/422 for the dummy
resource and body, since authentication runs before validation); every other role gets 403, no token and an
unknown token 401. tests/server/test_auth.py keeps the hand-written protocol cases (another device's task...).
"""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from device_agents.state import AgentPaths, load_credentials
from profiler_server.app import create_app
from profiler_server.config import Settings
from tests.reliability.helpers import agent_log, database_unavailable, start_agent
from tests.server.helpers import Setup, unique

ROLES = ("admin", "enroll", "device")
PUBLIC = frozenset({"anyone"})
ADMIN = frozenset({"admin"})
ENROLL = frozenset({"enroll"})
DEVICE = frozenset({"device"})
READERS = frozenset({"admin", "device"})

# (method, path template) -> who may call it. PUBLIC ones show no secrets (docs/reliability.md says why each is).
RULES: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/dashboard/devices/{name}"): PUBLIC,
    ("MOUNT", "/dashboard/static"): PUBLIC,
    ("MOUNT", "/static-offline-docs"): PUBLIC,  # Swagger UI's and ReDoc's scripts and styles, for /docs and /redoc
    ("POST", "/devices/register"): ENROLL,
    ("GET", "/devices"): READERS,
    ("GET", "/devices/{name}"): READERS,
    ("GET", "/devices/{name}/coverage"): READERS,
    ("POST", "/devices/{name}/validations"): ADMIN,
    ("GET", "/devices/{name}/validations"): READERS,
    ("POST", "/ops"): ADMIN,
    ("GET", "/ops/{key}"): READERS,
    ("GET", "/ops/{key}/model.onnx"): READERS,
    ("GET", "/ops/{key}/models/{model_format}"): READERS,
    ("POST", "/jobs"): ADMIN,
    ("POST", "/agent/lease"): DEVICE,
    ("POST", "/agent/release"): DEVICE,
    ("POST", "/agent/results"): DEVICE,
    ("POST", "/agent/measurements"): DEVICE,
    ("GET", "/lut/{device}"): READERS,
    ("GET", "/measurements/{result_id}"): READERS,
    ("PUT", "/spaces/{name}"): ADMIN,
    ("GET", "/spaces"): READERS,
    ("GET", "/spaces/{name}"): READERS,
}


def _walk(routes: list[Any]) -> set[tuple[str, str]]:
    """(method, path) of every endpoint, through included routers; HEAD is GET's shadow, mounts are 'MOUNT'."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if hasattr(
            route, "effective_route_contexts"
        ):  # FastAPI >= 0.130: an included router, flattened lazily
            for context in route.effective_route_contexts():
                found |= {(m, context.path) for m in context.methods or () if m != "HEAD"}
        elif hasattr(route, "methods") and route.methods:
            found |= {(m, route.path) for m in route.methods if m != "HEAD"}
        elif hasattr(route, "routes") and route.routes and not hasattr(route, "app"):
            found |= _walk(route.routes)
        else:
            found.add(("MOUNT", route.path))
    return found


def _app_endpoints() -> set[tuple[str, str]]:
    settings = Settings(database_url="sqlite://", admin_token="a" * 20, enroll_token="e" * 20)
    return _walk(create_app(settings).routes)


def test_every_endpoint_has_an_authorisation_rule_and_every_rule_an_endpoint():
    endpoints = _app_endpoints()
    assert not endpoints - RULES.keys(), (
        f"endpoints without a rule in RULES: {sorted(endpoints - RULES.keys())}"
    )
    assert not RULES.keys() - endpoints, (
        f"rules for endpoints that do not exist: {sorted(RULES.keys() - endpoints)}"
    )


def test_the_route_walk_sees_a_newly_added_endpoint():
    """The check above cannot pass by not seeing routes: one added through a router shows up, without a rule."""
    from fastapi import APIRouter

    settings = Settings(database_url="sqlite://", admin_token="a" * 20, enroll_token="e" * 20)
    app = create_app(settings)
    router = APIRouter(prefix="/new")
    router.add_api_route("/{thing}", lambda thing: thing, methods=["DELETE"])
    app.include_router(router)
    assert _walk(app.routes) - RULES.keys() == {("DELETE", "/new/{thing}")}


@pytest.fixture(scope="module")
def world(live_server):
    s = Setup(live_server, unique, n_ops=1)
    tokens = {"admin": live_server.admin_token, "enroll": live_server.enroll_token, "device": s.device_token}
    return live_server, s, tokens


def _concrete(path: str, s: Setup) -> str:
    if path == "/dashboard/static":
        return "/dashboard/static/dashboard.css"
    if path == "/static-offline-docs":
        return "/static-offline-docs/swagger-ui.css"
    name = unique("space") if path.startswith("/spaces/") else s.device_name
    return path.format(name=name, device=s.device_name, key=s.keys[0], model_format="onnx", result_id=unique("result"))


def _call(server, method: str, path: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    method = "GET" if method == "MOUNT" else method
    body = {} if method in ("POST", "PUT") else None
    return httpx.request(method, server.url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize(("method", "path"), sorted(RULES), ids=[f"{m} {p}" for m, p in sorted(RULES)])
def test_authorisation(world, method, path):
    server, s, tokens = world
    allowed = RULES[(method, path)]
    url = _concrete(path, s)
    if allowed == PUBLIC:
        assert _call(server, method, url, None).status_code == 200
        return
    missing = _call(server, method, url, None)
    assert missing.status_code == 401 and missing.json()["field"] == "Authorization"
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert _call(server, method, url, "an-unknown-token-of-some-length").status_code == 401
    for role in ROLES:
        status = _call(server, method, url, tokens[role]).status_code
        if role in allowed:
            assert status not in (401, 403), f"{role} token refused on {method} {path}"
        else:
            assert status == 403, f"{role} token let through on {method} {path}: {status}"


def test_tokens_are_never_returned_after_creation(world):
    server, s, tokens = world
    secrets = [*tokens.values(), hashlib.sha256(s.device_token.encode()).hexdigest()]
    for method, path in sorted(RULES):
        if method != "GET":
            continue
        for token in (None, tokens["admin"], tokens["device"]):
            response = _call(server, method, _concrete(path, s), token)
            text = response.text + "".join(f"{k}: {v}" for k, v in response.headers.items())
            leaked = [i for i, secret in enumerate(secrets) if secret in text]
            assert not leaked, f"GET {path} shows secret(s) {leaked}"
    again = httpx.post(
        f"{server.url}/devices/register",
        json={"name": s.device_name, "platform": "p"},
        headers={"Authorization": f"Bearer {tokens['enroll']}"},
    )
    assert (
        again.status_code == 409 and s.device_token not in again.text
    )  # a second registration shows nothing


def test_tokens_are_never_logged_by_the_server_or_the_agent(live_server_factory, tmp_path):
    server = live_server_factory("sqlite", sqlite_busy_timeout_ms=100)
    agent = start_agent(server, "quiet", tmp_path, "--once")
    stdout, _ = agent.communicate(timeout=60)
    assert agent.returncode == 0, agent_log(tmp_path, "quiet").read_text()
    device_token = load_credentials(AgentPaths.for_agent(tmp_path, "quiet")).device_token
    wrong = "wrong-token-that-must-not-be-logged"
    # What makes a server log: refused tokens, refused roles, bad input, and a database outage (503 warnings).
    for token in (wrong, device_token, server.enroll_token, server.admin_token):
        for method, path in (("POST", "/ops"), ("POST", "/agent/lease"), ("GET", "/devices/quiet")):
            _call(server, method, path, token)
    with database_unavailable("sqlite", server.database_url):
        assert _call(server, "POST", "/agent/lease", device_token).status_code == 503
    server.stop()
    logs = server.log_path.read_text() + agent_log(tmp_path, "quiet").read_text() + stdout
    assert "database unavailable" in logs  # the log did capture this run's warnings
    for secret in (wrong, device_token, server.enroll_token, server.admin_token):
        assert secret not in logs
