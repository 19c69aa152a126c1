"""Validation runs on a live server (SQLite and PostgreSQL): stored per device, summary computed by the server."""

from __future__ import annotations

import pytest

from tests.dashboard.helpers import api, point, space_body


@pytest.fixture
def device(live_server, unique_name):
    name = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(name, "linux")
    return name


def test_post_then_get_runs_newest_first_with_points_and_summary(live_server, unique_name, device):
    admin = live_server.client(live_server.admin_token)
    space = unique_name("space")
    admin.put_space(space, space_body({}))
    points = [
        point("fbnet_a", 110.0, 100.0, kind="zoo"),
        point("r0", 190.0, 200.0, split="fit"),
        point("r1", 300.0, 300.0, split="fit"),
        point("r2", 400.0, 500.0, split="holdout"),
    ]
    first = admin.post_validation(device, {"space": space, "label": "raw LUT sum", "points": points,
                                           "calibration": None})  # fmt: skip
    summary = first["summary"]["all"]
    # Hand values: errors +10%, -5%, 0%, -20% (see tests/core/test_fidelity.py).
    assert summary["n"] == 4 and summary["mape_pct"] == pytest.approx(8.75)
    assert (summary["within_5_pct"], summary["within_10_pct"]) == (50.0, 75.0)
    assert summary["kendall_tau"] == 1.0 and summary["mean_signed_error_pct"] == pytest.approx(-3.75)
    assert first["summary"]["fit"]["n"] == 2 and first["summary"]["holdout"]["mape_pct"] == pytest.approx(
        20.0
    )

    calibration = {"method": "linear", "slope": 1.02, "intercept_us": -3.5}
    second = admin.post_validation(device, {"space": None, "label": "calibrated", "points": points[:2],
                                            "calibration": calibration})  # fmt: skip
    assert "fit" in second["summary"] and "holdout" not in second["summary"]

    device_token = live_server.client(live_server.enroll_token).register_device(unique_name("dev"), "x").token
    runs = live_server.client(device_token).get_validations(device)  # any device's token may read
    assert [r["id"] for r in runs] == [second["id"], first["id"]]
    assert runs[0]["calibration"] == calibration and runs[0]["space"] is None
    assert [p["name"] for p in runs[1]["points"]] == ["fbnet_a", "r0", "r1", "r2"]
    assert runs[1]["points"][0] == {**points[0], "split": None}
    assert len(admin.get_validations(device, limit=1)) == 1


def test_runs_are_per_device(live_server, unique_name, device):
    admin = live_server.client(live_server.admin_token)
    other = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(other, "linux")
    admin.post_validation(device, {"label": "mine", "points": [point("n", 1.0, 1.0)]})
    assert admin.get_validations(other) == []
    assert [r["label"] for r in admin.get_validations(device)] == ["mine"]


def test_the_client_cannot_supply_the_summary(live_server, device):
    body = {"label": "x", "points": [point("n", 200.0, 100.0)], "summary": {"all": {"mape_pct": 0.0}}}
    response = api(live_server, "POST", f"/devices/{device}/validations", live_server.admin_token, json=body)
    assert response.status_code == 201
    assert response.json()["summary"]["all"]["mape_pct"] == pytest.approx(100.0)
