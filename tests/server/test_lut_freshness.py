"""A conditional GET of a LUT never answers 304 once the LUT has changed, although 304s are served from memory.

Checked on one server and across two server processes on the same database (PostgreSQL: the writer's NOTIFY
reaches the other process's listener; SQLite: the version is read on every request), also after the listener lost
its connection; and the fast path answers exactly what the route answers (401/403/404/422) for anything but a 304.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pytest

from profiler_server.local_server import LiveServer
from tests.server.helpers import Setup, offline_result

ROUNDS = 10


def _get(
    server: LiveServer, device: str, token: str | None, etag: str | None, query: str = ""
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if etag is not None:
        headers["If-None-Match"] = etag
    return httpx.get(f"{server.url}/lut/{device}{query}", headers=headers, timeout=30)


def _fast_path_count(server: LiveServer) -> int:
    metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    found = re.search(r"^profiler_lut_304_fast_path_total (\d+)$", metrics, re.MULTILINE)
    return int(found.group(1)) if found else 0


def _measure(s: Setup, median_us: float) -> None:
    key = s.keys[0]
    assert s.agent.post_measurements([offline_result(key, s.sha[key], [median_us] * 5)]).accepted == 1


def _assert_fresh_after_each_write(reader: LiveServer, writer: LiveServer, s: Setup, token: str) -> None:
    etag = _get(reader, s.device_name, token, None).headers["etag"]
    for i in range(ROUNDS):
        before = _fast_path_count(reader)
        assert _get(reader, s.device_name, token, etag).status_code == 304
        assert _get(reader, s.device_name, token, etag).status_code == 304
        if i > 0:  # (the first lookups may precede the PostgreSQL listener's first heartbeat)
            assert _fast_path_count(reader) > before, "the 304s did not come from memory"
        _measure(s, 100.0 + i)
        fresh = _get(reader, s.device_name, token, etag)
        assert fresh.status_code == 200, f"round {i}: a stale 304 after a write through {writer.url}"
        assert fresh.headers["etag"] != etag and fresh.json()["entries"][s.keys[0]]["median_us"] == 100.0 + i
        etag = fresh.headers["etag"]


def _start_replica(primary: LiveServer, tmp_path) -> LiveServer:
    """A second server process on the primary's database (another replica)."""
    server = LiveServer(primary.backend, primary.database_url, tmp_path)
    server.admin_token, server.enroll_token = primary.admin_token, primary.enroll_token
    server.start()
    return server


@pytest.fixture
def replica(live_server: LiveServer, tmp_path) -> Iterator[LiveServer]:
    server = _start_replica(live_server, tmp_path)
    yield server
    server.close()


def test_a_write_turns_the_next_conditional_get_into_200(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    _measure(s, 50.0)
    for token in (live_server.admin_token, s.device_token):  # admin and (verified, cached) device tokens
        _assert_fresh_after_each_write(live_server, live_server, s, token)


def test_a_write_through_another_server_process_is_seen_at_once(live_server, replica, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    _measure(s, 50.0)
    for token in (live_server.admin_token, s.device_token):
        _assert_fresh_after_each_write(replica, live_server, s, token)


def _await_304_from_memory(server: LiveServer, device: str, token: str, etag: str) -> None:
    """Until the listener is (back) up, 304s come from the route; wait for one served from memory."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        before = _fast_path_count(server)
        assert _get(server, device, token, etag).status_code == 304
        if _fast_path_count(server) > before:
            return
        time.sleep(0.1)
    raise AssertionError("no 304 served from memory within 30 s")


def test_a_lost_listener_connection_never_leaves_a_stale_version(live_server_factory, tmp_path, unique_name):
    # PostgreSQL only: LISTEN/NOTIFY is what it tests (SQLite reads the version on every request).
    from profiler_server.services.lut_versions_postgres import LISTENER_NAME

    primary = live_server_factory("postgresql")
    replica = _start_replica(primary, tmp_path)
    try:
        _lose_listeners_between_writes(primary, replica, unique_name, LISTENER_NAME)
    finally:
        replica.close()


def _lose_listeners_between_writes(
    primary: LiveServer, replica: LiveServer, unique_name: Callable[[str], str], listener: str
) -> None:
    s = Setup(primary, unique_name, n_ops=1, queue=False)
    _measure(s, 50.0)
    token = primary.admin_token
    dsn = primary.database_url.replace("postgresql+psycopg://", "postgresql://")
    for i in range(3):
        etag = _get(replica, s.device_name, token, None).headers["etag"]
        _await_304_from_memory(replica, s.device_name, token, etag)
        with psycopg.connect(dsn, autocommit=True) as conn:  # what a database restart does to the listeners
            killed = conn.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s",
                (listener,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1
        _measure(s, 200.0 + i)  # its notification reaches no listener of the replica
        fresh = _get(replica, s.device_name, token, etag)
        assert fresh.status_code == 200 and fresh.json()["entries"][s.keys[0]]["median_us"] == 200.0 + i


def test_conditional_gets_that_are_no_304_get_the_routes_answers(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    _measure(s, 50.0)
    admin = live_server.admin_token
    etag = _get(live_server, s.device_name, admin, None).headers["etag"]
    assert _get(live_server, s.device_name, admin, etag).status_code == 304
    cases = [
        (None, s.device_name, "", 401),
        ("not-a-token-of-this-server", s.device_name, "", 401),
        (live_server.enroll_token, s.device_name, "", 403),
        (admin, "no-such-device", "", 404),
        (admin, s.device_name, "?keys=bad%20key", 422),
        (admin, s.device_name, "?format=xml", 422),
    ]
    for token, device, query, status in cases:
        answer = _get(live_server, device, token, etag, query)
        assert answer.status_code == status, (token is None, device, query, answer.text)
        assert answer.json()["detail"]
    malformed = httpx.get(f"{live_server.url}/lut/{s.device_name}",
                          headers={"Authorization": f"Basic {admin}", "If-None-Match": etag})  # fmt: skip
    assert malformed.status_code == 401
    # Another representation's ETag, or a repeated parameter, is the route's to answer.
    assert _get(live_server, s.device_name, admin, etag, "?format=csv").status_code == 200
    assert _get(live_server, s.device_name, admin, etag, "?format=json&format=json").status_code == 304
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert 'profiler_http_requests_total{method="GET",route="/lut/{device}",status="304"}' in metrics
