"""Real-time scheduling of the measuring process: on a shared host, other processes cannot preempt a timed run.

With SCHED_FIFO the agent runs until it blocks, whatever the other processes' priorities. On a host where other
jobs share the measuring CPU, most runs of a long op can be preempted under the default policy (the engine discards
them, then has too few clean runs and keeps them all); under SCHED_FIFO almost none are. The kernel's RT throttling (sched_rt_runtime_us, 95 % by default) still leaves the other processes
a share of the CPU. Linux only; needs root or CAP_SYS_NICE. The policy in force is recorded with every
measurement, however it was set (this option, or `chrt` around the agent).
"""

from __future__ import annotations

import os

from device_agents.errors import BackendUnavailableError

MAX_RT_PRIORITY = 99
_POLICY_NAMES = {
    getattr(os, name): name
    for name in ("SCHED_OTHER", "SCHED_BATCH", "SCHED_IDLE", "SCHED_FIFO", "SCHED_RR")
    if hasattr(os, name)
}


def set_realtime_priority(priority: int) -> None:
    """Run this process (and the threads it starts afterwards) under SCHED_FIFO at `priority` (1 - 99)."""
    if not 1 <= priority <= MAX_RT_PRIORITY:
        raise BackendUnavailableError(f"a real-time priority is 1 - {MAX_RT_PRIORITY}, got {priority}")
    if not hasattr(os, "sched_setscheduler"):
        raise BackendUnavailableError("real-time scheduling is not supported on this OS (Linux only)")
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except PermissionError as exc:
        raise BackendUnavailableError(
            "SCHED_FIFO needs root or CAP_SYS_NICE (or an RLIMIT_RTPRIO that allows it); run without "
            "--realtime-priority"
        ) from exc


def current_scheduler() -> dict[str, str | int] | None:
    """{"policy": "SCHED_FIFO", "priority": 1} of this process; None where the OS cannot say."""
    if not hasattr(os, "sched_getscheduler"):
        return None
    policy = os.sched_getscheduler(0)
    return {"policy": _POLICY_NAMES.get(policy, str(policy)), "priority": os.sched_getparam(0).sched_priority}
