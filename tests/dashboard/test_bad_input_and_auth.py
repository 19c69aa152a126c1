"""Bad input is a 4xx naming the field, never a 500; admins write, device and enroll tokens may not."""

from __future__ import annotations

import pytest

from tests.dashboard.helpers import api, point, space_body

MAX_POINTS = 1000


def _space_with(change):
    body = space_body({})
    change(body)
    return body


SPACE_CASES = [
    ("layers", lambda b: b["layers"].pop()),  # 21 layers
    ("layers[4]", lambda b: b["layers"][4].pop()),  # 8 candidates in one layer
    ("layers[2][3]", lambda b: b["layers"][2].__setitem__(3, "bad key/with slash")),
    ("candidates", lambda b: b["candidates"].__setitem__(1, b["candidates"][0])),  # repeated name
    ("candidates", lambda b: b.pop("candidates")),
    ("fixed_keys[0]", lambda b: b.__setitem__("fixed_keys", [""])),
    ("params", lambda b: b.__setitem__("params", [1, 2])),
]


@pytest.mark.parametrize(("field", "change"), SPACE_CASES)
def test_bad_space_is_422_naming_the_field(live_server, unique_name, field, change):
    response = api(live_server, "PUT", f"/spaces/{unique_name('s')}", live_server.admin_token,
                   json=_space_with(change))  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_bad_space_name_is_422(live_server):
    response = api(live_server, "PUT", "/spaces/bad%20name", live_server.admin_token, json=space_body({}))
    assert response.status_code == 422 and response.json()["field"] == "path.name"


VALIDATION_CASES = [
    ("points[0].predicted_us", {"points": [point("n", -5.0, 100.0)]}),
    ("points[0].predicted_us", {"points": [point("n", 0.0, 100.0)]}),
    ("points[0].predicted_us", {"points": [point("n", 1e308, 100.0)]}),  # would make the error infinite
    ("points[0].measured_us", {"points": [point("n", 5.0, 1e-300)]}),
    ("points[0].measured_us", {"points": [point("n", 5.0, "fast")]}),
    ("points[0].split", {"points": [point("n", 5.0, 5.0, split="train")]}),
    ("points[0].key", {"points": [point("n", 5.0, 5.0, key="a b")]}),
    ("points[0].name", {"points": [{k: v for k, v in point("n", 5.0, 5.0).items() if k != "name"}]}),
    ("points", {"points": []}),
    ("points", {"points": [point(f"n{i}", 5.0, 5.0) for i in range(MAX_POINTS + 1)]}),
    ("label", {"label": ""}),
    ("space", {"space": "no/such/space"}),
]


@pytest.mark.parametrize(("field", "change"), VALIDATION_CASES)
def test_bad_validation_is_422_naming_the_field(live_server, unique_name, field, change):
    device = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(device, "linux")
    body = {"label": "run", "points": [point("n", 5.0, 5.0)], **change}
    response = api(live_server, "POST", f"/devices/{device}/validations", live_server.admin_token, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_nan_latency_is_422_not_500(live_server, unique_name):
    device = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(device, "linux")
    raw = ('{"label": "x", "points": [{"name": "n", "kind": "zoo", "key": "k", "predicted_us": NaN, '
           '"measured_us": 1.0}]}')  # fmt: skip
    response = api(live_server, "POST", f"/devices/{device}/validations", live_server.admin_token,
                   content=raw, headers={"Content-Type": "application/json"})  # fmt: skip
    assert response.status_code == 422 and response.json()["field"] == "points[0].predicted_us"


def test_unknown_device_or_space_is_404(live_server, unique_name):
    token = live_server.admin_token
    body = {"label": "run", "points": [point("n", 5.0, 5.0)]}
    response = api(live_server, "POST", f"/devices/{unique_name('nope')}/validations", token, json=body)
    assert (response.status_code, response.json()["field"]) == (404, "name")
    assert api(live_server, "GET", f"/devices/{unique_name('nope')}/validations", token).status_code == 404
    device = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(device, "linux")
    response = api(live_server, "POST", f"/devices/{device}/validations", token,
                   json={**body, "space": unique_name("unregistered")})  # fmt: skip
    assert (response.status_code, response.json()["field"]) == (404, "space")


def test_auth_admin_writes_readers_read(live_server, unique_name):
    device = unique_name("dev")
    device_token = live_server.client(live_server.enroll_token).register_device(device, "linux").token
    enroll = live_server.enroll_token
    space_path, runs_path = f"/spaces/{unique_name('s')}", f"/devices/{device}/validations"
    run = {"label": "run", "points": [point("n", 5.0, 5.0)]}
    writes = [("PUT", space_path, space_body({})), ("POST", runs_path, run)]
    for method, path, body in writes:
        assert api(live_server, method, path, None, json=body).status_code == 401
        for token in (device_token, enroll):
            response = api(live_server, method, path, token, json=body)
            assert response.status_code == 403, (method, path, response.text)
    for method, path, body in writes:
        assert api(live_server, method, path, live_server.admin_token, json=body).status_code in (200, 201)
    for path in (space_path, "/spaces", runs_path, f"/devices/{device}/coverage"):
        assert api(live_server, "GET", path, device_token).status_code == 200
        assert api(live_server, "GET", path, enroll).status_code == 403
        assert api(live_server, "GET", path).status_code == 401


def test_nul_characters_are_refused_in_text_and_kept_in_json(live_server, unique_name):
    """PostgreSQL text cannot hold NUL: a NUL in a text field is a 422 naming it (never a 500); free JSON
    (space params, calibration) keeps it."""
    device = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(device, "linux")
    token, runs_path = live_server.admin_token, f"/devices/{device}/validations"
    ok_point = point("n", 5.0, 5.0)
    refused = [
        ("PUT", f"/spaces/{unique_name('s')}", "candidates[0]",
         _space_with(lambda b: b["candidates"].__setitem__(0, "k\u0000"))),
        ("POST", runs_path, "label", {"label": "a\u0000b", "points": [ok_point]}),
        ("POST", runs_path, "points[0].name", {"label": "l", "points": [{**ok_point, "name": "n\u0000"}]}),
        ("POST", runs_path, "points[0].kind", {"label": "l", "points": [{**ok_point, "kind": "z\u0000"}]}),
    ]  # fmt: skip
    for method, path, field, body in refused:
        response = api(live_server, method, path, token, json=body)
        assert (response.status_code, response.json()["field"]) == (422, field), response.text
    params = {"a\u0000": "b\u0000"}
    space = api(
        live_server, "PUT", f"/spaces/{unique_name('s')}", token, json={**space_body({}), "params": params}
    )
    assert space.status_code == 201 and space.json()["params"] == params
    run = api(
        live_server,
        "POST",
        runs_path,
        token,
        json={"label": "l", "points": [ok_point], "calibration": params},
    )
    assert run.status_code == 201 and run.json()["calibration"] == params
