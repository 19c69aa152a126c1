"""The runtime's per-invocation overhead, measured on the device for each op's input and output tensor shapes.

An op timed alone pays, every run, what a whole network pays once: the runtime's fixed cost of an invocation (the
call, setting up the run, binding and allocating the input and output) and any conversion at the graph's boundary
(onnxruntime's CPU provider reorders NCHW tensors into its blocked layout at a convolution's input and back at its
output; inside a network they stay blocked; int8 adds a quantise and a dequantise). Summed over a network's ops,
that overhead is counted once per op where the device pays it once per network: at 16x16 it is a third of a
block's time.

The probe for a tensor shape s is a graph P_s of one 1x1 depthwise convolution with unit weights (for a tensor that
is not 4-D, a multiplication by one): it maps s to s and costs almost nothing. P_s run twice in one graph pays the
boundary once and the work twice, so

    overhead(s) = 2 t(P_s) - t(P_s . P_s)

is what one invocation costs beyond its work, measured with the backend's own runtime, settings and timing engine
(a speed reference and int8 quantisation included). The difference is small beside either time, so a change of the
machine's speed between the two measurements would swamp it: the two are measured in `PROBE_ROUNDS` short
alternating rounds and the overhead is the median of the rounds' differences. An op from shape a to shape b pays the fixed cost once and a
boundary at each side: overhead(op) = (overhead(a) + overhead(b)) / 2, which the record carries with both sides,
so that a predictor can count a network's own overhead once, from its first op's input and its last op's output
(fbnet_core/lut_costs.py), and the fixed part alone (`fixed_us`: the probe of a one-element tensor, which no
layout conversion touches). Each shape is probed once per agent process. Raw samples are never altered.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from device_agents.backends.base import Backend, OpInput, Runner, RuntimeInfo
from device_agents.errors import OpFailedError
from device_agents.system import SensorReadings
from device_agents.timing import Clock, Measurement, TimingPolicy

log = logging.getLogger("device_agents")

METHOD = (
    "2 t(P) - t(P.P) per tensor shape, median of alternating rounds, P = 1x1 depthwise conv (Mul if not 4-D); "
    "op = (input + output) / 2"
)
OPSET = 17
# A one-element tensor: its probe pays the invocation's fixed cost and no layout conversion (`fixed_us`).
FIXED_SHAPE: tuple[int, ...] = (1,)
PROBE_ROUNDS = 5
PROBE_ROUND_MAX_S = 0.1  # each round's timed phase: short, so that the machine's speed barely moves within a pair
Shape = tuple[int, ...]


def probe_onnx(shape: Shape, depth: int) -> bytes:
    """ONNX bytes of `depth` chained probes on a float32 tensor of `shape` (static)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    nodes, initializers, previous = [], [], "input"
    for index in range(depth):
        output = "output" if index == depth - 1 else f"probe{index}"
        weight = f"weight{index}"
        if len(shape) == 4:
            initializers.append(numpy_helper.from_array(np.ones((shape[1], 1, 1, 1), np.float32), weight))
            nodes.append(helper.make_node("Conv", [previous, weight], [output], group=shape[1], kernel_shape=[1, 1]))
        else:
            initializers.append(numpy_helper.from_array(np.ones(shape, np.float32), weight))
            nodes.append(helper.make_node("Mul", [previous, weight], [output]))
        previous = output
    graph = helper.make_graph(
        nodes,
        f"overhead_probe_x{depth}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(shape))],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]).SerializeToString()


def io_shapes(onnx_path: Path) -> tuple[Shape, Shape]:
    """The static shapes of a model's first graph input (not an initializer) and first output."""
    import onnx

    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:  # onnx raises DecodeError, OSError, ...: this op's failure
        raise OpFailedError(f"cannot read the input and output shapes of {onnx_path.name}: {exc}") from exc
    initializers = {initializer.name for initializer in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if not inputs or not graph.output:
        raise OpFailedError(f"{onnx_path.name} has no graph input or output")

    def shape_of(value: Any) -> Shape:
        dims = tuple(dim.dim_value for dim in value.type.tensor_type.shape.dim)
        if not dims or not all(dim > 0 for dim in dims):
            raise OpFailedError(f"{onnx_path.name}: {value.name!r} has no static shape")
        return dims

    return shape_of(inputs[0]), shape_of(graph.output[0])


@dataclasses.dataclass(frozen=True)
class ShapeOverhead:
    shape: Shape
    single_us: float  # median over the rounds of t(P)
    double_us: float  # median over the rounds of t(P . P)
    overhead_us: float  # median over the rounds of 2 t(P) - t(P . P); never negative (noise could make it so)
    rounds: int
    measured_at: str


class _OverheadRunner:
    def __init__(self, runner: Runner, owner: OverheadMeasuringBackend, shapes: tuple[Shape, Shape] | None) -> None:
        self._runner = runner
        self._owner = owner
        self._shapes = shapes

    def measure(self, policy: TimingPolicy, clock: Clock = time.perf_counter) -> Measurement:
        measurement = self._runner.measure(policy, clock)
        if self._shapes is None:
            return measurement
        return dataclasses.replace(measurement, overhead=self._owner.overhead_for(*self._shapes, policy, clock))

    def close(self) -> None:
        self._runner.close()


class OverheadMeasuringBackend:
    """A backend whose every measurement also carries the invocation overhead of the op's input and output shapes,
    probed with the wrapped backend (so with its speed reference and precision). Where the backend cannot run a
    probe (the torch backend rebuilds ops from their specs), measurements carry none."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.name = backend.name
        self.model_format = backend.model_format
        self._folder = Path(tempfile.mkdtemp(prefix="overhead-probes-"))
        self._by_shape: dict[Shape, ShapeOverhead] = {}
        self._unavailable: str | None = None

    def runtime_info(self) -> RuntimeInfo:
        return self._backend.runtime_info()

    def read_sensors(self) -> SensorReadings:
        return self._backend.read_sensors()

    def describe_device(self) -> dict[str, Any]:
        return self._backend.describe_device()

    def prepare(self, op: OpInput) -> _OverheadRunner:
        runner = self._backend.prepare(op)
        try:
            shapes: tuple[Shape, Shape] | None = io_shapes(op.file_in("onnx"))
        except OpFailedError as exc:
            # The backend ran a file onnx cannot read (another format): measured, without an overhead figure.
            log.warning("%s: no overhead figure (%s)", op.key, exc)
            shapes = None
        return _OverheadRunner(runner, self, shapes)

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)

    def overhead_for(
        self, input_shape: Shape, output_shape: Shape, policy: TimingPolicy, clock: Clock
    ) -> dict[str, Any] | None:
        """The op's overhead with its provenance, or None where the backend cannot run the probes."""
        sides = [self._shape_overhead(shape, policy, clock) for shape in (input_shape, output_shape, FIXED_SHAPE)]
        if self._unavailable is not None:
            return None
        input_side, output_side, fixed = sides
        assert input_side is not None and output_side is not None and fixed is not None
        return {
            "us": round((input_side.overhead_us + output_side.overhead_us) / 2.0, 3),
            "input_us": round(input_side.overhead_us, 3),
            "output_us": round(output_side.overhead_us, 3),
            "fixed_us": round(fixed.overhead_us, 3),
            "method": METHOD,
            "probes": [{**dataclasses.asdict(side), "shape": list(side.shape)} for side in sides],
        }

    def _shape_overhead(self, shape: Shape, policy: TimingPolicy, clock: Clock) -> ShapeOverhead | None:
        if self._unavailable is not None:
            return None
        if shape not in self._by_shape:
            try:
                self._by_shape[shape] = self._probe(shape, policy, clock)
            except OpFailedError as exc:
                self._unavailable = str(exc)
                log.warning("the %s backend cannot run the overhead probe (%s): no overhead figures", self.name, exc)
                return None
        return self._by_shape[shape]

    def _probe(self, shape: Shape, policy: TimingPolicy, clock: Clock) -> ShapeOverhead:
        runners = [self._prepare_probe(shape, depth) for depth in (1, 2)]
        round_policy = dataclasses.replace(
            policy, min_s=min(policy.min_s, PROBE_ROUND_MAX_S / 2), max_s=min(policy.max_s, PROBE_ROUND_MAX_S)
        )
        try:
            singles, doubles = [], []
            for _ in range(PROBE_ROUNDS):
                single, double = (statistics.median(r.measure(round_policy, clock).samples_us) for r in runners)
                singles.append(single)
                doubles.append(double)
        finally:
            for runner in runners:
                runner.close()
        differences = [max(0.0, 2.0 * single - double) for single, double in zip(singles, doubles, strict=True)]
        return ShapeOverhead(
            shape,
            single_us=statistics.median(singles),
            double_us=statistics.median(doubles),
            overhead_us=statistics.median(differences),
            rounds=PROBE_ROUNDS,
            measured_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def _prepare_probe(self, shape: Shape, depth: int) -> Runner:
        onnx = probe_onnx(shape, depth)
        sha256 = hashlib.sha256(onnx).hexdigest()
        path = self._folder / f"probe-{'x'.join(map(str, shape))}-d{depth}.onnx"
        path.write_bytes(onnx)
        return self._backend.prepare(OpInput(f"overhead-probe-{path.stem}", path, sha256, {}))
