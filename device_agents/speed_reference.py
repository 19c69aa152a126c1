"""`--speed-reference`: time every op against a fixed reference model, so a shared machine's speed phases cancel.

On a shared or virtualised host the whole machine runs faster or slower for tens of seconds at a time (other
tenants, the hypervisor): the same network measured a minute apart differs by up to tens of percent, which no
LUT can predict. Here every timed run of an op is followed by a run of a fixed reference model, and each sample
is the op's time scaled by how fast the reference ran right then (`timing.SpeedReference`; each timed run is
preceded by an untimed one, so that it is warm although the reference evicted the op).

The reference must be slowed down by what slows the ops down: on this project's shared VM a whole network of
the search space (FBNet-A, 224x224) tracked the phases (two passes over 33 networks: Kendall tau 0.93-0.95
between them, from 0.78-0.91 uncorrected), while a small cache-resident model (two 32-channel 3x3 convolutions)
made it worse (tau 0.02-0.24) for those 224 px ops. For a 16 px space, FBNet-A's blocks at 16 px are the
reference (same 60 networks measured twice: 0.5 % apart, from 3.1 %). So the user gives the reference, in the
backend's own format (`dnas export --model fbnet_a [space options] [--format pte|tflite]` writes one), and the
backend runs it like an op.

Samples are expressed at the reference's *nominal* speed: the median of one reference run, calibrated once per
host, runtime setting and reference model and kept in the agent's state folder, so that measurements from
different sessions (a LUT today, validation networks tomorrow) share one scale. Provenance records the nominal,
the reference's median during the op and the uncorrected median.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device_agents.backends.base import Backend, InProcessRunner, OpInput, RuntimeInfo
from device_agents.errors import BackendUnavailableError, OpFailedError
from device_agents.system import SensorReadings
from device_agents.timing import Clock, Measurement, SpeedReference, TimingPolicy
from fbnet_core.model_formats import FORMAT_SUFFIX

# The backends whose runners time a model in this process (device_agents/backends/base.py InProcessRunner).
IN_PROCESS_BACKENDS = ("onnxruntime", "executorch", "litert")
CALIBRATION_S = 5.0  # long enough to span a few of the machine's speed phases; a fifth more of warm-up first


def _time_runs(runner: InProcessRunner, clock: Clock) -> Callable[[int], float]:
    def time_runs(repeats: int) -> float:
        start = clock()
        for _ in range(repeats):
            runner.run_once()
        return clock() - start

    return time_runs


def calibrate_nominal_s(
    runner: InProcessRunner, seconds: float, warmup_s: float, clock: Clock = time.perf_counter
) -> float:
    """The median of single reference runs over `seconds` (at least 20 runs), after `warmup_s` of warm-up."""
    deadline = clock() + warmup_s
    while clock() < deadline:
        runner.run_once()
    durations: list[float] = []
    deadline = clock() + seconds
    while clock() < deadline or len(durations) < 20:
        start = clock()
        runner.run_once()
        durations.append(clock() - start)
    return statistics.median(durations)


def calibration_path(state_dir: Path, info: RuntimeInfo, reference_sha256: str) -> Path:
    """One calibration per host, runtime setting and reference model."""
    setting = {
        "host": socket.gethostname(), "runtime": info.runtime, "runtime_version": info.runtime_version,
        "execution_provider": info.execution_provider, "threads": info.threads, "cpu_affinity": info.cpu_affinity,
        "graph_optimization": info.graph_optimization, "reference_sha256": reference_sha256,
    }  # fmt: skip
    precision = info.extra.get("precision", "fp32")
    if precision != "fp32":  # the reference runs quantised too; fp32 keys stay what they were before int8 existed
        setting["precision"] = precision
    digest = hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:16]
    return state_dir / "speed_reference" / f"{digest}.json"


def _load_or_calibrate(
    path: Path, runner: InProcessRunner, info: RuntimeInfo, reference_sha256: str, seconds: float
) -> dict[str, Any]:
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        saved = None
    except (OSError, ValueError) as exc:
        raise BackendUnavailableError(f"cannot read the speed reference's calibration {path}: {exc}") from exc
    if saved is not None:
        nominal = saved.get("nominal_us") if isinstance(saved, dict) else None
        if not isinstance(nominal, int | float) or not nominal > 0 or "calibrated_at" not in saved:
            raise BackendUnavailableError(
                f"{path} is not a speed reference calibration (no positive nominal_us or no calibrated_at); "
                "delete it to calibrate again"
            )
        return saved
    calibration = {
        "nominal_us": round(calibrate_nominal_s(runner, seconds, seconds / 5) * 1e6, 3),
        "calibrated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "reference_sha256": reference_sha256,
        "runtime": info.__dict__,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(calibration, indent=2))
    try:
        # Complete or absent (a crash mid-write leaves no half file), and never replaced: of two agents that
        # calibrated at once, the first one's nominal is the one both use, so their LUT entries share one scale.
        os.link(temporary, path)
    except FileExistsError:
        return _load_or_calibrate(path, runner, info, reference_sha256, seconds)
    finally:
        temporary.unlink()
    return calibration


class _ReferencedRunner:
    def __init__(self, runner: InProcessRunner, reference: SpeedReference) -> None:
        self._runner = runner
        self._reference = reference

    def measure(self, policy: TimingPolicy, clock: Clock = time.perf_counter) -> Measurement:
        return self._runner.measure(policy, clock, reference=self._reference)

    def close(self) -> None:
        self._runner.close()


class SpeedReferencedBackend:
    """A backend whose every measurement is paired with the speed reference (same runtime, same settings)."""

    def __init__(
        self, backend: Backend, reference: Path, state_dir: Path, calibration_s: float = CALIBRATION_S
    ) -> None:
        if backend.name not in IN_PROCESS_BACKENDS:
            raise BackendUnavailableError(
                f"--speed-reference needs a backend that runs the reference in its own process "
                f"({', '.join(IN_PROCESS_BACKENDS)}); the {backend.name} backend cannot run it"
            )
        suffix = FORMAT_SUFFIX[backend.model_format]
        if reference.suffix != suffix:
            raise BackendUnavailableError(
                f"--speed-reference: the {backend.name} backend runs {suffix} files, not {reference.name} "
                f"(`dnas export --model fbnet_a --format {backend.model_format} -o fbnet_a{suffix}` writes one)"
            )
        try:
            self._sha256 = hashlib.sha256(reference.read_bytes()).hexdigest()
        except OSError as exc:
            raise BackendUnavailableError(f"--speed-reference: cannot read {reference}: {exc}") from exc
        self._backend = backend
        self.name = backend.name
        self.model_format = backend.model_format
        # The reference runs in the backend's own runtime and format: it then slows down with what slows the ops.
        as_op = (
            OpInput("speed-reference", reference, self._sha256, {})
            if backend.model_format == "onnx"
            else OpInput("speed-reference", None, self._sha256, {}, model_path=reference, model_sha256=self._sha256)
        )
        try:
            runner = backend.prepare(as_op)
        except OpFailedError as exc:
            raise BackendUnavailableError(f"--speed-reference: {exc}") from exc
        assert isinstance(runner, InProcessRunner)  # the in-process backends' runners are
        self._path = calibration_path(state_dir, backend.runtime_info(), self._sha256)
        self._calibration = _load_or_calibrate(
            self._path, runner, backend.runtime_info(), self._sha256, calibration_s
        )
        self._reference = SpeedReference(
            time_runs=_time_runs(runner, time.perf_counter), nominal_s=self._calibration["nominal_us"] / 1e6
        )

    def runtime_info(self) -> RuntimeInfo:
        info = self._backend.runtime_info()
        reference = {
            "sha256": self._sha256,
            "nominal_us": self._calibration["nominal_us"],
            "calibrated_at": self._calibration["calibrated_at"],
            "calibration_file": self._path.name,
        }
        return RuntimeInfo(**{**info.__dict__, "extra": {**info.extra, "speed_reference": reference}})

    def prepare(self, op: OpInput) -> _ReferencedRunner:
        runner = self._backend.prepare(op)
        assert isinstance(runner, InProcessRunner)
        return _ReferencedRunner(runner, self._reference)

    def read_sensors(self) -> SensorReadings:
        return self._backend.read_sensors()

    def describe_device(self) -> dict[str, Any]:
        return self._backend.describe_device()
