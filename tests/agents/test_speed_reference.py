"""`--speed-reference`: every timed run paired with a reference run, the sample scaled to the reference's nominal
speed. The pairing is checked on a fake clock (a machine that slows down midway); the backend wrapper with real
onnxruntime sessions on real ONNX files (calibration kept and reused, provenance, refusals)."""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

import pytest

from device_agents.backends import BackendOptions, load_backend
from device_agents.backends.base import OpInput
from device_agents.errors import BackendUnavailableError
from device_agents.measure import measure_op
from device_agents.speed_reference import SpeedReferencedBackend
from device_agents.timing import SpeedReference, TimingPolicy, measure
from tests.agents.helpers import write_conv_onnx
from tests.agents.test_phone_runtimes import DATA, FAST, KEY, compiled_op
from tests.agents.test_timing import FakeClock

OP_S = 2e-3
REFERENCE_S = 1e-3  # one reference run at full speed


class PhasedMachine:
    """A fake machine whose speed halves after `slow_after_s`: the op and the reference both take twice as long."""

    def __init__(self, clock: FakeClock, slow_after_s: float, reference_s: float = REFERENCE_S) -> None:
        self.clock = clock
        self.slow_after_s = slow_after_s
        self.reference_s = reference_s
        self.reference_calls: list[int] = []
        self.op_runs = 0

    def _factor(self) -> float:
        return 2.0 if self.clock.now_s >= self.slow_after_s else 1.0

    def run_op(self) -> float:
        self.op_runs += 1
        duration = OP_S * self._factor()
        self.clock.now_s += duration
        return duration

    def run_reference(self, repeats: int) -> float:
        self.reference_calls.append(repeats)
        duration = self.reference_s * self._factor() * repeats
        self.clock.now_s += duration
        return duration


POLICY = TimingPolicy(
    warmup_min_runs=5, warmup_min_s=0.0, warmup_max_s=0.05, min_runs=40, min_s=0.5, max_s=1.0
)


def test_a_slow_phase_moves_the_raw_times_but_not_the_referenced_samples():
    clock = FakeClock()
    machine = PhasedMachine(clock, slow_after_s=0.15)  # early in the timed phase (0.05-0.55 s)
    reference = SpeedReference(time_runs=machine.run_reference, nominal_s=REFERENCE_S)
    result = measure(machine.run_op, POLICY, clock, clock.sleep, reference=reference)
    off = [sample for sample in result.samples_us if sample != pytest.approx(OP_S * 1e6)]
    assert len(off) <= 1  # only the pair that straddles the change: op at full speed, reference at half
    assert statistics.median(result.samples_us) == pytest.approx(OP_S * 1e6)
    assert result.speed is not None
    assert result.speed.repeats == 2  # the reference is repeated to last about as long as the op
    assert result.speed.nominal_us == pytest.approx(REFERENCE_S * 1e6)
    # Most raw op times were slowed down: the uncorrected median says so, the corrected one does not.
    assert result.speed.uncorrected_median_us == pytest.approx(2 * OP_S * 1e6)
    assert result.speed.reference_median_us == pytest.approx(2 * REFERENCE_S * 1e6)


def test_each_timed_run_follows_an_untimed_one_since_the_reference_evicted_the_op():
    clock = FakeClock()
    machine = PhasedMachine(clock, slow_after_s=1e9)
    reference = SpeedReference(time_runs=machine.run_reference, nominal_s=REFERENCE_S)
    result = measure(machine.run_op, POLICY, clock, clock.sleep, reference=reference)
    assert machine.op_runs == result.warmup_runs + 2 * result.timed_runs


def test_without_a_reference_the_slow_phase_is_in_the_samples():
    clock = FakeClock()
    machine = PhasedMachine(clock, slow_after_s=0.4)
    result = measure(machine.run_op, POLICY, clock, clock.sleep)
    assert result.speed is None
    assert max(result.samples_us) == pytest.approx(2 * OP_S * 1e6)
    assert min(result.samples_us) == pytest.approx(OP_S * 1e6)


def test_the_nominal_speed_sets_the_scale_of_the_samples():
    clock = FakeClock()
    machine = PhasedMachine(clock, slow_after_s=1e9)  # never slows down
    # Calibrated when the machine was twice as fast as now: every sample is expressed at that speed.
    reference = SpeedReference(time_runs=machine.run_reference, nominal_s=REFERENCE_S / 2)
    result = measure(machine.run_op, POLICY, clock, clock.sleep, reference=reference)
    assert statistics.median(result.samples_us) == pytest.approx(OP_S / 2 * 1e6)


def test_reference_repeats_are_capped():
    clock = FakeClock()
    machine = PhasedMachine(clock, slow_after_s=1e9, reference_s=OP_S / 100)
    reference = SpeedReference(time_runs=machine.run_reference, nominal_s=OP_S / 100, max_repeats=3)
    # A reference 100x shorter than the op would be repeated 200 times; the cap holds it at 3.
    result = measure(machine.run_op, POLICY, clock, clock.sleep, reference=reference)
    assert result.speed is not None and result.speed.repeats == 3
    assert set(machine.reference_calls[4::2]) == {1} and set(machine.reference_calls[5::2]) == {3}


class EvictingMachine:
    """A fake machine on which the op and the reference evict each other: the first run of either after the
    other is `cold_factor` times as slow. The machine's speed never changes, so every sample must be the op's
    warm time."""

    def __init__(self, clock: FakeClock, cold_factor: float) -> None:
        self.clock = clock
        self.cold_factor = cold_factor
        self.last = "op"

    def _runs(self, who: str, one_run_s: float, repeats: int) -> float:
        duration = one_run_s * (repeats - 1 + (self.cold_factor if self.last != who else 1.0))
        self.last = who
        self.clock.now_s += duration
        return duration

    def run_op(self) -> float:
        return self._runs("op", OP_S, 1)

    def run_reference(self, repeats: int) -> float:
        return self._runs("reference", REFERENCE_S, repeats)


def test_the_op_and_the_reference_are_both_timed_warm():
    clock = FakeClock()
    machine = EvictingMachine(clock, cold_factor=1.5)
    reference = SpeedReference(time_runs=machine.run_reference, nominal_s=REFERENCE_S)
    result = measure(machine.run_op, POLICY, clock, clock.sleep, reference=reference)
    assert result.speed is not None and result.speed.repeats == 2
    # A cold reference run among the timed ones would make every sample 1.25x too fast.
    assert result.samples_us == pytest.approx([OP_S * 1e6] * result.timed_runs)


@pytest.fixture
def onnxruntime_backend():
    return load_backend("onnxruntime", BackendOptions(threads=1))


@pytest.fixture
def reference_onnx(tmp_path: Path) -> Path:
    path = tmp_path / "reference.onnx"
    write_conv_onnx(path, channels=16, size=32, seed=7)
    return path


def test_the_calibration_is_kept_and_reused_by_the_next_session(
    onnxruntime_backend, reference_onnx, tmp_path
):
    state = tmp_path / "state"
    first = SpeedReferencedBackend(onnxruntime_backend, reference_onnx, state, calibration_s=0.2)
    files = list((state / "speed_reference").glob("*.json"))
    assert len(files) == 1
    assert list((state / "speed_reference").glob("*.tmp")) == []
    saved = json.loads(files[0].read_text())
    assert saved["nominal_us"] > 0
    # A second session (another agent start) must not calibrate again: the scale would move between sessions.
    second = SpeedReferencedBackend(onnxruntime_backend, reference_onnx, state, calibration_s=0.2)
    assert second.runtime_info().extra["speed_reference"] == first.runtime_info().extra["speed_reference"]
    assert first.runtime_info().extra["speed_reference"]["nominal_us"] == saved["nominal_us"]


def test_another_reference_model_gets_its_own_calibration(onnxruntime_backend, reference_onnx, tmp_path):
    state = tmp_path / "state"
    other = tmp_path / "other.onnx"
    write_conv_onnx(other, channels=8, size=16, seed=8)
    SpeedReferencedBackend(onnxruntime_backend, reference_onnx, state, calibration_s=0.1)
    SpeedReferencedBackend(onnxruntime_backend, other, state, calibration_s=0.1)
    assert len(list((state / "speed_reference").glob("*.json"))) == 2


def test_a_measurement_records_what_the_reference_did(
    onnxruntime_backend, reference_onnx, conv_onnx, tmp_path
):
    backend = SpeedReferencedBackend(
        onnxruntime_backend, reference_onnx, tmp_path / "state", calibration_s=0.2
    )
    path, sha256 = conv_onnx
    policy = TimingPolicy(warmup_min_s=0.0, warmup_max_s=0.05, min_runs=10, min_s=0.0, max_s=0.2)
    record = measure_op(backend, OpInput("conv", path, sha256, {}), policy)
    assert not record.is_failure, record
    recorded = record.runtime["extra"]["speed_reference"]
    assert recorded["nominal_us"] == backend.runtime_info().extra["speed_reference"]["nominal_us"]
    assert recorded["repeats"] >= 1
    assert recorded["reference_median_us"] > 0 and recorded["uncorrected_median_us"] > 0
    # Each sample is the op's time at the reference's nominal speed: the median moves by their ratio at most.
    ratio = recorded["nominal_us"] / recorded["reference_median_us"]
    assert statistics.median(record.samples_us) == pytest.approx(
        recorded["uncorrected_median_us"] * ratio, rel=0.5
    )


@pytest.mark.parametrize(("backend_name", "model_format"), [("executorch", "pte"), ("litert", "tflite")])
def test_the_phone_runtimes_run_a_reference_in_their_own_format(backend_name, model_format, tmp_path):
    """ExecuTorch and LiteRT time the reference compiled for them, in their own runtime, as they time the ops."""
    backend = SpeedReferencedBackend(
        load_backend(backend_name, BackendOptions(threads=1)), DATA / f"{KEY}.{model_format}", tmp_path / "state",
        calibration_s=0.2,
    )  # fmt: skip
    record = measure_op(backend, compiled_op(model_format), FAST)
    assert not record.is_failure, record.error
    recorded = record.runtime["extra"]["speed_reference"]
    assert recorded["repeats"] >= 1 and recorded["reference_median_us"] > 0
    assert recorded["sha256"] == hashlib.sha256((DATA / f"{KEY}.{model_format}").read_bytes()).hexdigest()


def test_a_reference_in_another_format_or_for_an_out_of_process_backend_is_refused(reference_onnx, tmp_path):
    executorch = load_backend("executorch", BackendOptions(threads=1))
    with pytest.raises(BackendUnavailableError, match=r"the executorch backend runs \.pte files, not reference\.onnx"):
        SpeedReferencedBackend(executorch, reference_onnx, tmp_path)
    torch_backend = load_backend("torch", BackendOptions(threads=1))
    with pytest.raises(BackendUnavailableError, match="the torch backend cannot run it"):
        SpeedReferencedBackend(torch_backend, reference_onnx, tmp_path)


def test_a_missing_or_broken_reference_is_a_clear_error(onnxruntime_backend, corrupt_onnx, tmp_path):
    with pytest.raises(BackendUnavailableError, match="cannot read"):
        SpeedReferencedBackend(onnxruntime_backend, tmp_path / "missing.onnx", tmp_path)
    with pytest.raises(BackendUnavailableError, match="--speed-reference: onnxruntime could not load"):
        SpeedReferencedBackend(onnxruntime_backend, corrupt_onnx[0], tmp_path)


def test_a_damaged_calibration_file_is_a_clear_error(onnxruntime_backend, reference_onnx, tmp_path):
    state = tmp_path / "state"
    SpeedReferencedBackend(onnxruntime_backend, reference_onnx, state, calibration_s=0.1)
    (calibration,) = (state / "speed_reference").glob("*.json")
    for damaged in ('{"nominal_us": -1, "calibrated_at": "x"}', "[]", "{not json"):
        calibration.write_text(damaged)
        with pytest.raises(BackendUnavailableError, match="calibrat"):
            SpeedReferencedBackend(onnxruntime_backend, reference_onnx, state, calibration_s=0.1)
