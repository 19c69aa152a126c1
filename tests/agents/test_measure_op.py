"""measure_op's re-measurement of unstable ops, with a scripted runner (the selection logic, not a runtime)."""

from __future__ import annotations

from device_agents.backends.base import OpInput, RuntimeInfo
from device_agents.system import SensorReadings
from device_agents.timing import Measurement, TimingPolicy


def _measurement(samples_us: list[float]) -> Measurement:
    return Measurement(samples_us, warmup_runs=5, warmup_s=0.01, warmup_settled=True, timed_s=0.1, ci_rel=0.01,
                       stop_reason="ci")


class ScriptedBackend:
    """A backend whose runner returns scripted measurements in turn."""

    name = "scripted"
    model_format = "onnx"

    def __init__(self, measurements: list[Measurement]) -> None:
        self.measurements = measurements
        self.measured = 0

    def prepare(self, op: OpInput) -> ScriptedBackend:
        return self

    def measure(self, policy: TimingPolicy, clock) -> Measurement:
        self.measured += 1
        return self.measurements[self.measured - 1]

    def close(self) -> None:
        return None

    def runtime_info(self) -> RuntimeInfo:
        return RuntimeInfo("scripted", "0", "none", 1, None, None)

    def read_sensors(self) -> SensorReadings:
        return SensorReadings(None, None, None)

    def describe_device(self) -> dict:
        return {}


NOISY = [100.0, 100.0, 130.0, 160.0, 100.0, 170.0, 100.0, 150.0]  # IQR/median well over 10%
STEADY = [100.0, 101.0, 100.5, 99.5, 100.0, 100.2, 99.8, 100.1]


def test_an_unstable_op_is_measured_again_and_the_steadier_result_kept(conv_onnx):
    from device_agents.measure import measure_op

    path, sha256 = conv_onnx
    backend = ScriptedBackend([_measurement(NOISY), _measurement(STEADY)])
    record = measure_op(backend, OpInput("k", path, sha256, {}), TimingPolicy(remeasure_unstable=1))
    assert backend.measured == 2
    assert record.samples_us == STEADY and record.runtime["extra"]["measure_attempts"] == 2


def test_a_stable_op_is_measured_once_and_retries_are_bounded(conv_onnx):
    from device_agents.measure import measure_op

    path, sha256 = conv_onnx
    steady = ScriptedBackend([_measurement(STEADY)])
    assert measure_op(steady, OpInput("k", path, sha256, {}), TimingPolicy()).runtime["extra"]["measure_attempts"] == 1
    noisy = ScriptedBackend([_measurement(NOISY)] * 5)
    record = measure_op(noisy, OpInput("k", path, sha256, {}), TimingPolicy(remeasure_unstable=2))
    assert noisy.measured == 3 and record.samples_us == NOISY  # still unstable: reported as such, not hidden
