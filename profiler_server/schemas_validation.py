"""Request and response bodies of the search-space and validation endpoints (docs/protocol.md), per direction."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StringConstraints, field_validator

from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import NUM_LAYERS
from profiler_server.schemas import DeviceName, JsonObjectWithNul, Key, ShortText

# The FBNet macro-architecture: 22 searchable layers, 9 candidate blocks each (docs/contracts.md).
SPACE_LAYERS = NUM_LAYERS
SPACE_CANDIDATES = len(CANDIDATES)
MAX_FIXED_KEYS = 16
# Kendall's tau is O(n^2) at ingest; a thousand networks is far more than any validation measures.
MAX_POINTS_PER_RUN = 1000


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refuse it here (422 naming the field) rather than fail at INSERT (500).
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


SpaceName = DeviceName
Label = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_no_nul)]
Name = Annotated[ShortText, AfterValidator(_no_nul)]
LayerKeys = Annotated[list[Key | None], Field(min_length=SPACE_CANDIDATES, max_length=SPACE_CANDIDATES)]
# 1 ns to ~11.6 days: bounded so that every relative error (and the summary) stays a finite float.
MIN_LATENCY_US = 1e-3
MAX_LATENCY_US = 1e12
Microseconds = Annotated[float, Field(ge=MIN_LATENCY_US, le=MAX_LATENCY_US, allow_inf_nan=False)]


class SpacePut(BaseModel):
    """A search space: per layer, the op key of each candidate in `candidates` order; null = identity skip."""

    layers: Annotated[list[LayerKeys], Field(min_length=SPACE_LAYERS, max_length=SPACE_LAYERS)]
    candidates: Annotated[list[Name], Field(min_length=SPACE_CANDIDATES, max_length=SPACE_CANDIDATES)]
    fixed_keys: Annotated[list[Key], Field(max_length=MAX_FIXED_KEYS)] = Field(default_factory=list)
    # Integers past 64 bits would break the JSON column (a 500 schemathesis found); NUL is kept verbatim.
    params: JsonObjectWithNul = Field(default_factory=dict)

    @field_validator("candidates")
    @classmethod
    def _unique_candidates(cls, candidates: list[str]) -> list[str]:
        duplicates = sorted({c for c in candidates if candidates.count(c) > 1})
        if duplicates:
            raise ValueError(f"candidate names must be unique; repeated: {duplicates}")
        return candidates


class SpacePublic(BaseModel):
    name: str
    candidates: list[str]
    layers: list[list[str | None]]
    fixed_keys: list[str]
    params: dict[str, Any]
    # Unique op keys the space needs (layers without identity skips, plus the fixed ops).
    n_keys: int
    created_at: datetime
    updated_at: datetime


class SpacesPublic(BaseModel):
    data: list[SpacePublic]
    count: int


class SpaceCoverage(BaseModel):
    """How much of one space's LUT a device has: every key is in exactly one of the five states."""

    space: str
    total: int
    measured: int
    queued: int
    leased: int
    failed: int
    # Neither measured nor queued nor failed: never requested for this device (or its op was never uploaded).
    missing: int


class DeviceCoverage(BaseModel):
    device: str
    data: list[SpaceCoverage]
    count: int


class ValidationPointIn(BaseModel):
    name: Label
    kind: Name
    key: Key
    predicted_us: Microseconds
    measured_us: Microseconds
    split: Literal["fit", "holdout"] | None = None


class ValidationCreate(BaseModel):
    space: SpaceName | None = None
    label: Label
    points: Annotated[list[ValidationPointIn], Field(min_length=1, max_length=MAX_POINTS_PER_RUN)]
    calibration: JsonObjectWithNul | None = None


class SummaryPublic(BaseModel):
    n: int
    mape_pct: float
    within_5_pct: float
    within_10_pct: float
    kendall_tau: float | None
    mean_signed_error_pct: float


class ValidationPointPublic(BaseModel):
    name: str
    kind: str
    key: str
    predicted_us: float
    measured_us: float
    split: str | None


class ValidationRunPublic(BaseModel):
    id: int
    device: str
    space: str | None
    label: str
    calibration: dict[str, Any] | None
    # "all", and "fit" / "holdout" when the points carry a split.
    summary: dict[str, SummaryPublic]
    created_at: datetime
    points: list[ValidationPointPublic]


class ValidationRunsPublic(BaseModel):
    device: str
    data: list[ValidationRunPublic]
    count: int
