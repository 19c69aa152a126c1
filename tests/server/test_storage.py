"""The storage interface (profiler_server/storage): the only place that knows which database it runs on, and the
rules of storing measurements giving the same state on every database."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from db.models import Device, LutEntry, Measurement, OnnxModel, Op, Task, TaskStatus
from db.session import make_engine
from profiler_server.errors import Conflict, NotFound
from profiler_server.example_ops import RUNTIME
from profiler_server.schemas import OfflineMeasurement
from profiler_server.services.ingest import IngestLimits, ingest_offline
from profiler_server.storage import make_storage

SERVER = Path(__file__).resolve().parents[2] / "profiler_server"
# The storage's implementations, and the module that chooses one from the engine.
STORAGE_MODULES = {SERVER / "storage" / name for name in ("__init__.py", "sqlite.py", "postgres.py")}
# `dialect.name == ...`, `engine.dialect != ...`: a choice by database.
DIALECT_CHECK = re.compile(r"dialect\.name|\.dialect\s*[!=]=")

LIMITS = IngestLimits(max_samples_per_result=1000, max_results_per_request=1000, unstable_iqr_ratio=0.1)
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
AGENT_CLOCK = datetime(1970, 1, 2, tzinfo=UTC)
OPS = ("op-a", "op-b", "op-c", "op-d")


def test_no_module_outside_the_storage_asks_which_database_it_runs_on() -> None:
    assert DIALECT_CHECK.search('if session.get_bind().dialect.name == "postgresql":')  # the scan can fail
    found = [
        f"{path.relative_to(SERVER.parent)}:{number}: {line.strip()}"
        for path in sorted(SERVER.rglob("*.py"))
        if path not in STORAGE_MODULES
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if DIALECT_CHECK.search(line)
    ]
    assert found == [], "ask profiler_server.storage.Storage instead:\n" + "\n".join(found)


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    yield engine
    engine.dispose()


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _seed(engine: Engine) -> int:
    """A device with a measured op, a LUT entry received later than NOW, tasks in every state; returns its id."""
    with Session(engine) as session:
        before = NOW - timedelta(hours=1)
        for key in OPS:
            session.add(OnnxModel(sha256=_sha(key), size_bytes=1, created_at=before))
            session.add(Op(key=key, spec={}, onnx_sha256=_sha(key), created_at=before))
        for name in ("dev", "other"):
            session.add(Device(name=name, platform="linux", attributes={}, token_sha256=_sha(name),
                               created_at=before, lut_version=0))  # fmt: skip
        session.flush()
        ops = dict(session.execute(select(Op.key, Op.id)).all())
        devices = dict(session.execute(select(Device.name, Device.id)).all())
        dev = devices["dev"]
        for result_id, key, received_at in (
            ("r-old", "op-a", before),
            ("r-later", "op-d", NOW + timedelta(hours=1)),
        ):
            measurement = _measurement(dev, ops[key], result_id, [1.0], received_at)
            session.add(measurement)
            session.flush()
            session.add(
                LutEntry(
                    device_id=dev, op_id=ops[key], measurement_id=measurement.id, received_at=received_at
                )
            )
        for device, key, status, failure in (
            (dev, "op-b", TaskStatus.queued, None),
            (dev, "op-c", TaskStatus.leased, None),
            (dev, "op-c", TaskStatus.failed, "r-failed"),
            (devices["other"], "op-b", TaskStatus.queued, None),
        ):
            session.add(Task(device_id=device, op_id=ops[key], status=status, attempts=0, created_at=before,
                             failure_result_id=failure))  # fmt: skip
        session.commit()
        return dev


def _measurement(
    device_id: int, op_id: int, result_id: str, samples_us: list[float], at: datetime
) -> Measurement:
    return Measurement(
        result_id=result_id, device_id=device_id, op_id=op_id,
        samples_us_f64le=np.asarray(samples_us, dtype="<f8").tobytes(), n=len(samples_us),
        median_us=samples_us[0], p10_us=samples_us[0], p90_us=samples_us[0], mean_us=samples_us[0], std_us=0.0,
        iqr_us=0.0, min_us=samples_us[0], max_us=samples_us[0], cv=0.0, unstable=False, runtime=RUNTIME,
        runtime_name="onnxruntime", runtime_version="1.32.0", measured_at=at, received_at=at,
    )  # fmt: skip


def _offline(result_id: str, key: str, samples_us: list[float], finished_at: datetime | None = None,
             onnx_sha256: str | None = None) -> OfflineMeasurement:  # fmt: skip
    # Without the agent's clock, a measurement is dated by its receipt.
    runtime = {name: value for name, value in RUNTIME.items() if name != "finished_at"}
    if finished_at is not None:
        runtime["finished_at"] = finished_at.isoformat()
    return OfflineMeasurement.model_validate(
        {
            "result_id": result_id,
            "key": key,
            "onnx_sha256": onnx_sha256 or _sha(key),
            "samples_us": samples_us,
            "runtime": runtime,
        }  # fmt: skip
    )


def _ingest(
    engine: Engine, device_id: int, results: list[OfflineMeasurement], now: datetime
) -> tuple[int, int]:
    with Session(engine) as session:
        receipt = ingest_offline(make_storage(engine), session, device_id, results, LIMITS, now)
    return receipt.accepted, receipt.duplicates


def _state(engine: Engine) -> dict[str, Any]:
    with Session(engine) as session:
        key = dict(session.execute(select(Op.id, Op.key)).all())
        device = {d.id: d.name for d in session.scalars(select(Device))}
        measurements = {
            (device[m.device_id], m.result_id): (
                key[m.op_id],
                m.task_id,
                np.frombuffer(m.samples_us_f64le, "<f8").tolist(),
                m.n,
                m.median_us,
                m.runtime["runtime"],
                m.measured_at,
                m.received_at,
            )  # fmt: skip
            for m in session.scalars(select(Measurement))
        }
        result_of = {m.id: m.result_id for m in session.scalars(select(Measurement))}
        lut = {
            (device[e.device_id], key[e.op_id]): (result_of[e.measurement_id], e.received_at)
            for e in session.scalars(select(LutEntry))
        }
        tasks = sorted(
            (device[t.device_id], key[t.op_id], t.status.value, t.finished_at, t.failure_result_id)
            for t in session.scalars(select(Task))
        )
        devices = {d.name: (d.lut_version, d.last_seen_at) for d in session.scalars(select(Device))}
    return {"measurements": measurements, "lut": lut, "tasks": tasks, "devices": devices}


def test_offline_ingest_leaves_the_same_state_on_every_database(engine: Engine) -> None:
    dev = _seed(engine)
    before = NOW - timedelta(hours=1)
    later = NOW + timedelta(hours=1)
    batch = [
        _offline("r1", "op-a", [10.0, 11.0, 12.0]),
        _offline("r-old", "op-a", [99.0]),  # stored before: a duplicate
        _offline("r2", "op-b", [20.0, 22.0], finished_at=AGENT_CLOCK),
        _offline("r1", "op-a", [55.0]),  # a second copy in the request: a duplicate
        _offline("r3", "op-a", [30.0, 31.0, 32.0]),  # the request's last of op-a: the LUT's entry
        _offline("r-failed", "op-c", [5.0]),  # the id of the device's failure report: a duplicate
        _offline("r4", "op-d", [40.0]),  # stored, but the LUT keeps the measurement received later
    ]
    assert _ingest(engine, dev, batch, NOW) == (4, 3)
    runtime = RUNTIME["runtime"]
    expected_measurements = {
        ("dev", "r-old"): ("op-a", None, [1.0], 1, 1.0, runtime, before, before),
        ("dev", "r-later"): ("op-d", None, [1.0], 1, 1.0, runtime, later, later),
        ("dev", "r1"): ("op-a", None, [10.0, 11.0, 12.0], 3, 11.0, runtime, NOW, NOW),
        ("dev", "r2"): ("op-b", None, [20.0, 22.0], 2, 21.0, runtime, AGENT_CLOCK, NOW),
        ("dev", "r3"): ("op-a", None, [30.0, 31.0, 32.0], 3, 31.0, runtime, NOW, NOW),
        ("dev", "r4"): ("op-d", None, [40.0], 1, 40.0, runtime, NOW, NOW),
    }
    expected = {
        "measurements": expected_measurements,
        "lut": {
            ("dev", "op-a"): ("r3", NOW),
            ("dev", "op-b"): ("r2", NOW),
            ("dev", "op-d"): ("r-later", later),
        },
        "tasks": [
            ("dev", "op-b", "done", NOW, None),  # queued: made redundant
            ("dev", "op-c", "failed", None, "r-failed"),
            ("dev", "op-c", "leased", None, None),  # leased: its agent measures it
            ("other", "op-b", "queued", None, None),
        ],
        "devices": {"dev": (1, NOW), "other": (0, None)},
    }
    assert _state(engine) == expected

    # Nothing new: the device was seen, its LUT version stays.
    seen = NOW + timedelta(minutes=1)
    assert _ingest(engine, dev, [_offline("r1", "op-a", [1.0]), _offline("r2", "op-b", [1.0])], seen) == (
        0,
        2,
    )
    expected["devices"]["dev"] = (1, seen)
    assert _state(engine) == expected

    # An unknown key or another model: nothing written, the device not even seen.
    with pytest.raises(NotFound):
        _ingest(engine, dev, [_offline("r5", "op-a", [1.0]), _offline("r6", "no-such-op", [1.0])], later)
    with pytest.raises(Conflict):
        _ingest(engine, dev, [_offline("r7", "op-a", [1.0], onnx_sha256="f" * 64)], later)
    assert _state(engine) == expected
