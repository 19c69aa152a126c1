"""Callers are identified before their body is read, and bodies cost what is read.

A request without a valid token is answered 401 (a token of the wrong kind 403) with its body still unsent: the
tests send the headers of a 50 MiB body and only its first 64 KiB, then wait for the answer. Bodies are charged
to the rate limit as they are read, chunked or not; tokenless requests and refused tokens draw on their address's
bucket.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.reliability.test_auth_matrix import RULES
from tests.server.helpers import Setup

MIB = 1 << 20
DECLARED_BYTES = 50 * MIB
SENT_BYTES = 64 * 1024
# Endpoints that take a body; RULES is checked against the app's routes, so a new one is covered here too.
BODY_ROUTES = sorted((method, path) for method, path in RULES if method in ("POST", "PUT"))


def _answer_with_the_body_unsent(port: int, method: str, path: str, token: str | None) -> tuple[int, bytes]:
    """(status, body) of the answer to a request whose body is declared but mostly never sent."""
    head = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
            f"Content-Length: {DECLARED_BYTES}"]  # fmt: skip
    if token is not None:
        head.append(f"Authorization: Bearer {token}")
    # The timeout only bounds a server that waits for the rest of the body (that is the failure).
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + b"[" * SENT_BYTES)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed without an answer: {received!r}"
            received += chunk
        header, _, body = received.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in header.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk, "connection closed in the middle of the answer"
            body += chunk
    return int(header.split(b" ", 2)[1]), body


def _concrete(path: str, device_name: str) -> str:
    return path.format(name=device_name)


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=[f"{m} {p}" for m, p in BODY_ROUTES])
def test_no_or_an_unknown_token_is_401_before_the_body_is_read(live_server, unique_name, method, path):
    url = _concrete(path, unique_name("dev"))
    for token in (None, "an-unknown-token-of-some-length", "x" * 10_000):
        status, body = _answer_with_the_body_unsent(live_server.port, method, url, token)
        assert status == 401 and b'"field":"Authorization"' in body, (token and token[:20], status, body)


def test_a_token_of_the_wrong_kind_is_403_before_the_body_is_read(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1, queue=False)
    for method, path, token in (
        ("POST", "/ops", s.device_token),
        ("POST", "/jobs", s.device_token),
        ("POST", "/agent/results", live_server.enroll_token),
        ("POST", "/agent/results", live_server.admin_token),
        ("POST", "/devices/register", s.device_token),
    ):
        status, body = _answer_with_the_body_unsent(live_server.port, method, path, token)
        assert status == 403, (method, path, status, body)


def _chunked(mib: int):
    for _ in range(mib):
        yield b" " * MIB


def test_a_chunked_body_costs_its_mebibytes_as_they_are_read(backend, live_server_factory, unique_name):
    # No refill to speak of: 30 units, a request costs 1 plus 1 per MiB read.
    server = live_server_factory(backend, rate_limit_per_s=0.001, rate_limit_burst=30)
    s = Setup(server, unique_name, n_ops=1, queue=False)  # the admin's calls cost nothing
    headers = {"Authorization": f"Bearer {s.device_token}", "Content-Type": "application/json"}

    def post(mib: int) -> httpx.Response:
        return httpx.post(f"{server.url}/agent/results", content=_chunked(mib), headers=headers, timeout=60)

    first = post(20)  # 21 units: read whole, then refused as JSON
    assert first.status_code == 422 and first.request.headers.get("transfer-encoding") == "chunked"
    second = post(20)  # 9 units left: cut off while reading
    assert second.status_code == 429 and int(second.headers["Retry-After"]) >= 1, second.text
    assert second.json()["field"] == "Authorization"


def test_refused_tokens_and_tokenless_requests_draw_on_the_address_bucket(
    backend, live_server_factory, unique_name
):
    server = live_server_factory(backend, anonymous_rate_limit_per_s=0.001, anonymous_rate_limit_burst=6)
    s = Setup(server, unique_name, n_ops=1, queue=False)
    device = {"Authorization": f"Bearer {s.device_token}"}
    assert httpx.get(f"{server.url}/devices", headers=device).status_code == 200  # verified now
    # Invented tokens: 401 each (a lookup), until the address's bucket (6, less the start-up's health checks) is
    # empty; then 429 before any lookup.
    statuses = []
    while 429 not in statuses and len(statuses) < 20:
        invented = {"Authorization": f"Bearer invented-{len(statuses):020d}"}
        statuses.append(httpx.get(f"{server.url}/devices", headers=invented).status_code)
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401} and len(statuses) <= 7, statuses
    refused = httpx.get(f"{server.url}/healthz")  # tokenless: the same bucket
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["field"] == "Authorization"
    # A token the server has verified goes on, and so does the admin's.
    assert httpx.get(f"{server.url}/devices", headers=device).status_code == 200
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    assert httpx.get(f"{server.url}/devices", headers=admin).status_code == 200
