"""Measuring without a server (air-gapped phones, labs): ops.jsonl in, results.jsonl out, resumable."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from device_agents.backends.base import Backend, OpInput
from device_agents.jsonl import append_records, read_records
from device_agents.measure import is_failure, measure_op
from device_agents.progress import OpProgress
from device_agents.timing import TimingPolicy

log = logging.getLogger("device_agents")


@dataclass(frozen=True)
class ProfileSummary:
    measured: int
    failed: int
    skipped: int


def measured_keys(results: Path) -> set[str]:
    """Keys with a successful result already in the file (failed ones are tried again)."""
    return {record["key"] for record in read_records(results) if not is_failure(record) and "key" in record}


def profile(ops: list[OpInput], results: Path, backend: Backend, policy: TimingPolicy) -> ProfileSummary:
    done = measured_keys(results)
    todo = [op for op in ops if op.key not in done]
    measured = failed = 0
    # Carried in each record so that `upload` can register the device that measured, not the uploading host.
    device = {**backend.describe_device(), "runtime": backend.runtime_info().__dict__}
    with OpProgress(len(todo), "profile") as progress:
        for op in todo:
            record = measure_op(backend, op, policy)
            if not is_failure(record):
                record["runtime"]["extra"]["device"] = device
            append_records(results, [record])  # fsynced: a crash loses at most the op in flight
            if is_failure(record):
                failed += 1
                log.warning("%s failed: %s", op.key, record["error"].splitlines()[0])
            else:
                measured += 1
            progress.advance(failed=is_failure(record))
    return ProfileSummary(measured=measured, failed=failed, skipped=len(ops) - len(todo))
