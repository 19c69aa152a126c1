"""Per-token rate limits (profiler_server/ratelimit.py): a runaway token gets 429s, the others are untouched,
and a real agent under a tight limit still delivers everything (it backs off on 429 as on 503)."""

from __future__ import annotations

import httpx
import pytest

from device_agents.state import AgentPaths, Credentials, save_credentials
from profiler_server.ratelimit import MAX_BUCKETS, TokenBuckets
from tests.agents.helpers import queue_ops, write_conv_onnx
from tests.reliability.helpers import agent_log, measurements_by_task, start_agent
from tests.server.helpers import Setup


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_bucket_allows_the_burst_then_refills_at_the_rate():
    clock = FakeClock()
    buckets = TokenBuckets(rate_per_s=2.0, burst=3.0, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == 0.5  # one token comes back every 1/2 s
    assert buckets.take("b") == 0.0  # another token has its own bucket
    clock.now = 0.5
    assert buckets.take("a") == 0.0
    clock.now = 100.0
    assert [buckets.take("a") for _ in range(4)] == [
        0.0,
        0.0,
        0.0,
        0.5,
    ]  # refills up to the burst, no further


def test_bucket_charges_big_requests_more_and_never_asks_more_than_a_full_bucket():
    clock = FakeClock()
    buckets = TokenBuckets(rate_per_s=1.0, burst=10.0, clock=clock)
    assert buckets.take("a", cost=8.0) == 0.0
    assert buckets.take("a", cost=8.0) == 6.0
    assert (
        buckets.take("b", cost=1e9) == 0.0
    )  # capped at the burst: a huge body waits for a full bucket at most


def test_buckets_are_bounded_whatever_tokens_callers_invent():
    buckets = TokenBuckets(rate_per_s=1.0, burst=1.0, clock=FakeClock())
    for i in range(MAX_BUCKETS + 500):
        buckets.take(f"invented-{i}")
    assert len(buckets._buckets) == MAX_BUCKETS


def test_a_runaway_token_gets_429_with_retry_after_and_other_tokens_are_untouched(
    live_server_factory, unique_name
):
    # Practically no refill during the test: exactly the burst gets through.
    server = live_server_factory(rate_limit_per_s=0.001, rate_limit_burst=5)
    runaway = Setup(server, unique_name, n_ops=1)
    calm = Setup(server, unique_name, n_ops=1)

    def lease(token: str) -> httpx.Response:
        return httpx.post(f"{server.url}/agent/lease", json={"max_tasks": 1},
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    statuses = [lease(runaway.device_token).status_code for _ in range(12)]
    assert statuses == [200] * 5 + [429] * 7
    refused = lease(runaway.device_token)
    assert refused.json()["field"] == "Authorization" and "rate limit" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    assert lease(calm.device_token).status_code == 200
    admin = {"Authorization": f"Bearer {server.admin_token}"}
    assert {httpx.get(f"{server.url}/devices", headers=admin).status_code for _ in range(12)} == {200}
    assert 'status="429"' in httpx.get(f"{server.url}/metrics").text


def test_a_real_agent_under_a_tight_limit_backs_off_and_delivers_everything(live_server_factory, tmp_path):
    server = live_server_factory(rate_limit_per_s=5, rate_limit_burst=1)
    registered = server.client(server.enroll_token).register_device("limited", "linux-x86_64")
    save_credentials(AgentPaths.for_agent(tmp_path, "limited"),
                     Credentials(server.url, "limited", registered.token))  # fmt: skip
    ops = []
    for i in range(4):
        write_conv_onnx(tmp_path / f"limited{i}.onnx", channels=4 + i, size=8)
        ops.append((f"limited.c{4 + i}", tmp_path / f"limited{i}.onnx"))
    queue_ops(server, "limited", ops)
    # Each op: a lease, a model download, a post, back to back: a bucket of 1 refilled every 0.2 s cannot keep up.
    agent = start_agent(server, "limited", tmp_path, "--once", "--post-batch", "1", "--max-s", "0.01",
                        "--warmup-max-s", "0.01")  # fmt: skip
    stdout, _ = agent.communicate(timeout=120)
    log = agent_log(tmp_path, "limited").read_text()
    assert agent.returncode == 0, log
    assert "failed (429" in log  # it did hit the limit...
    assert "measured 4, failed 0, posted 4, rejected 0" in stdout  # ...and lost nothing to it
    assert set(measurements_by_task(server.database_url, "limited").values()) == {1}


def test_a_body_may_overdraw_the_bucket_by_one_charge_and_the_debt_delays_the_next():
    clock = FakeClock()
    buckets = TokenBuckets(rate_per_s=5.0, burst=1.0, clock=clock)
    assert buckets.take("a") == 0.0  # the request's own 1 empties a bucket of 1...
    assert buckets.overdraw("a", 0.01) == 0.0  # ...and its small body is still admitted
    assert buckets.overdraw("a", 0.01) == pytest.approx(0.01 / 5.0)  # in debt: the next chunk is refused
    assert buckets.take("a") == pytest.approx((1.0 + 0.01) / 5.0)  # the next request waits the debt out too
