"""Measuring without a server (air-gapped phones, labs): ops.jsonl in, results.jsonl out, resumable."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from device_agents.backends.base import Backend, OpInput
from device_agents.measure import measure_op
from device_agents.progress import OpProgress
from device_agents.timing import TimingPolicy
from device_agents.upload import with_manifest
from fbnet_core.formats.results import append_results, read_results

log = logging.getLogger("device_agents")


@dataclass(frozen=True)
class ProfileSummary:
    measured: int
    failed: int
    skipped: int


def measured_keys(results: Path) -> set[str]:
    """Keys with a successful result already in the file (failed ones are tried again)."""
    return {record.key for record in read_results(results) if not record.is_failure}


def profile(
    ops: list[OpInput], results: Path, backend: Backend, policy: TimingPolicy, manifest: Path | None = None
) -> ProfileSummary:
    """Measure the ops not yet in `results`; each record notes `manifest` (the ops.jsonl), for `upload`."""
    done = measured_keys(results)
    todo = [op for op in ops if op.key not in done]
    measured = failed = 0
    # Carried in each record so that `upload` can register the device that measured, not the uploading host.
    device = {**backend.describe_device(), "runtime": backend.runtime_info().__dict__}
    with OpProgress(len(todo), "profile") as progress:
        for op in todo:
            record = measure_op(backend, op, policy)
            if record.runtime is not None:
                record.runtime["extra"]["device"] = device
            if manifest is not None:
                record = with_manifest(record, manifest)
            append_results(results, [record])  # fsynced: a crash loses at most the op in flight
            if record.error is not None:
                failed += 1
                log.warning("%s failed: %s", op.key, record.error.splitlines()[0])
            else:
                measured += 1
            progress.advance(failed=record.is_failure)
    return ProfileSummary(measured=measured, failed=failed, skipped=len(ops) - len(todo))
