"""Validation runs: whole networks measured on a device vs the LUT's prediction, stored with their summary."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from db.models import Device
from db.models_validation import ValidationPoint, ValidationRun
from fbnet_core.fidelity import summarise_by_split
from profiler_server.schemas_validation import ValidationCreate, ValidationPointPublic, ValidationRunPublic
from profiler_server.services.spaces import space_by_name


def create_run(session: Session, device: Device, body: ValidationCreate, now: datetime) -> int:
    """Store a run and its points; the summary is computed here from the points, never taken from the client."""
    if body.space is not None:
        space_by_name(session, body.space, field="space")
    summary = summarise_by_split(
        [p.predicted_us for p in body.points],
        [p.measured_us for p in body.points],
        [p.split for p in body.points],
    )
    run = ValidationRun(
        device_id=device.id,
        space=body.space,
        label=body.label,
        calibration=body.calibration,
        summary=summary,
        created_at=now,
    )
    session.add(run)
    session.flush()
    session.execute(insert(ValidationPoint), [{"run_id": run.id, **p.model_dump()} for p in body.points])
    session.commit()
    return run.id


def list_runs(
    session: Session,
    device_ids: Sequence[int],
    limit_per_device: int,
    run_id: int | None = None,
    with_points: bool = True,
) -> list[ValidationRunPublic]:
    """The latest runs of the given devices (newest first), with their points; two queries in all."""
    query = (
        select(ValidationRun, Device.name)
        .join(Device, Device.id == ValidationRun.device_id)
        .where(ValidationRun.device_id.in_(device_ids))
        .order_by(ValidationRun.id.desc())
    )
    if run_id is not None:
        query = query.where(ValidationRun.id == run_id)
    if len(device_ids) == 1:
        query = query.limit(limit_per_device)
    taken: dict[int, int] = defaultdict(int)
    runs: list[tuple[ValidationRun, str]] = []
    for run, device_name in session.execute(query):
        if taken[run.device_id] < limit_per_device:
            taken[run.device_id] += 1
            runs.append((run, device_name))
    points: dict[int, list[ValidationPointPublic]] = defaultdict(list)
    if runs and with_points:
        rows = session.scalars(
            select(ValidationPoint)
            .where(ValidationPoint.run_id.in_([run.id for run, _ in runs]))
            .order_by(ValidationPoint.id)
        )
        for p in rows:
            points[p.run_id].append(
                ValidationPointPublic(
                    name=p.name,
                    kind=p.kind,
                    key=p.key,
                    predicted_us=p.predicted_us,
                    measured_us=p.measured_us,
                    split=p.split,
                )
            )
    return [
        ValidationRunPublic(
            id=run.id,
            device=device_name,
            space=run.space,
            label=run.label,
            calibration=run.calibration,
            summary=run.summary,
            created_at=run.created_at,
            points=points[run.id],
        )
        for run, device_name in runs
    ]
