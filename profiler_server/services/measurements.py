"""One stored measurement with its raw samples, for audits and re-analysis ("how was this LUT entry made?")."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Device, Measurement, Op
from profiler_server.errors import Conflict, NotFound
from profiler_server.schemas import MeasurementPublic


def get_measurement(session: Session, result_id: str, device_name: str | None) -> MeasurementPublic:
    """The measurement `result_id` of `device_name`, or of the one device that posted that id."""
    query = (
        select(Measurement, Device.name, Op.key)
        .join(Device, Device.id == Measurement.device_id)
        .join(Op, Op.id == Measurement.op_id)
        .where(Measurement.result_id == result_id)
    )
    if device_name is not None:
        query = query.where(Device.name == device_name)
    rows = session.execute(query.limit(2)).all()
    if not rows:
        where = f" of device {device_name!r}" if device_name is not None else ""
        raise NotFound(f"unknown result_id {result_id!r}{where}", field="result_id")
    if len(rows) > 1:  # result ids are unique per device only
        raise Conflict(
            f"several devices posted result_id {result_id!r}: name one with ?device=", field="device"
        )
    m, device_name, key = rows[0]
    return MeasurementPublic(
        result_id=m.result_id,
        device=device_name,
        key=key,
        task_id=m.task_id,
        samples_us=np.frombuffer(m.samples_us_f64le, dtype="<f8").tolist(),
        n=m.n,
        median_us=m.median_us,
        p10_us=m.p10_us,
        p90_us=m.p90_us,
        mean_us=m.mean_us,
        std_us=m.std_us,
        iqr_us=m.iqr_us,
        min_us=m.min_us,
        max_us=m.max_us,
        cv=m.cv,
        unstable=m.unstable,
        runtime=m.runtime,
        measured_at=m.measured_at,
        received_at=m.received_at,
    )
