"""Leases: FIFO per device, never one task to two agents, expired leases re-queued then failed."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.server.helpers import Setup, task_result

N_AGENTS = 6
N_TASKS = 40


def _drain(agent) -> list[int]:
    """Lease until the queue is empty; the task ids this agent received."""
    leased: list[int] = []
    while batch := agent.lease(max_tasks=3):
        leased += [t.task_id for t in batch]
    return leased


def test_concurrent_agents_never_receive_the_same_task(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=N_TASKS)
    agents = [live_server.client(s.device_token) for _ in range(N_AGENTS)]
    with ThreadPoolExecutor(N_AGENTS) as pool:
        per_agent = list(pool.map(_drain, agents))
    handed_out = [task_id for leased in per_agent for task_id in leased]
    assert len(handed_out) == N_TASKS
    assert len(set(handed_out)) == N_TASKS, "a task was leased twice"
    assert s.admin.get_device(s.device_name).coverage.leased == N_TASKS


def test_expired_lease_is_requeued_then_failed_after_max_attempts(backend, live_server_factory, unique_name):
    lease_s = 0.5
    server = live_server_factory(backend, lease_seconds=lease_s, max_attempts=2)
    s = Setup(server, unique_name, n_ops=1)
    first = s.agent.lease()
    assert [t.attempt for t in first] == [1]
    assert s.agent.lease() == []  # still leased
    time.sleep(lease_s + 0.2)
    second = s.agent.lease()
    assert [(t.task_id, t.attempt) for t in second] == [(first[0].task_id, 2)]
    time.sleep(lease_s + 0.2)
    assert s.agent.lease() == []  # attempts spent: the task failed instead of coming back
    coverage = s.admin.get_device(s.device_name).coverage
    assert (coverage.failed, coverage.queued, coverage.leased) == (1, 0, 0)


def test_late_result_after_expiry_still_completes_the_task(live_server_factory, unique_name):
    server = live_server_factory(lease_seconds=0.3)
    s = Setup(server, unique_name, n_ops=1)
    task = s.agent.lease()[0]
    time.sleep(0.5)
    assert s.agent.post_results([task_result(task.task_id, task.key, [4.0, 4.1, 4.2])]).accepted == 1
    assert s.agent.lease() == []  # the re-queued task was completed by the late result
    assert s.admin.get_device(s.device_name).coverage.measured == 1


def test_a_late_result_and_the_next_agents_result_store_one_measurement(
    backend, live_server_factory, unique_name
):
    """The agent whose lease expired posts after another agent leased the task again: the first measurement to
    arrive completes the task; the other agent's result for it is answered as a duplicate and not stored."""
    from tests.reliability.helpers import measurements_by_task

    lease_s = 0.5
    server = live_server_factory(backend, lease_seconds=lease_s)
    s = Setup(server, unique_name, n_ops=1)
    late_agent, next_agent = s.agent, server.client(s.device_token)
    task = late_agent.lease()[0]
    time.sleep(lease_s + 0.2)
    again = next_agent.lease()
    assert [(t.task_id, t.attempt) for t in again] == [(task.task_id, 2)]
    late = late_agent.post_results([task_result(task.task_id, task.key, [4.0, 4.1, 4.2])])
    assert (late.accepted, late.duplicates) == (1, 0)
    second = next_agent.post_results([task_result(task.task_id, task.key, [7.0, 7.1, 7.2])])
    assert (second.accepted, second.duplicates) == (0, 1)
    assert measurements_by_task(server.database_url, s.device_name) == {task.task_id: 1}
    assert s.admin.get_lut(s.device_name).entries[task.key]["median_us"] == 4.1


def test_two_replicas_on_one_database_never_lease_a_task_twice(
    backend, live_server_factory, unique_name, tmp_path
):
    from profiler_server.local_server import LiveServer

    first = live_server_factory(backend)
    second = LiveServer(backend, first.database_url, tmp_path)
    second.admin_token, second.enroll_token = first.admin_token, first.enroll_token
    second.start()
    try:
        s = Setup(first, unique_name, n_ops=N_TASKS)
        agents = [server.client(s.device_token) for server in (first, second) for _ in range(N_AGENTS // 2)]

        def drain(agent) -> list[int]:
            leased: list[int] = []
            while batch := agent.lease(max_tasks=2):
                leased += [t.task_id for t in batch]
            return leased

        with ThreadPoolExecutor(len(agents)) as pool:
            handed_out = [task_id for leased in pool.map(drain, agents) for task_id in leased]
        assert sorted(handed_out) == sorted(set(handed_out)) and len(handed_out) == N_TASKS
        served_by_second = [a for a in agents if a.base_url == second.url]
        assert (
            served_by_second
            and second.client(first.admin_token).get_device(s.device_name).coverage.leased == N_TASKS
        )
    finally:
        second.close()


def test_an_expired_lease_counts_as_queued_before_the_next_lease_call(
    backend, live_server_factory, unique_name
):
    server = live_server_factory(backend, lease_seconds=0.5)
    s = Setup(server, unique_name, n_ops=2)
    s.agent.lease(max_tasks=1)
    coverage = s.admin.get_device(s.device_name).coverage
    assert (coverage.queued, coverage.leased) == (1, 1)
    time.sleep(0.8)  # expired; nobody has leased since, so the row still says leased
    coverage = s.admin.get_device(s.device_name).coverage
    assert (coverage.queued, coverage.leased) == (2, 0)


def test_released_tasks_are_queued_again_without_spending_an_attempt(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=3)
    tasks = s.agent.lease(max_tasks=3)
    s.agent.post_results([task_result(tasks[0].task_id, tasks[0].key, [5.0, 5.1, 5.2])])
    # The measured task is no longer leased: only the other two go back.
    assert s.agent.release([t.task_id for t in tasks]) == 2
    coverage = s.admin.get_device(s.device_name).coverage
    assert (coverage.measured, coverage.queued, coverage.leased) == (1, 2, 0)
    again = s.agent.lease(max_tasks=3)
    assert [(t.task_id, t.attempt) for t in again] == [(t.task_id, 1) for t in tasks[1:]]
    assert s.agent.release([again[0].task_id, again[0].task_id]) == 1  # repeated ids: released once


def test_release_refuses_unknown_and_other_devices_tasks(live_server, unique_name):
    s = Setup(live_server, unique_name, n_ops=1)
    other = Setup(live_server, unique_name, n_ops=1)
    mine, theirs = s.agent.lease()[0], other.agent.lease()[0]
    for task_ids, status, field in (
        ([mine.task_id, theirs.task_id], 403, "task_ids[1]"),
        ([2_000_000_000], 404, "task_ids[0]"),
        ([], 422, "task_ids"),
    ):
        answer = httpx.post(f"{live_server.url}/agent/release", json={"task_ids": task_ids},
                            headers={"Authorization": f"Bearer {s.device_token}"})  # fmt: skip
        assert (answer.status_code, answer.json()["field"]) == (status, field)
    assert s.admin.get_device(s.device_name).coverage.leased == 1  # a refused request releases nothing
