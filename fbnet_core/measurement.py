"""The measurement record: one op measured once on one device, as the agent makes it and the server stores it.

One type for every place a measurement travels: a line of results.jsonl (`device-agent profile`), a line of the
agent's spool, and an item of `POST /agent/results` and `POST /agent/measurements` (whose request models,
profiler_server/schemas.py, validate exactly these fields). `runtime` is the provenance object of
docs/contracts.md. Standard library only: the agent runs where pydantic is not installed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fbnet_core.errors import FormatError

# The server's limit on a failure reason; the agent cuts longer ones.
MAX_ERROR_CHARS = 4000


@dataclass(frozen=True)
class MeasurementRecord:
    """A measurement (`samples_us` and `runtime`) or a failure (`error`) of the op `key`, identified by the
    `result_id` its agent made; `task_id` names the server's task it answers (None for offline results)."""

    result_id: str
    key: str
    onnx_sha256: str
    samples_us: list[float] | None = None
    runtime: dict[str, Any] | None = None
    error: str | None = None
    task_id: int | None = None

    def __post_init__(self) -> None:
        if self.error is None and (self.samples_us is None or self.runtime is None):
            raise ValueError("a result needs samples_us and runtime (or error for a failure)")
        if self.error is not None and self.samples_us is not None:
            raise ValueError("a result has either samples_us or error, not both")

    @classmethod
    def failure(cls, result_id: str, key: str, onnx_sha256: str, reason: str) -> MeasurementRecord:
        """A failure record; the reason is cut to what the server stores, NUL (which it cannot store) escaped."""
        text = reason.replace("\x00", "\\0") or "failed without a message"
        return cls(result_id, key, onnx_sha256, error=text[:MAX_ERROR_CHARS])

    @property
    def is_failure(self) -> bool:
        return self.error is not None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"result_id": self.result_id, "key": self.key, "onnx_sha256": self.onnx_sha256}
        if self.error is not None:
            body["error"] = self.error
        else:
            body["samples_us"] = self.samples_us
            body["runtime"] = self.runtime
        if self.task_id is not None:
            body["task_id"] = self.task_id
        return body

    @classmethod
    def from_json(cls, body: Mapping[str, Any], what: str) -> MeasurementRecord:
        """Decode a record, checking its shape (the server checks every value again); `what` names it in errors."""
        for name in ("result_id", "key", "onnx_sha256"):
            if not isinstance(body.get(name), str):
                raise FormatError(f"{what}: field {name!r} must be a string")
        samples, runtime, error = body.get("samples_us"), body.get("runtime"), body.get("error")
        if error is not None and not isinstance(error, str):
            raise FormatError(f"{what}: field 'error' must be a string")
        if error is None:
            if not isinstance(samples, list) or not samples or not all(_is_positive_number(s) for s in samples):
                raise FormatError(f"{what}: field 'samples_us' must be a non-empty list of positive numbers")
            if not isinstance(runtime, dict):
                raise FormatError(f"{what}: field 'runtime' must be a JSON object")
        task_id = body.get("task_id")
        if task_id is not None and not (isinstance(task_id, int) and not isinstance(task_id, bool)):
            raise FormatError(f"{what}: field 'task_id' must be an integer")
        try:
            return cls(body["result_id"], body["key"], body["onnx_sha256"], samples, runtime, error, task_id)
        except ValueError as exc:
            raise FormatError(f"{what}: {exc}") from exc


def _is_positive_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0
