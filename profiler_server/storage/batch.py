"""A batch of new measurements as both storages receive it, and the shape the rules (`storage.rules`) read it in.

Each storage brings the batch to its database its own way (SQLite: a temporary table of this shape; PostgreSQL:
JSON plus one binary string, unpacked in the statement); the rules see the same columns either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Column, Integer, LargeBinary, MetaData, Table, Text

from db.models import Measurement
from fbnet_core.stats import SampleStats
from profiler_server.schemas import RuntimeInfo


@dataclass(frozen=True, slots=True)
class NewMeasurement:
    """One result of a request (its first copy), with its statistics."""

    result_id: str
    key: str
    onnx_sha256: (
        str  # the model it was measured on: the key's op must have it, or nothing of the batch is stored
    )
    task_id: int | None  # None: measured offline, without a task
    samples_us: list[float]
    stats: SampleStats
    runtime: RuntimeInfo
    measured_at: datetime  # aware


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    ops_valid: bool  # False: a key is unknown or its model differs; nothing was written
    accepted: int  # measurements stored (the others were stored before)


# Measurement columns the batch carries as they are stored (the samples travel per storage, see the module doc).
VALUE_COLUMNS = (
    "result_id", "task_id", "n", "median_us", "p10_us", "p90_us", "mean_us", "std_us", "iqr_us", "min_us",
    "max_us", "cv", "unstable", "runtime", "runtime_name", "runtime_version", "execution_provider", "threads",
    "agent_version", "measured_at",
)  # fmt: skip

# `ordinal`: the position in the request, which decides the LUT's entry when a batch measures an op twice.
BATCH = Table(
    "measurement_batch",
    MetaData(),
    Column("ordinal", Integer),
    Column("key", Text),
    Column("onnx_sha256", Text),
    Column("samples_us_f64le", LargeBinary),
    *(Column(name, Measurement.__table__.c[name].type) for name in VALUE_COLUMNS),
    prefixes=["TEMPORARY"],
)
