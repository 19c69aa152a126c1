"""Ingest measurements: validate against tasks and ops, compute statistics, store once, update the LUT.

Idempotency: every result carries an agent-made `result_id`, unique per device in the database; the insert skips
ids that exist (`ON CONFLICT DO NOTHING`), so a retried or concurrent duplicate post never stores a measurement
twice. A task is measured once: the first measurement to arrive completes it, and a later one for the same task
(an agent whose lease expired, racing the agent that leased the task next) changes nothing.

Order: the server's receive time decides which measurement of an op the LUT serves (the one received last; within
one request, the later one); the agent's timestamps are kept as provenance only, so no agent clock can pin an
entry or keep a new measurement out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import Any

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import Device, LutEntry, Measurement, Op, Task, TaskStatus
from db.session import begin_write
from fbnet_core.stats import SampleStats, batch_stats
from profiler_server.errors import BadRequest, Conflict, Forbidden, NotFound
from profiler_server.schemas import OfflineMeasurement, ResultsReceipt, RuntimeInfo, TaskResult
from profiler_server.services.bulk_rows import insert_rows
from profiler_server.services.ingest_postgres import OfflineRow, store_offline
from profiler_server.services.jobs import chunks
from profiler_server.services.lut_versions import notifying


@dataclass(frozen=True, slots=True)
class _Sample:
    result_id: str
    op_id: int
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


# Column order of `_measurement_row`.
_MEASUREMENT_COLUMNS = (
    "result_id", "device_id", "op_id", "task_id", "samples_us_f64le", "n", "median_us", "p10_us", "p90_us",
    "mean_us", "std_us", "iqr_us", "min_us", "max_us", "cv", "unstable", "runtime", "runtime_name",
    "runtime_version", "execution_provider", "threads", "agent_version", "measured_at", "received_at",
)  # fmt: skip
_SKIP_STORED = "ON CONFLICT (device_id, result_id) DO NOTHING"
_LUT_COLUMNS = ("device_id", "op_id", "measurement_id", "received_at")
# A request that arrived earlier but commits later (PostgreSQL) does not replace what a later one stored.
_KEEP_LATEST = (
    "ON CONFLICT (device_id, op_id) DO UPDATE SET measurement_id = excluded.measurement_id, "
    "received_at = excluded.received_at WHERE lut_entries.received_at <= excluded.received_at"
)


def _measurement_row(device_id: int, sample: _Sample, stats: SampleStats, now: datetime) -> tuple[Any, ...]:
    runtime = sample.runtime
    return (
        sample.result_id, device_id, sample.op_id, sample.task_id,
        np.asarray(sample.samples_us, dtype="<f8").tobytes(), stats.n, stats.median_us, stats.p10_us,
        stats.p90_us, stats.mean_us, stats.std_us, stats.iqr_us, stats.min_us, stats.max_us, stats.cv,
        stats.unstable, runtime.model_dump(mode="json"), runtime.runtime, runtime.runtime_version,
        runtime.execution_provider, runtime.threads, runtime.agent_version, runtime.finished_at or now, now,
    )  # fmt: skip


def _store(
    session: Session, device_id: int, samples: list[_Sample], limits: IngestLimits, now: datetime
) -> int:
    """Insert new measurements, point the LUT at the latest per op; returns how many were new.

    Two statements whatever the batch size. The insert returns exactly the rows it stored: a result_id that a
    concurrent request stored first is skipped by the unique index (PostgreSQL waits for that request's commit).
    """
    if not samples:
        return 0
    all_stats = batch_stats([s.samples_us for s in samples], limits.unstable_iqr_ratio)
    # Sorted by result_id, and LUT rows by op: concurrent requests with overlapping results take the unique-index
    # locks in the same order, so they wait for each other instead of deadlocking.
    rows = [_measurement_row(device_id, s, st, now) for s, st in zip(samples, all_stats, strict=True)]
    rows.sort(key=itemgetter(0))
    conn = session.connection()
    inserted = dict(
        insert_rows(
            conn, Measurement.__table__, _MEASUREMENT_COLUMNS, rows, _SKIP_STORED, ("result_id", "id")
        )
    )
    latest: dict[int, int] = {}  # op_id -> measurement id: the request's last new one
    for sample in samples:
        measurement_id = inserted.get(sample.result_id)
        if measurement_id is not None:
            latest[sample.op_id] = measurement_id
    lut_rows = [(device_id, op_id, mid, now) for op_id, mid in sorted(latest.items())]
    insert_rows(conn, LutEntry.__table__, _LUT_COLUMNS, lut_rows, _KEEP_LATEST)
    return len(inserted)


def _touch_device(session: Session, device_id: int, now: datetime, lut_changed: bool) -> None:
    """The device was seen now; a changed LUT gets a new version, announced to every server replica on commit."""
    touch = update(Device).where(Device.id == device_id).values(last_seen_at=now)
    if lut_changed:
        touch = notifying(touch.values(lut_version=Device.lut_version + 1), session.get_bind().dialect.name)
    session.execute(touch)


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
    session: Session, device_id: int, results: list[TaskResult], limits: IngestLimits, now: datetime
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
    _resolve_ops(
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
        samples.append(_Sample(result.result_id, task.op_id, task.id, result.samples_us, result.runtime))

    accepted = _store(session, device_id, samples, limits, now)
    _touch_device(session, device_id, now, lut_changed=accepted > 0)
    session.commit()
    return ResultsReceipt(accepted=accepted, duplicates=len(results) - accepted - failures, failures=failures)


def ingest_offline(
    session: Session, device_id: int, results: list[OfflineMeasurement], limits: IngestLimits, now: datetime
) -> ResultsReceipt:
    """`session` has not started its transaction: PostgreSQL stores the batch in one autocommit statement, SQLite
    in a write transaction (its statements cost no round trip)."""
    _check_counts(len(results), [r.samples_us for r in results], limits)
    if session.get_bind().dialect.name == "postgresql":
        accepted = _store_offline_postgres(session, device_id, results, limits, now)
    else:
        begin_write(session)
        accepted = _store_offline_in_transaction(session, device_id, results, limits, now)
    return ResultsReceipt(accepted=accepted, duplicates=len(results) - accepted, failures=0)


def _store_offline_postgres(
    session: Session, device_id: int, results: list[OfflineMeasurement], limits: IngestLimits, now: datetime
) -> int:
    first_copies = _first_copies(results)
    all_stats = batch_stats([r.samples_us for r in first_copies], limits.unstable_iqr_ratio)
    utc = _utc_processor(session)
    rows = [
        OfflineRow(r.result_id, r.key, r.onnx_sha256, r.samples_us, stats, r.runtime,
                   utc(r.runtime.finished_at or now))
        for r, stats in zip(first_copies, all_stats, strict=True)
    ]  # fmt: skip
    conn = session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    outcome = store_offline(conn, device_id, rows, now)
    if not outcome.ops_valid:
        # Nothing was written; the lookup raises the 404 or 409 for the first result at fault.
        _resolve_ops(session, [(f"results[{i}]", r.key, r.onnx_sha256) for i, r in enumerate(results)])
        # No fault any more: the missing op was uploaded meanwhile.
        outcome = store_offline(conn, device_id, rows, now)
        if not outcome.ops_valid:
            raise Conflict("the ops changed during the upload; retry", field="results")
    return outcome.accepted


def _first_copies(results: list[OfflineMeasurement]) -> list[OfflineMeasurement]:
    """The results in request order, a second copy of a result_id left out (a duplicate, like a retry)."""
    by_id: dict[str, OfflineMeasurement] = {}
    for result in results:
        by_id.setdefault(result.result_id, result)
    return list(by_id.values())


def _utc_processor(session: Session) -> Callable[[datetime], datetime]:
    """Timestamps as the ORM binds them (aware, UTC; a naive one is refused)."""
    processor = Measurement.__table__.c.measured_at.type.bind_processor(session.get_bind().dialect)
    assert processor is not None  # UTCDateTime always has one
    return processor


def _store_offline_in_transaction(
    session: Session, device_id: int, results: list[OfflineMeasurement], limits: IngestLimits, now: datetime
) -> int:
    ops = _resolve_ops(session, [(f"results[{i}]", r.key, r.onnx_sha256) for i, r in enumerate(results)])
    fresh = _new_result_ids(session, device_id, [r.result_id for r in results])
    samples: list[_Sample] = []
    for result in results:
        if result.result_id in fresh:
            fresh.discard(result.result_id)
            samples.append(
                _Sample(result.result_id, ops[result.key][0], None, result.samples_us, result.runtime)
            )
    accepted = _store(session, device_id, samples, limits, now)
    if samples:
        # The measurement makes queued (not yet leased) work for the same op redundant.
        session.execute(
            update(Task)
            .where(
                Task.device_id == device_id,
                Task.op_id.in_({s.op_id for s in samples}),
                Task.status == TaskStatus.queued,
            )
            .values(status=TaskStatus.done, finished_at=now)
        )
    _touch_device(session, device_id, now, lut_changed=accepted > 0)
    session.commit()
    return accepted
