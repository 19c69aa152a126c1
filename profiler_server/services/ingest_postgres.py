"""Offline measurements stored on PostgreSQL in one autocommit statement: one round trip per batch.

Separate statements cost a round trip each (BEGIN, the op and result_id lookups, the two inserts, the task and
device updates, COMMIT: 8 per batch), and on a busy host the round trips cost more than the database's own work.
Here data-modifying CTEs do all of it, atomically (a single statement is its own transaction):
- `resolved`/`checked`: every key names an op with the claimed model, or nothing is written (`ok` false; the
  caller then looks the ops up to say which result is at fault);
- `stored`: the measurements not stored yet (`ON CONFLICT (device_id, result_id) DO NOTHING`, and no failure report
  of the device has the result_id), inserted in result_id order so concurrent overlapping batches wait instead of
  deadlocking;
- `lut`: per op, the request's last new measurement, unless the LUT holds one received later;
- `queued_done`: queued tasks for the measured ops are done; `touched`: the device was seen, and its LUT version
  moves when a measurement was stored, with the NOTIFY that empties every replica's cached version on commit.

The batch travels as two parameters: the rows as JSON (`json_to_recordset`; psycopg dumped 24 array parameters
element by element in Python, which costs more than PostgreSQL's parsing of the same rows as JSON) and every
row's samples, as float64, in one binary string that each row slices (base64 text inside the JSON would make
PostgreSQL parse far more bytes). Ops are looked up by index, one probe per row: with the ops table's statistics stale
(after an upload of many ops) the planner hashed the whole table instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from itertools import chain
from typing import Any

import numpy as np
import orjson
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql

from db.models import Measurement
from fbnet_core.stats import SampleStats
from profiler_server.schemas import RuntimeInfo
from profiler_server.services.lut_versions_postgres import LUT_CHANGED_CHANNEL

_SAMPLE_BYTES = 8  # float64

# Measurement columns taken from the batch's JSON as they are (the samples are sliced from the binary string).
_VALUE_COLUMNS = (
    "result_id", "n", "median_us", "p10_us", "p90_us", "mean_us", "std_us", "iqr_us", "min_us", "max_us", "cv",
    "unstable", "runtime", "runtime_name", "runtime_version", "execution_provider", "threads", "agent_version",
    "measured_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class OfflineRow:
    """One new offline measurement of the batch, with its statistics."""

    result_id: str
    key: str
    onnx_sha256: str
    samples_us: list[float]
    stats: SampleStats
    runtime: RuntimeInfo
    measured_at: datetime


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    ops_valid: bool  # False: a key is unknown or its model differs; nothing was written
    accepted: int


def store_offline(conn: Connection, device_id: int, rows: list[OfflineRow], now: datetime) -> StoreOutcome:
    """Run the statement on `conn` (autocommit: it commits, NOTIFY included, when it returns)."""
    ops_valid, accepted, _ = conn.exec_driver_sql(statement(), parameters(device_id, rows, now)).one()
    return StoreOutcome(ops_valid=ops_valid, accepted=accepted)


def parameters(device_id: int, rows: list[OfflineRow], now: datetime) -> dict[str, Any]:
    offsets_bytes = np.cumsum([0] + [len(row.samples_us) * _SAMPLE_BYTES for row in rows]).tolist()
    samples = np.asarray(list(chain.from_iterable(row.samples_us for row in rows)), dtype="<f8")
    batch = [_json_row(ordinal, row, offsets_bytes[ordinal]) for ordinal, row in enumerate(rows)]
    return {
        "batch": orjson.dumps(batch).decode(), "samples": samples.tobytes(), "device_id": device_id, "now": now,
        "channel": LUT_CHANGED_CHANNEL,
    }  # fmt: skip


def _json_row(ordinal: int, row: OfflineRow, samples_offset_bytes: int) -> dict[str, Any]:
    stats, runtime = row.stats, row.runtime
    return {
        "ordinal": ordinal, "result_id": row.result_id, "key": row.key, "onnx_sha256": row.onnx_sha256,
        "samples_offset_bytes": samples_offset_bytes,
        "n": stats.n, "median_us": stats.median_us, "p10_us": stats.p10_us, "p90_us": stats.p90_us,
        "mean_us": stats.mean_us, "std_us": stats.std_us, "iqr_us": stats.iqr_us, "min_us": stats.min_us,
        "max_us": stats.max_us, "cv": stats.cv, "unstable": stats.unstable,
        # Serialised by pydantic straight to JSON: no intermediate dict for orjson to walk again.
        "runtime": orjson.Fragment(runtime.model_dump_json()), "runtime_name": runtime.runtime,
        "runtime_version": runtime.runtime_version, "execution_provider": runtime.execution_provider,
        "threads": runtime.threads, "agent_version": runtime.agent_version, "measured_at": row.measured_at,
    }  # fmt: skip


@cache
def statement() -> str:
    dialect = postgresql.dialect()
    types = ", ".join(
        f"{name} {Measurement.__table__.c[name].type.compile(dialect)}" for name in _VALUE_COLUMNS
    )
    values = ", ".join(f"resolved.{name}" for name in _VALUE_COLUMNS)
    return f"""
WITH batch AS (
    SELECT * FROM json_to_recordset(%(batch)s::json)
        AS b(ordinal integer, key text, onnx_sha256 text, samples_offset_bytes integer, {types})
),
resolved AS (
    SELECT batch.*, op.id AS op_id, op.onnx_sha256 AS stored_sha256
    FROM batch LEFT JOIN LATERAL (SELECT id, onnx_sha256 FROM ops WHERE ops.key = batch.key LIMIT 1) AS op ON true
),
checked AS (
    SELECT coalesce(bool_and(op_id IS NOT NULL AND onnx_sha256 = stored_sha256), true) AS ok FROM resolved
),
stored AS (
    INSERT INTO measurements (device_id, op_id, samples_us_f64le, received_at, {", ".join(_VALUE_COLUMNS)})
    SELECT %(device_id)s, resolved.op_id,
        substring(%(samples)b FROM resolved.samples_offset_bytes + 1 FOR {_SAMPLE_BYTES} * resolved.n), %(now)s,
        {values}
    FROM resolved
    WHERE (SELECT ok FROM checked)
      AND NOT EXISTS (
          SELECT 1 FROM tasks WHERE tasks.device_id = %(device_id)s AND tasks.failure_result_id = resolved.result_id
      )
    ORDER BY resolved.result_id
    ON CONFLICT (device_id, result_id) DO NOTHING
    RETURNING id, result_id, op_id
),
latest AS (
    SELECT DISTINCT ON (stored.op_id) stored.op_id, stored.id
    FROM stored JOIN batch ON batch.result_id = stored.result_id
    ORDER BY stored.op_id, batch.ordinal DESC
),
lut AS (
    INSERT INTO lut_entries (device_id, op_id, measurement_id, received_at)
    SELECT %(device_id)s, op_id, id, %(now)s FROM latest ORDER BY op_id
    ON CONFLICT (device_id, op_id) DO UPDATE
        SET measurement_id = excluded.measurement_id, received_at = excluded.received_at
        WHERE lut_entries.received_at <= excluded.received_at
),
queued_done AS (
    UPDATE tasks SET status = 'done', finished_at = %(now)s
    WHERE device_id = %(device_id)s AND status = 'queued' AND op_id IN (SELECT op_id FROM stored)
),
touched AS (
    UPDATE devices
    SET last_seen_at = %(now)s, lut_version = lut_version + (SELECT count(*) > 0 FROM stored)::integer
    WHERE id = %(device_id)s AND (SELECT ok FROM checked)
)
SELECT
    (SELECT ok FROM checked),
    (SELECT count(*) FROM stored),
    CASE WHEN EXISTS (SELECT 1 FROM stored) THEN pg_notify(%(channel)s, %(device_id)s::text) END
"""
