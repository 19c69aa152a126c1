"""Many devices, several agents each, leasing and posting at once: no task twice, no result lost, no result in
another device's LUT. (One device's agents racing for leases alone: tests/server/test_leasing.py.)"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from tests.reliability.helpers import Collector, measurements_by_task
from tests.server.helpers import Setup, task_result

DEVICES = 4
AGENTS_PER_DEVICE = 3
TASKS_PER_DEVICE = 15


def test_many_devices_and_agents_at_once_lease_each_task_once_and_lose_nothing(live_server, unique_name):
    setups = [Setup(live_server, unique_name, n_ops=TASKS_PER_DEVICE) for _ in range(DEVICES)]
    seen = Collector()

    def agent(setup: Setup) -> None:
        client = live_server.client(setup.device_token)
        while tasks := client.lease(max_tasks=2):
            seen.add(setup.device_name, *(t.task_id for t in tasks))
            receipt = client.post_results([task_result(t.task_id, t.key, [10.0, 11.0, 12.0]) for t in tasks])
            assert (receipt.accepted, receipt.duplicates) == (len(tasks), 0)

    workers = [s for s in setups for _ in range(AGENTS_PER_DEVICE)]
    with ThreadPoolExecutor(len(workers)) as pool:
        list(pool.map(agent, workers))

    all_leased = [task_id for s in setups for task_id in seen.get(s.device_name)]
    assert len(all_leased) == len(set(all_leased)) == DEVICES * TASKS_PER_DEVICE, "a task was leased twice"
    for s in setups:
        per_task = measurements_by_task(live_server.database_url, s.device_name)
        assert set(per_task) == set(seen.get(s.device_name)) and set(per_task.values()) == {1}
        assert sorted(s.admin.get_lut(s.device_name).entries) == sorted(s.keys)  # its own keys, all of them
        coverage = s.admin.get_device(s.device_name).coverage
        assert (coverage.measured, coverage.queued, coverage.leased) == (TASKS_PER_DEVICE, 0, 0)
