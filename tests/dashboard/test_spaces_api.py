"""Search spaces and per-space coverage on a live server (SQLite and PostgreSQL)."""

from __future__ import annotations

from tests.dashboard.helpers import StandInAgent, api, space_body, upload_ops


def test_put_get_and_replace_a_space(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    name = unique_name("space")
    shared, other, stem = unique_name("blk"), unique_name("blk"), unique_name("stem")
    # `shared` sits in two layers and counts once; layer 3's skip is an identity (null).
    body = space_body({(0, 0): shared, (5, 2): shared, (7, 1): other}, fixed_keys=[stem], identity=[3])
    created = admin.put_space(name, body)
    assert created["layers"][3][8] is None and created["layers"][5][2] == shared
    assert created["n_keys"] == 4  # filler, shared, other, stem

    stored = admin.get_spaces()
    mine = next(s for s in stored if s["name"] == name)
    assert mine["candidates"] == body["candidates"] and mine["fixed_keys"] == [stem]
    assert mine["params"] == {"test": True}

    replaced = admin.put_space(name, space_body({}, fixed_keys=[]))
    assert replaced["n_keys"] == 1 and replaced["created_at"] == created["created_at"]
    assert replaced["updated_at"] >= created["updated_at"]


def test_put_space_answers_201_then_200(live_server, unique_name):
    path, token, body = f"/spaces/{unique_name('space')}", live_server.admin_token, space_body({})
    assert api(live_server, "PUT", path, token, json=body).status_code == 201
    assert api(live_server, "PUT", path, token, json=body).status_code == 200
    assert api(live_server, "GET", path, token).json()["n_keys"] == 1


def test_coverage_counts_each_key_in_exactly_one_state(live_server, unique_name):
    token = live_server.admin_token
    admin = live_server.client(token)
    enroll = live_server.client(live_server.enroll_token)
    device, bystander = unique_name("dev"), unique_name("dev")
    agent = StandInAgent(live_server.client(enroll.register_device(device, "linux").token))
    enroll.register_device(bystander, "linux")
    keys = [unique_name(f"k{i}") for i in range(7)]
    upload_ops(admin, keys[:6])  # keys[6] never uploaded
    space = unique_name("space")
    placed = {(i, 0): key for i, key in enumerate(keys[:6])}
    admin.put_space(space, space_body(placed, fixed_keys=[keys[6]]))

    admin.create_jobs(device, keys[:5])  # keys[5] uploaded but never requested
    leased = agent.work(max_tasks=2, fail=[keys[1]])  # keys[0] measured, keys[1] failed
    assert leased == keys[:2]
    assert agent.client.lease(max_tasks=1)[0].key == keys[2]  # keys[2] stays leased

    coverage = api(live_server, "GET", f"/devices/{device}/coverage", token, params={"space": space}).json()
    assert coverage["count"] == 1
    got = coverage["data"][0]
    # 8 keys: 7 placed + the per-space filler key (never uploaded)
    assert got == {
        "space": space,
        "total": 8,
        "measured": 1,
        "queued": 2,
        "leased": 1,
        "failed": 1,
        "missing": 3,
    }

    admin.create_jobs(device, [keys[1]])  # a retry: queued wins over the old failure
    again = api(live_server, "GET", f"/devices/{device}/coverage", token, params={"space": space}).json()[
        "data"
    ][0]
    assert (again["queued"], again["failed"]) == (3, 0)

    other = api(live_server, "GET", f"/devices/{bystander}/coverage", token, params={"space": space}).json()[
        "data"
    ][0]
    assert (other["total"], other["measured"], other["missing"]) == (8, 0, 8)


def test_coverage_lists_every_space_without_a_filter(live_server, unique_name):
    admin = live_server.client(live_server.admin_token)
    device = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(device, "linux")
    names = sorted(unique_name("space") for _ in range(2))
    for name in names:
        admin.put_space(name, space_body({}))
    response = api(live_server, "GET", f"/devices/{device}/coverage", live_server.admin_token)
    listed = [c["space"] for c in response.json()["data"]]
    assert set(names) <= set(listed) and listed == sorted(listed)


def test_unknown_space_or_device_is_404_naming_it(live_server, unique_name):
    token = live_server.admin_token
    device = unique_name("dev")
    live_server.client(live_server.enroll_token).register_device(device, "linux")
    for path, params, field in [
        (f"/spaces/{unique_name('nope')}", None, "name"),
        (f"/devices/{unique_name('nope')}/coverage", None, "name"),
        (f"/devices/{device}/coverage", {"space": "no-such-space"}, "space"),
    ]:
        response = api(live_server, "GET", path, token, params=params)
        assert (response.status_code, response.json()["field"]) == (404, field), path
