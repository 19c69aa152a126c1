"""The one small interface every backend implements: `prepare(op) -> Runner`, `runner.measure(policy)`.

In-process runtimes (onnxruntime, torch) derive from `InProcessRunner` and only say how to run the op once;
the shared timing engine does the rest. Out-of-process tools (adb + a benchmark binary) time themselves and
implement `measure` directly.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from device_agents.errors import OpFailedError
from device_agents.system import SensorReadings, describe_host, involuntary_switches, read_sensors
from device_agents.timing import (
    Clock,
    Measurement,
    PreemptionCounter,
    SpeedReference,
    TimeOneRun,
    TimingPolicy,
    measure,
    timed_by_clock,
)
from fbnet_core.model_formats import FORMAT_SUFFIX


@dataclass(frozen=True)
class RuntimeInfo:
    """Provenance of a measurement (the `runtime` object of docs/contracts.md, less the per-op fields)."""

    runtime: str
    runtime_version: str
    execution_provider: str
    threads: int | None
    cpu_affinity: list[int] | None
    graph_optimization: str | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OpInput:
    """One op to measure: its key, its ONNX file's sha256 (the op's identity, which results carry), its spec (for
    rebuilding backends) and its file in the backend's format: `onnx_path` for ONNX backends, `model_path` for
    the others (.pte, .tflite; then `onnx_path` may be None: the ONNX file is not downloaded)."""

    key: str
    onnx_path: Path | None
    onnx_sha256: str
    spec: dict[str, Any]
    model_path: Path | None = None
    model_sha256: str | None = None  # of `model_path`'s file

    def file_in(self, model_format: str) -> Path:
        """The op's file in `model_format`; the op fails when it was not given."""
        path = self.onnx_path if model_format == "onnx" else self.model_path
        if path is None:
            raise OpFailedError(f"{self.key}: no {FORMAT_SUFFIX[model_format]} file was given for this op")
        return path


class Runner(Protocol):
    def measure(self, policy: TimingPolicy, clock: Clock = time.perf_counter) -> Measurement: ...

    def close(self) -> None: ...


class Backend(Protocol):
    name: str
    # The file format the backend loads (fbnet_core.model_formats): which file of each op the agent fetches.
    model_format: str

    def runtime_info(self) -> RuntimeInfo: ...

    def prepare(self, op: OpInput) -> Runner: ...

    def read_sensors(self) -> SensorReadings: ...

    def describe_device(self) -> dict[str, Any]: ...


class OnThisHost:
    """For backends that run on this host: the device and its sensors are this host's."""

    def read_sensors(self) -> SensorReadings:
        return read_sensors()

    def describe_device(self) -> dict[str, Any]:
        return describe_host().as_dict()


class InProcessRunner(abc.ABC):
    """A runner whose op runs synchronously in this process: timed by the host clock around `run_once`."""

    @abc.abstractmethod
    def run_once(self) -> None: ...

    def time_one_run(self, clock: Clock) -> TimeOneRun:
        return timed_by_clock(self.run_once, clock)

    def measure(
        self, policy: TimingPolicy, clock: Clock = time.perf_counter, reference: SpeedReference | None = None
    ) -> Measurement:
        """`reference`: pair every timed run with the speed reference (device_agents/speed_reference.py)."""
        return measure(
            self.time_one_run(clock), policy, clock, preempted=self.preemption_counter(), reference=reference
        )

    def preemption_counter(self) -> PreemptionCounter | None:
        """Host-timed runs are discarded when the process was switched out during them."""
        return involuntary_switches

    def close(self) -> None:
        """Release the runtime's resources (sessions, device memory); nothing to release by default."""
        return None
