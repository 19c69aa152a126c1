"""Dashboard pages over HTTP: user strings escaped, no secrets, 404s, the off switch, and no N+1 queries."""

from __future__ import annotations

import base64
import uuid

import httpx
from fastapi.testclient import TestClient
from sqlalchemy import event

from db.migrate import upgrade
from profiler_server.app import create_app
from profiler_server.config import Settings
from profiler_server.example_ops import op_upload
from tests.dashboard.helpers import StandInAgent, api, point, space_body, upload_ops

HOSTILE = '<script>alert("x")</script>'


def test_user_strings_are_escaped_and_no_token_is_shown(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    device = unique_name("dev")
    device_token = live_server.client(live_server.enroll_token).register_device(device, HOSTILE).token
    key = unique_name("op")
    upload_ops(admin, [key])
    admin.put_space(unique_name("space"), space_body({(0, 0): key}))
    admin.create_jobs(device, [key])
    StandInAgent(live_server.client(device_token)).work(max_tasks=1, fail=[key])
    admin.post_validation(device, {"label": HOSTILE, "points": [point(HOSTILE, 5.0, 5.0)],
                                   "calibration": {HOSTILE: HOSTILE}})  # fmt: skip

    for path in ("/", f"/dashboard/devices/{device}"):
        response = httpx.get(f"{live_server.url}{path}")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        page = response.text
        assert device in page
        assert HOSTILE not in page and "<script" not in page
        assert "&lt;script&gt;" in page
        assert f"&lt;{key}&gt; not supported &amp; skipped" in page  # the failure reason, escaped
        for secret in (live_server.admin_token, live_server.enroll_token, device_token):
            assert secret not in page


def test_each_devices_runtime_and_format_are_shown(live_server, unique_name):
    enroll = live_server.client(live_server.enroll_token)
    phone, host = unique_name("pixel-et"), unique_name("host-ort")
    enroll.register_device(phone, "android-arm64", {}, "executorch")
    enroll.register_device(host, "linux")
    index = httpx.get(f"{live_server.url}/").text
    for name, runtime, model_format in ((phone, "executorch", "pte"), (host, "onnxruntime", "onnx")):
        row = index.split(f'data-device="{name}"', 1)[1].split("</tr>", 1)[0]
        assert f'<td class="runtime">{runtime} <span class="muted">.{model_format}</span></td>' in row
    page = httpx.get(f"{live_server.url}/dashboard/devices/{phone}").text
    assert "runtime executorch (.pte files)" in page


def test_unknown_device_or_space_page_is_a_404_page(live_server, unique_name):
    device = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(device, "linux")
    missing = httpx.get(f"{live_server.url}/dashboard/devices/{unique_name('nope')}")
    assert missing.status_code == 404 and "There is no device" in missing.text
    no_space = httpx.get(f"{live_server.url}/dashboard/devices/{device}", params={"space": "<nope>"})
    assert no_space.status_code == 404 and "search space &#39;&lt;nope&gt;&#39;" in no_space.text


def test_static_assets_are_served_from_the_package(live_server):
    css = httpx.get(f"{live_server.url}/dashboard/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".heatmap" in css.text
    logo = httpx.get(f"{live_server.url}/dashboard/static/logo.svg")
    assert logo.status_code == 200 and logo.text.startswith("<svg")


def test_dashboard_can_be_turned_off(live_server_factory):
    server = live_server_factory("sqlite", dashboard_enabled=False)
    assert httpx.get(f"{server.url}/").status_code == 404
    assert httpx.get(f"{server.url}/dashboard/static/dashboard.css").status_code == 404
    assert api(server, "GET", "/spaces", server.admin_token).status_code == 200  # the API stays


def _count_queries(app, client, path: str) -> int:
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(app.state.engine, "before_cursor_execute", record)
    return len(statements)


def test_pages_cost_the_same_queries_for_one_device_or_many(tmp_path):
    """One query per table: adding devices, tasks and runs adds rows, not queries (no N+1)."""
    url = f"sqlite:///{tmp_path / 'pages.sqlite3'}"
    upgrade(url)
    settings = Settings(database_url=url, admin_token="a" * 32, enroll_token="e" * 32)
    app = create_app(settings)
    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {'a' * 32}"}
        keys = [f"op-{i}" for i in range(4)]
        ops = [op_upload(key, i) for i, key in enumerate(keys)]
        body = {"ops": [{"key": o.key, "spec": o.spec, "onnx_b64": base64.b64encode(o.onnx_bytes).decode()}
                        for o in ops]}  # fmt: skip
        assert client.post("/ops", json=body, headers=admin).status_code in (200, 201)
        assert client.put("/spaces/s", json=space_body({(0, i): k for i, k in enumerate(keys)}),
                          headers=admin).status_code == 201  # fmt: skip

        def add_device() -> None:
            name = f"dev-{uuid.uuid4().hex[:6]}"
            reg = client.post("/devices/register", json={"name": name, "platform": "x"},
                              headers={"Authorization": f"Bearer {'e' * 32}"})  # fmt: skip
            client.post("/jobs", json={"device": name, "keys": keys}, headers=admin)
            client.post("/agent/lease", json={"max_tasks": 2},
                        headers={"Authorization": f"Bearer {reg.json()['token']}"})  # fmt: skip
            run = {"label": "r", "points": [point("n", 5.0, 4.0), point("m", 9.0, 9.5)]}
            assert client.post(f"/devices/{name}/validations", json=run, headers=admin).status_code == 201

        add_device()
        with_one = _count_queries(app, client, "/")
        for _ in range(4):
            add_device()
        assert _count_queries(app, client, "/") == with_one


def test_device_page_shows_the_most_measured_space_unless_one_is_asked_for(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    device = unique_name("dev")
    token = live_server.client(live_server.enroll_token).register_device(device, "linux").token
    measured_key, other_key = unique_name("op"), unique_name("op")
    upload_ops(admin, [measured_key, other_key])
    measured_space, other_space = unique_name("space"), unique_name("space")
    admin.put_space(measured_space, space_body({(0, 0): measured_key}))
    admin.put_space(other_space, space_body({(0, 0): other_key}))
    admin.create_jobs(device, [measured_key])
    StandInAgent(live_server.client(token)).work(max_tasks=1)

    default = httpx.get(f"{live_server.url}/dashboard/devices/{device}").text
    assert f'<span class="space-title">{measured_space}</span>' in default
    assert f'data-state="measured" data-key="{measured_key}"' in default
    assert f'href="?space={other_space}"' in default  # a tab per space
    chosen = httpx.get(f"{live_server.url}/dashboard/devices/{device}", params={"space": other_space}).text
    assert f'<span class="space-title">{other_space}</span>' in chosen
    assert f'data-state="missing" data-key="{other_key}"' in chosen


def test_the_device_page_reads_only_its_spaces_entries_never_a_whole_lut(fresh_database_url, monkeypatch):
    """A tokenless page whose cost is bounded by the space, whatever the LUT's size and however often its version
    changes: the heat map never loads (and so never renders) the device's whole LUT."""
    from profiler_server.services import lut as lut_service

    settings = Settings(database_url=fresh_database_url, admin_token="a" * 32, enroll_token="e" * 32)
    with TestClient(create_app(settings)) as client:
        admin = {"Authorization": f"Bearer {'a' * 32}"}
        keys = [f"op-{i}" for i in range(6)]  # the space holds keys[0]; the LUT all six
        ops = [op_upload(key, i) for i, key in enumerate(keys)]
        body = {"ops": [{"key": o.key, "spec": o.spec, "onnx_b64": base64.b64encode(o.onnx_bytes).decode()}
                        for o in ops]}  # fmt: skip
        assert client.post("/ops", json=body, headers=admin).status_code == 200
        assert client.put("/spaces/s", json=space_body({(0, 0): keys[0]}), headers=admin).status_code == 201
        token = client.post("/devices/register", json={"name": "d", "platform": "x"},
                            headers={"Authorization": f"Bearer {'e' * 32}"}).json()["token"]  # fmt: skip
        device = {"Authorization": f"Bearer {token}"}
        client.post("/jobs", json={"device": "d", "keys": keys}, headers=admin)
        tasks = client.post("/agent/lease", json={"max_tasks": 6}, headers=device).json()["tasks"]
        results = [{"task_id": t["task_id"], "result_id": f"r{t['task_id']}", "samples_us": [5.0, 5.0, 5.0],
                    "runtime": {"runtime": "stand-in", "runtime_version": "1"}} for t in tasks]  # fmt: skip
        assert (
            client.post("/agent/results", json={"results": results}, headers=device).json()["accepted"] == 6
        )

        def whole_lut(*_args: object) -> None:
            raise AssertionError("the dashboard loaded a whole LUT")

        monkeypatch.setattr(lut_service, "load_entries", whole_lut)
        page = client.get("/dashboard/devices/d")
        assert page.status_code == 200
        assert f'data-state="measured" data-key="{keys[0]}"' in page.text
