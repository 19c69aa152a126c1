"""Request and response bodies of the HTTP protocol (see docs/protocol.md), one model per direction."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from fbnet_core.keys import KEY_PATTERN
from fbnet_core.measurement import MAX_ERROR_CHARS
from fbnet_core.model_formats import DEFAULT_RUNTIME, CompiledFormat, ModelFormat

Key = Annotated[str, StringConstraints(pattern=rf"^{KEY_PATTERN.pattern}$")]
DeviceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,100}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ResultId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,100}$")]
# Upper bound (about 11.6 days): keeps sums of samples finite in float64; no op runs that long.
MAX_SAMPLE_US = 1e12
# Strict: a JSON number only (an integer is a number); "1" or true is a 422, not a sample of 1.0.
SampleUs = Annotated[float, Field(gt=0, le=MAX_SAMPLE_US, allow_inf_nan=False, strict=True)]


class FieldMessage(BaseModel):
    field: str
    message: str


class ErrorMessage(BaseModel):
    """Every 4xx and 503 body: `detail` for a person, `field` naming the input at fault (null when none)."""

    detail: str
    field: str | None
    # 422 only: every field at fault, the first of which `detail` describes.
    errors: list[FieldMessage] | None = None


def _no_nul(text: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here, naming the field, rather than failing at INSERT time.
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def _representable_in_utc(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-14:00 is a valid ISO 8601 time past the last one Python (and the database) can hold in UTC.
    try:
        value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("timestamp out of range: it must lie between years 1 and 9999 in UTC") from exc
    return value


# An agent's timestamp: provenance only (the server's receive time orders measurements), with a timezone (a naive
# one is ambiguous), representable in UTC.
AgentTimestamp = Annotated[AwareDatetime, AfterValidator(_representable_in_utc)]


# Integers the database stores: 32-bit columns (threads) and 64-bit ids.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=100), AfterValidator(_no_nul)]
TaskId = Annotated[int, Field(ge=1, le=INT32_MAX)]
Count = Annotated[int, Field(ge=0, le=INT32_MAX)]


def _storable_json(value: Any, path: str = "", allow_nul: bool = False) -> Any:
    """Free-form JSON (specs, attributes, runtime extras) as the database can store it: 64-bit integers, no NUL."""
    if isinstance(value, dict):
        for key, item in value.items():
            _storable_json(key, path, allow_nul)
            _storable_json(item, f"{path}.{key}" if path else str(key), allow_nul)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _storable_json(item, f"{path}[{index}]", allow_nul)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int) and not -(2**63) <= value <= INT64_MAX:
        raise ValueError(f"{path or 'value'}: integer outside the 64-bit range")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'}: NaN and infinities are not JSON")
    elif isinstance(value, str) and "\x00" in value and not allow_nul:
        raise ValueError(f"{path or 'value'}: must not contain NUL characters")
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]
# Free JSON that keeps NUL verbatim (a `json` column stores the \u0000 escape); integers still within 64 bits.
JsonObjectWithNul = Annotated[
    dict[str, Any], AfterValidator(lambda value: _storable_json(value, allow_nul=True))
]


class DeviceRegister(BaseModel):
    name: DeviceName
    platform: ShortText
    attributes: JsonObject = Field(default_factory=dict)
    # What times the ops, and the model format it loads (default: the runtime's own, fbnet_core.model_formats).
    runtime: ShortText = DEFAULT_RUNTIME
    format: ModelFormat | None = None


class DeviceRegistered(BaseModel):
    name: str
    token: str


class Coverage(BaseModel):
    measured: int
    queued: int
    leased: int
    failed: int


class DevicePublic(BaseModel):
    name: str
    platform: str
    runtime: str
    format: str
    attributes: dict[str, Any]
    created_at: datetime
    last_seen_at: datetime | None
    lut_version: int
    coverage: Coverage


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class OpUpload(BaseModel):
    key: Key
    spec: JsonObject
    onnx_b64: str = Field(min_length=1)
    # The op compiled for other runtimes, from the same spec: {format: base64 of the file}; an existing op's key
    # may be uploaded again to add formats.
    artifacts: dict[CompiledFormat, str] = Field(default_factory=dict)


class OpsUpload(BaseModel):
    ops: list[OpUpload] = Field(min_length=1)


class OpsReceipt(BaseModel):
    created: list[str]
    existing: list[str]
    # Files of other formats stored by this upload (new ops' and existing ops' alike).
    artifacts_added: int = 0


class OpPublic(BaseModel):
    key: str
    spec: dict[str, Any]
    onnx_sha256: str
    size_bytes: int
    created_at: datetime
    # {format: sha256} of every file the server has for this op (the ONNX one included).
    formats: dict[str, str]
    # `profiler-server gc` removed the model file: the op's model answers 410 until the op is uploaded again.
    model_removed: bool


class JobsCreate(BaseModel):
    device: DeviceName
    keys: list[Key] = Field(min_length=1)
    # Queue keys that already have a measurement too (e.g. after a runtime upgrade).
    remeasure: bool = False


class JobsReceipt(BaseModel):
    device: str
    queued: int
    already_measured: int
    already_queued: int


class LeaseRequest(BaseModel):
    max_tasks: int = Field(default=1, ge=1, le=INT32_MAX)


class LeasedTask(BaseModel):
    task_id: int
    key: str
    spec: dict[str, Any]
    onnx_sha256: str
    # The device's model format, and the sha256 of the op's file in it (GET /ops/{key}/models/{format}).
    format: str
    model_sha256: str | None
    attempt: int
    lease_expires_at: datetime


class LeaseResponse(BaseModel):
    tasks: list[LeasedTask]
    lease_seconds: float


class LeaseRelease(BaseModel):
    """Leased tasks an agent gives back unmeasured (it is shutting down)."""

    task_ids: list[TaskId] = Field(min_length=1)


class ReleaseReceipt(BaseModel):
    released: int


class RuntimeInfo(BaseModel):
    """Provenance of a measurement (docs/contracts.md); unknown fields are kept as sent."""

    model_config = ConfigDict(extra="allow")

    runtime: ShortText
    runtime_version: ShortText
    execution_provider: ShortText | None = None
    threads: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    cpu_affinity: list[Count] | None = None
    graph_optimization: ShortText | None = None
    agent_version: ShortText | None = None
    warmup_runs: Count | None = None
    warmup_s: Annotated[float, Field(ge=0, allow_inf_nan=False)] | None = None
    timed_runs: Annotated[int, Field(ge=1, le=INT32_MAX)] | None = None
    temperatures_c: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = None
    cpu_freq_mhz: dict[str, Annotated[float, Field(allow_inf_nan=False)]] | None = None
    started_at: AgentTimestamp | None = None
    finished_at: AgentTimestamp | None = None
    extra: JsonObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _unknown_fields_storable(self) -> RuntimeInfo:
        _storable_json(self.model_extra or {})
        return self


class TaskResult(BaseModel):
    """A result for a leased task (a `fbnet_core.measurement.MeasurementRecord` with its task_id): samples and
    runtime, or `error` for a failure."""

    task_id: TaskId
    result_id: ResultId
    key: Key | None = None
    onnx_sha256: Sha256 | None = None
    samples_us: list[SampleUs] | None = Field(default=None, min_length=1)
    runtime: RuntimeInfo | None = None
    error: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_ERROR_CHARS), AfterValidator(_no_nul)] | None
    ) = None

    @model_validator(mode="after")
    def _success_or_failure(self) -> TaskResult:
        if self.error is None and (self.samples_us is None or self.runtime is None):
            raise ValueError("a result needs samples_us and runtime (or error for a failure)")
        if self.error is not None and self.samples_us is not None:
            raise ValueError("a result has either samples_us or error, not both")
        return self


class ResultsPost(BaseModel):
    results: list[TaskResult] = Field(min_length=1)


class OfflineMeasurement(BaseModel):
    """A measurement made without a task (`device-agent profile`, uploaded later): a successful
    `fbnet_core.measurement.MeasurementRecord`."""

    result_id: ResultId
    key: Key
    onnx_sha256: Sha256
    samples_us: list[SampleUs] = Field(min_length=1)
    runtime: RuntimeInfo


class MeasurementsPost(BaseModel):
    results: list[OfflineMeasurement] = Field(min_length=1)


class MeasurementPublic(BaseModel):
    result_id: str
    device: str
    key: str
    task_id: int | None
    samples_us: list[float]
    n: int
    median_us: float
    p10_us: float
    p90_us: float
    mean_us: float
    std_us: float
    iqr_us: float
    min_us: float
    max_us: float
    cv: float
    unstable: bool
    runtime: dict[str, Any]
    measured_at: datetime
    received_at: datetime


class ResultsReceipt(BaseModel):
    accepted: int
    duplicates: int
    failures: int


class Health(BaseModel):
    status: str
    database: str
    version: str
