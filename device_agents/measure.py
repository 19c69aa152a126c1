"""One op, measured end to end: verify the file, prepare, time, and build the result record of the contract."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from device_agents import AGENT_VERSION
from device_agents.backends.base import Backend, OpInput
from device_agents.errors import OpFailedError
from device_agents.manifest import verify_files
from device_agents.scheduling import current_scheduler
from device_agents.timing import Clock, TimingPolicy
from fbnet_core.measurement import MeasurementRecord
from fbnet_core.stats import sample_stats


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def measure_op(
    backend: Backend,
    op: OpInput,
    policy: TimingPolicy,
    clock: Clock = time.perf_counter,
) -> MeasurementRecord:
    """A measurement record (docs/contracts.md) or, when the op cannot be measured, a failure record.

    Never raises for a bad op: the caller reports the failure and goes on to the next one."""
    result_id = str(uuid.uuid4())
    started_at = _utc_now()
    try:
        verify_files(op)
        runner = backend.prepare(op)
        try:
            measurement = runner.measure(policy, clock)
            attempts = 1
            # A burst of interference (a neighbour's job, a thermal step) makes an op unstable; measuring it
            # again and keeping the steadier result keeps one noisy pass out of the LUT.
            stats = sample_stats(measurement.samples_us)
            while attempts <= policy.remeasure_unstable and stats.unstable:
                again = runner.measure(policy, clock)
                attempts += 1
                again_stats = sample_stats(again.samples_us)
                if again_stats.iqr_rel < stats.iqr_rel:
                    measurement, stats = again, again_stats
        finally:
            runner.close()
    except OpFailedError as exc:
        return MeasurementRecord.failure(result_id, op.key, op.onnx_sha256, str(exc))
    except Exception as exc:  # a runtime error mid-timing (e.g. device out of memory) is this op's failure
        return MeasurementRecord.failure(result_id, op.key, op.onnx_sha256, f"{type(exc).__name__}: {exc}")
    sensors = backend.read_sensors()  # after the runs: the state the op ended in (throttled or not)
    info = backend.runtime_info()
    extra = dict(info.extra)
    if measurement.speed is not None:  # the reference's settings (from the backend) and what it did to this op
        extra["speed_reference"] = {**extra.get("speed_reference", {}), **measurement.speed.as_dict()}
    if measurement.overhead is not None:  # what a whole network pays once of this op's time (overhead.py)
        extra["invocation_overhead"] = measurement.overhead
    runtime = {
        "runtime": info.runtime,
        "runtime_version": info.runtime_version,
        "execution_provider": info.execution_provider,
        "threads": info.threads,
        "cpu_affinity": info.cpu_affinity,
        "graph_optimization": info.graph_optimization,
        "agent_version": AGENT_VERSION,
        "warmup_runs": measurement.warmup_runs,
        "warmup_s": round(measurement.warmup_s, 6),
        "timed_runs": measurement.timed_runs,
        "temperatures_c": sensors.temperatures_c,
        "cpu_freq_mhz": sensors.cpu_freq_mhz,
        "started_at": started_at,
        "finished_at": _utc_now(),
        "extra": {
            **extra,
            "warmup_settled": measurement.warmup_settled,
            "stop_reason": measurement.stop_reason,
            "measure_attempts": attempts,
            "median_ci95_rel": round(measurement.ci_rel, 6),
            "preempted_runs_discarded": measurement.preempted_runs_discarded,
            "preempted_runs_kept": measurement.preempted_runs_kept,
            "cpu_governors": sensors.cpu_governors,
            "scheduler": current_scheduler(),  # SCHED_FIFO or not changes the noise a lot on a shared host
            "policy": policy.as_dict(),
        },
    }
    return MeasurementRecord(result_id, op.key, op.onnx_sha256, samples_us=measurement.samples_us, runtime=runtime)
