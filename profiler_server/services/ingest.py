"""Ingest measurements: validate against tasks and ops, compute statistics, store once, update the LUT.

Idempotency: every result carries an agent-made `result_id`, unique per device in the database; the insert skips
ids that exist (`ON CONFLICT DO NOTHING`), so a retried or concurrent duplicate post never stores a measurement
twice. A task is measured once: the first measurement to arrive completes it, and a later one for the same task
(an agent whose lease expired, racing the agent that leased the task next) changes nothing.

Order: the server's receive time decides which measurement of an op the LUT serves (the one received last; within
one request, the later one); the agent's timestamps are kept as provenance only, so no agent clock can pin an
entry or keep a new measurement out.

Storing: which results are new, which measurement the LUT serves, which queued tasks become redundant and how the
device's LUT version moves are the rules of `storage.rules`, which the database's storage runs
(`Storage.store_measurements`, `Storage.store_offline`); this module decides what reaches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Measurement, Op, Task, TaskStatus
from fbnet_core.stats import batch_stats
from profiler_server.errors import BadRequest, Conflict, Forbidden, NotFound
from profiler_server.schemas import OfflineMeasurement, ResultsReceipt, RuntimeInfo, TaskResult
from profiler_server.services.jobs import chunks
from profiler_server.storage import Storage
from profiler_server.storage.batch import NewMeasurement, StoreOutcome


@dataclass(frozen=True, slots=True)
class _Sample:
    """A result that may be new, before its statistics."""

    result_id: str
    key: str
    onnx_sha256: str
    task_id: int | None
    samples_us: list[float]
    runtime: RuntimeInfo


@dataclass(frozen=True, slots=True)
class IngestLimits:
    max_samples_per_result: int
    max_results_per_request: int
    unstable_iqr_ratio: float


def _check_counts(n_results: int, samples: list[list[float] | None], limits: IngestLimits) -> None:
    if n_results > limits.max_results_per_request:
        raise BadRequest(
            f"{n_results} results in one request; the limit is {limits.max_results_per_request}",
            field="results",
        )
    for i, values in enumerate(samples):
        if values is not None and len(values) > limits.max_samples_per_result:
            raise BadRequest(
                f"{len(values)} samples; the limit is {limits.max_samples_per_result}",
                field=f"results[{i}].samples_us",
            )


def _resolve_ops(session: Session, keyed: list[tuple[str, str, str | None]]) -> dict[str, tuple[int, str]]:
    """(field, key, claimed sha256) -> {key: (op_id, sha256)}; unknown keys and sha256 mismatches are errors."""
    keys = list(dict.fromkeys(key for _, key, _ in keyed))
    found: dict[str, tuple[int, str]] = {}
    for part in chunks(keys):
        for row in session.execute(select(Op.key, Op.id, Op.onnx_sha256).where(Op.key.in_(part))):
            found[row.key] = (row.id, row.onnx_sha256)
    for field, key, claimed in keyed:
        if key not in found:
            raise NotFound(f"unknown op key {key!r}: the server has no such op", field=f"{field}.key")
        if claimed is not None and claimed != found[key][1]:
            raise Conflict(
                f"onnx_sha256 {claimed} differs from the server's model for {key!r} ({found[key][1]}): "
                "the result was measured on a different file",
                field=f"{field}.onnx_sha256",
            )
    return found


def _new_measurements(samples: list[_Sample], limits: IngestLimits, now: datetime) -> list[NewMeasurement]:
    """The samples with their statistics; measured when the agent's clock says, else now."""
    all_stats = batch_stats([s.samples_us for s in samples], limits.unstable_iqr_ratio)
    return [
        NewMeasurement(s.result_id, s.key, s.onnx_sha256, s.task_id, s.samples_us, stats, s.runtime,
                       s.runtime.finished_at or now)
        for s, stats in zip(samples, all_stats, strict=True)
    ]  # fmt: skip


def _stored(outcome: StoreOutcome) -> int:
    if not outcome.ops_valid:
        raise Conflict("the ops changed during the upload; retry", field="results")
    return outcome.accepted


def _new_result_ids(session: Session, device_id: int, result_ids: list[str]) -> set[str]:
    """The device's ids not stored yet, as a measurement or as a task's failure report (one query)."""
    known = (
        select(Measurement.result_id)
        .where(Measurement.device_id == device_id, Measurement.result_id.in_(result_ids))
        .union_all(
            select(Task.failure_result_id).where(
                Task.device_id == device_id, Task.failure_result_id.in_(result_ids)
            )
        )
    )
    return set(result_ids) - set(session.scalars(known))


def _complete_tasks(session: Session, task_ids: set[int], now: datetime) -> set[int]:
    """Mark the tasks done; returns those not done before. A measurement completes its task whatever happened to
    the lease meanwhile (expired, re-queued, leased again, failed)."""
    if not task_ids:
        return set()
    return set(
        session.scalars(
            update(Task)
            .where(Task.id.in_(task_ids), Task.status != TaskStatus.done)
            .values(status=TaskStatus.done, finished_at=now, lease_expires_at=None, failure_reason=None)
            .returning(Task.id)
        )
    )


def ingest_task_results(
    storage: Storage,
    session: Session,
    device_id: int,
    results: list[TaskResult],
    limits: IngestLimits,
    now: datetime,
) -> ResultsReceipt:
    _check_counts(len(results), [r.samples_us for r in results], limits)
    tasks = {
        row.id: row
        for row in session.execute(
            select(Task.id, Task.device_id, Task.op_id, Task.status).where(
                Task.id.in_({r.task_id for r in results})
            )
        )
    }
    op_keys = dict(
        session.execute(select(Op.id, Op.key).where(Op.id.in_({t.op_id for t in tasks.values()}))).all()
    )
    for i, result in enumerate(results):
        task = tasks.get(result.task_id)
        if task is None:
            raise NotFound(f"unknown task {result.task_id}", field=f"results[{i}].task_id")
        if task.device_id != device_id:
            raise Forbidden(f"task {result.task_id} belongs to another device", field=f"results[{i}].task_id")
        if result.key is not None and result.key != op_keys[task.op_id]:
            raise BadRequest(
                f"key {result.key!r} does not match task {result.task_id} (key {op_keys[task.op_id]!r})",
                field=f"results[{i}].key",
            )
    ops = _resolve_ops(
        session,
        [(f"results[{i}]", op_keys[tasks[r.task_id].op_id], r.onnx_sha256) for i, r in enumerate(results)],
    )

    fresh = _new_result_ids(session, device_id, [r.result_id for r in results])
    measured = {r.task_id for r in results if r.error is None and r.result_id in fresh}
    # Claimed first (PostgreSQL locks the rows: a concurrent request for the same task waits, then finds it done).
    open_tasks = _complete_tasks(session, measured, now)
    samples: list[_Sample] = []
    failures = 0
    for result in results:
        if result.result_id not in fresh:
            continue
        fresh.discard(result.result_id)  # a second copy in the same request is a duplicate too
        task = tasks[result.task_id]
        if result.error is not None:
            failures += 1
            # A failure never overrides a measurement that already completed the task.
            session.execute(
                update(Task)
                .where(Task.id == task.id, Task.status != TaskStatus.done)
                .values(
                    status=TaskStatus.failed,
                    failure_reason=result.error,
                    failure_result_id=result.result_id,
                    finished_at=now,
                    lease_expires_at=None,
                )
            )
            continue
        assert result.samples_us is not None and result.runtime is not None  # guaranteed by TaskResult
        if task.id not in open_tasks:
            continue  # measured already: by an earlier request, or earlier in this one
        open_tasks.discard(task.id)
        key = op_keys[task.op_id]
        samples.append(
            _Sample(result.result_id, key, ops[key][1], task.id, result.samples_us, result.runtime)
        )

    accepted = _stored(
        storage.store_measurements(session, device_id, _new_measurements(samples, limits, now), now)
    )
    session.commit()
    return ResultsReceipt(accepted=accepted, duplicates=len(results) - accepted - failures, failures=failures)


def ingest_offline(
    storage: Storage,
    session: Session,
    device_id: int,
    results: list[OfflineMeasurement],
    limits: IngestLimits,
    now: datetime,
) -> ResultsReceipt:
    """`session` has not started its transaction: the storage stores the batch in one of its own."""
    _check_counts(len(results), [r.samples_us for r in results], limits)
    samples = [
        _Sample(r.result_id, r.key, r.onnx_sha256, None, r.samples_us, r.runtime)
        for r in _first_copies(results)
    ]
    rows = _new_measurements(samples, limits, now)
    outcome = storage.store_offline(session, device_id, rows, now)
    if not outcome.ops_valid:
        # Nothing was written; the lookup raises the 404 or 409 for the first result at fault.
        _resolve_ops(session, [(f"results[{i}]", r.key, r.onnx_sha256) for i, r in enumerate(results)])
        # No fault any more: the missing op was uploaded meanwhile.
        session.rollback()  # the lookup's transaction: the store begins its own
        outcome = storage.store_offline(session, device_id, rows, now)
    accepted = _stored(outcome)
    return ResultsReceipt(accepted=accepted, duplicates=len(results) - accepted, failures=0)


def _first_copies(results: list[OfflineMeasurement]) -> list[OfflineMeasurement]:
    """The results in request order, a second copy of a result_id left out (a duplicate, like a retry)."""
    by_id: dict[str, OfflineMeasurement] = {}
    for result in results:
        by_id.setdefault(result.result_id, result)
    return list(by_id.values())
