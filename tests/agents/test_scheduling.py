"""Real-time scheduling of the measuring process: refused clearly where not allowed, recorded as it is."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from device_agents.errors import BackendUnavailableError
from device_agents.scheduling import current_scheduler, set_realtime_priority

LINUX = hasattr(os, "sched_setscheduler")


@pytest.mark.parametrize("priority", [0, 100, -1])
def test_a_priority_outside_1_to_99_is_refused(priority: int):
    with pytest.raises(BackendUnavailableError, match="1 - 99"):
        set_realtime_priority(priority)


@pytest.mark.skipif(not LINUX, reason="scheduling policies are Linux's")
def test_the_default_policy_is_recorded_as_sched_other():
    assert current_scheduler() == {"policy": "SCHED_OTHER", "priority": 0}


def _in_a_child(code: str) -> subprocess.CompletedProcess[str]:
    # A child process: this test process must keep its normal policy.
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not LINUX, reason="scheduling policies are Linux's")
def test_sched_fifo_is_set_and_recorded_or_refused_with_a_clear_error():
    done = _in_a_child(
        "from device_agents.errors import BackendUnavailableError\n"
        "from device_agents.scheduling import current_scheduler, set_realtime_priority\n"
        "try:\n"
        "    set_realtime_priority(1)\n"
        "except BackendUnavailableError as exc:\n"
        "    print('refused', exc)\n"
        "else:\n"
        "    print(current_scheduler())\n"
    )
    assert done.returncode == 0, done.stderr
    output = done.stdout.strip()
    if output.startswith("refused"):  # no CAP_SYS_NICE here: the message says what is needed
        assert "CAP_SYS_NICE" in output
    else:
        assert output == "{'policy': 'SCHED_FIFO', 'priority': 1}"
