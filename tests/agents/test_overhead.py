"""The runtime's per-invocation overhead: measured per tensor shape with the backend's own engine, carried in the
record's provenance, and probed once per shape.

The first test scripts the runtime (a stand-in whose run times are known exactly: a fixed cost per invocation, a
boundary cost per side, a cost per node), so that the arithmetic is checked to the microsecond; the others run real
onnxruntime sessions on real ONNX files."""

from __future__ import annotations

import statistics
from pathlib import Path

import onnx
import pytest

from device_agents.backends.base import OpInput, RuntimeInfo
from device_agents.backends.onnxruntime import OnnxRuntimeBackend
from device_agents.measure import measure_op
from device_agents.overhead import OverheadMeasuringBackend, io_shapes, probe_onnx
from device_agents.system import SensorReadings
from device_agents.timing import Measurement, TimingPolicy
from tests.agents.helpers import write_conv_onnx

FIXED_US = 3.0  # what every invocation costs
BOUNDARY_US_PER_CHANNEL = 0.5  # what each side's conversion costs, per channel of that side's tensor
NODE_US = 7.0  # what one node's work costs


def scripted_us(path: Path, boundary_us_per_channel: float = BOUNDARY_US_PER_CHANNEL) -> float:
    """The stand-in runtime's time for a model: fixed + a boundary at the input and the output + its nodes."""
    graph = onnx.load(str(path)).graph

    def channels(value: onnx.ValueInfoProto) -> int:  # a one-element tensor has no channels to convert
        dims = value.type.tensor_type.shape.dim
        return dims[1].dim_value if len(dims) > 1 else 0

    channels_in, channels_out = channels(graph.input[0]), channels(graph.output[0])
    boundary_us = boundary_us_per_channel * (channels_in + channels_out)
    return FIXED_US + boundary_us + NODE_US * len(graph.node)


class KnownCostRuntime:
    """A backend whose runs take exactly `scripted_us` of the model (the timing itself is not under test)."""

    name = "known-cost"
    model_format = "onnx"

    def __init__(self, boundary_us_per_channel: float = BOUNDARY_US_PER_CHANNEL) -> None:
        self.prepared: list[str] = []
        self.boundary_us_per_channel = boundary_us_per_channel

    def prepare(self, op: OpInput) -> KnownCostRunner:
        self.prepared.append(op.key)
        return KnownCostRunner(scripted_us(op.onnx_path, self.boundary_us_per_channel))

    def runtime_info(self) -> RuntimeInfo:
        return RuntimeInfo("known-cost", "0", "none", 1, None, None)

    def read_sensors(self) -> SensorReadings:
        return SensorReadings(None, None, None)

    def describe_device(self) -> dict:
        return {}


class KnownCostRunner:
    def __init__(self, us: float) -> None:
        self.us = us

    def measure(self, policy: TimingPolicy, clock: object = None) -> Measurement:
        return Measurement([self.us] * 20, 5, 0.01, True, 0.1, 0.0, "ci")

    def close(self) -> None:
        return None


def test_the_overhead_of_an_op_whose_costs_are_known_is_what_a_network_pays_once(tmp_path: Path) -> None:
    path = tmp_path / "conv.onnx"
    sha256 = write_conv_onnx(path, channels=8, size=16)  # Conv + Relu, 8 channels in and out
    runtime = KnownCostRuntime()
    backend = OverheadMeasuringBackend(runtime)
    record = measure_op(backend, OpInput("conv", path, sha256, {}), TimingPolicy())
    op_us = statistics.median(record.samples_us)
    overhead = record.runtime["extra"]["invocation_overhead"]
    side_us = FIXED_US + 2 * BOUNDARY_US_PER_CHANNEL * 8  # a probe of the 8-channel shape: fixed + both sides
    assert overhead["input_us"] == pytest.approx(side_us)
    assert overhead["output_us"] == pytest.approx(side_us)
    assert overhead["us"] == pytest.approx(side_us)
    assert overhead["fixed_us"] == pytest.approx(FIXED_US)  # the invocation alone, no conversion
    # The op less its overhead is its work alone: what it adds to a network.
    assert op_us - overhead["us"] == pytest.approx(2 * NODE_US)
    assert record.samples_us == [op_us] * 20  # raw samples untouched
    assert "2 t(P) - t(P.P)" in overhead["method"]
    assert [probe["shape"] for probe in overhead["probes"]] == [[1, 8, 16, 16], [1, 8, 16, 16], [1]]
    # Each shape probed once (single and double) however many ops use it.
    measure_op(backend, OpInput("conv-again", path, sha256, {}), TimingPolicy())
    assert [key for key in runtime.prepared if key.startswith("overhead-probe")] == [
        "overhead-probe-probe-1x8x16x16-d1",
        "overhead-probe-probe-1x8x16x16-d2",
        "overhead-probe-probe-1-d1",
        "overhead-probe-probe-1-d2",
    ]
    backend.close()


def write_conv_chain_onnx(path: Path, convs: int, channels: int = 8, size: int = 16) -> None:
    """`convs` of write_conv_onnx's Conv + Relu one after another: a whole network of those ops."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((channels, channels, 3, 3), np.float32), "w")
    names = ["input"] + [f"relu{index}" for index in range(convs - 1)] + ["output"]
    nodes = []
    for index in range(convs):
        nodes.append(helper.make_node("Conv", [names[index], "w"], [f"conv{index}"], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [f"conv{index}"], [names[index + 1]]))
    graph = helper.make_graph(
        nodes,
        "chain",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, size, size])],
        initializer=[weight],
    )
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())


def three_convs_measured_and_their_network_us(tmp_path: Path, boundary_us_per_channel: float) -> tuple[dict, float]:
    """Three Conv + Relu ops measured by the agent on the stand-in runtime (LUT entries as the server serves them),
    and what the runtime takes for the whole network of the three."""
    backend = OverheadMeasuringBackend(KnownCostRuntime(boundary_us_per_channel))
    entries = {}
    for index in range(3):
        path = tmp_path / f"conv{index}.onnx"
        sha256 = write_conv_onnx(path, channels=8, size=16, seed=index)
        record = measure_op(backend, OpInput(f"conv{index}", path, sha256, {}), TimingPolicy())
        overhead = record.runtime["extra"]["invocation_overhead"]
        entries[f"conv{index}"] = {"median_us": statistics.median(record.samples_us), "invocation_overhead": overhead}
    backend.close()
    network = tmp_path / "network.onnx"
    write_conv_chain_onnx(network, convs=3)
    return entries, scripted_us(network, boundary_us_per_channel)


def test_the_measured_fixed_cost_applied_predicts_a_network_of_known_time_exactly(tmp_path: Path) -> None:
    """Measured by the agent, served as the LUT serves it, applied by the predictor: three ops whose run times are
    known (a fixed cost per invocation, no conversions) predict the whole network of the three to the microsecond,
    where the raw sum counts the fixed cost three times."""
    from fbnet_core.lut_costs import LutCosts

    entries, network_us = three_convs_measured_and_their_network_us(tmp_path, boundary_us_per_channel=0.0)
    costs = LutCosts.from_entries(entries)
    keys = list(entries)
    predicted_us = sum(costs.in_network_us(key) for key in keys) + costs.network_once_us(keys[0], keys[-1])
    raw_us = sum(entry["median_us"] for entry in entries.values())
    assert predicted_us == pytest.approx(network_us)
    assert raw_us == pytest.approx(network_us + 2 * FIXED_US)


def test_networks_that_convert_only_at_their_edges_fit_share_1_and_are_predicted_exactly(tmp_path: Path) -> None:
    """The stand-in runtime converts layouts only at a graph's edges, so a network pays none of its ops' inner
    boundaries: measured by the agent, the boundary share fitted from two whole networks (of three ops and of two)
    is 1, the work scale 1, and the prediction matches each network to the microsecond, where the fixed cost
    alone over-predicts it."""
    from fbnet_core.lut_costs import LutCosts
    from fbnet_core.network_fit import least_squares_fit, network_terms

    entries, network_us = three_convs_measured_and_their_network_us(tmp_path, BOUNDARY_US_PER_CHANNEL)
    shorter = tmp_path / "network2.onnx"
    write_conv_chain_onnx(shorter, convs=2)
    shorter_us = scripted_us(shorter, BOUNDARY_US_PER_CHANNEL)
    costs = LutCosts.from_entries(entries)
    keys = list(entries)
    terms = [network_terms(costs, keys, network_us), network_terms(costs, keys[:2], shorter_us)]
    inner_edges_us = 2 * (2 * BOUNDARY_US_PER_CHANNEL * 8)  # two edges between ops, each converting in and out
    assert terms[0].work_us + terms[0].once_us == pytest.approx(network_us + inner_edges_us)
    fit = least_squares_fit(terms)
    assert (fit.work_scale, fit.share) == pytest.approx((1.0, 1.0))
    fitted = costs.with_network_fit(fit.work_scale, fit.share, "fitted on the networks")
    for ops, whole_us in ((keys, network_us), (keys[:2], shorter_us)):
        predicted_us = sum(fitted.in_network_us(key) for key in ops) + fitted.network_once_us(ops[0], ops[-1])
        assert predicted_us == pytest.approx(whole_us)


def test_the_op_side_shares_follow_its_input_and_output_shapes(tmp_path: Path) -> None:
    """An op from 8 to 16 channels: each side is probed at its own shape, the op pays half of each."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((16, 8, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"])],
        "widen",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 16, 4, 4])],
        initializer=[weight],
    )
    path = tmp_path / "widen.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    assert io_shapes(path) == ((1, 8, 4, 4), (1, 16, 4, 4))
    import hashlib

    record = measure_op(
        OverheadMeasuringBackend(KnownCostRuntime()),
        OpInput("widen", path, hashlib.sha256(path.read_bytes()).hexdigest(), {}),
        TimingPolicy(),
    )
    overhead = record.runtime["extra"]["invocation_overhead"]
    assert overhead["input_us"] == pytest.approx(FIXED_US + 2 * BOUNDARY_US_PER_CHANNEL * 8)
    assert overhead["output_us"] == pytest.approx(FIXED_US + 2 * BOUNDARY_US_PER_CHANNEL * 16)
    assert overhead["us"] == pytest.approx((overhead["input_us"] + overhead["output_us"]) / 2)


def test_onnxruntime_measures_a_positive_overhead_below_the_op(
    tmp_path: Path, fast_policy: TimingPolicy
) -> None:
    path = tmp_path / "conv.onnx"
    sha256 = write_conv_onnx(path, channels=16, size=32)
    backend = OverheadMeasuringBackend(OnnxRuntimeBackend())
    try:
        record = measure_op(backend, OpInput("conv", path, sha256, {}), fast_policy)
    finally:
        backend.close()
    overhead = record.runtime["extra"]["invocation_overhead"]
    assert 0.0 < overhead["us"] < statistics.median(record.samples_us)
    for probe in overhead["probes"]:
        # Two probes run more work than one: the overhead is the part of one run that the second does not repeat.
        assert probe["double_us"] > 0 and probe["single_us"] > 0


def test_the_probe_maps_a_shape_to_itself_with_unit_weights(tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    for shape in [(1, 8, 4, 4), (1, 10)]:
        session = ort.InferenceSession(probe_onnx(shape, 2), providers=["CPUExecutionProvider"])
        feed = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        (output,) = session.run(None, {"input": feed})
        np.testing.assert_allclose(output, feed, rtol=1e-6)


def test_a_backend_that_cannot_run_the_probe_reports_no_overhead(tmp_path: Path) -> None:
    from device_agents.errors import OpFailedError

    class NoProbes(KnownCostRuntime):
        def prepare(self, op: OpInput) -> KnownCostRunner:
            if op.key.startswith("overhead-probe"):
                raise OpFailedError("this runtime rebuilds ops from their specs")
            return super().prepare(op)

    path = tmp_path / "conv.onnx"
    sha256 = write_conv_onnx(path)
    record = measure_op(
        OverheadMeasuringBackend(NoProbes()), OpInput("conv", path, sha256, {}), TimingPolicy()
    )
    assert not record.is_failure and "invocation_overhead" not in record.runtime["extra"]
