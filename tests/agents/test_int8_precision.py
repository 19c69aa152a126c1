"""int8 precision (device_agents/quantize.py): real FBNet blocks quantised by onnxruntime and timed as int8."""

from __future__ import annotations

import collections
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from device_agents.backends import BackendOptions, load_backend
from device_agents.backends.base import OpInput
from device_agents.backends.onnxruntime import OnnxRuntimeBackend
from device_agents.errors import BackendUnavailableError
from device_agents.measure import measure_op
from device_agents.quantize import INT8_RECIPE, Int8Quantizer
from fbnet_core.keys import candidate_ops
from fbnet_core.space import SpaceParams, build_space
from search_client.space.export import export_onnx


@pytest.fixture
def grouped_block(tmp_path: Path) -> OpInput:
    """A grouped-convolution FBNet block at 16x16: the kind whose int8 kernels differ most from fp32's."""
    space = build_space(SpaceParams(resolution=16, num_classes=10, head_channels=256, small_input=True))
    op = next(op for op in candidate_ops(space)[2] if op is not None and op.spec["block"] == "k3_e1_g2")
    data = export_onnx(op.spec)
    path = tmp_path / f"{op.key}.onnx"
    path.write_bytes(data)
    return OpInput(op.key, path, hashlib.sha256(data).hexdigest(), op.spec)


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def test_the_quantised_block_is_integer_and_computes_what_the_fp32_block_does(grouped_block: OpInput):
    quantizer = Int8Quantizer()
    int8_path = quantizer.quantized(grouped_block.onnx_path, grouped_block.onnx_sha256)
    nodes = collections.Counter(node.op_type for node in onnx.load(str(int8_path)).graph.node)
    assert nodes["QuantizeLinear"] >= 3 and nodes["DequantizeLinear"] >= 3, nodes  # every conv's input and weight
    x = np.random.default_rng(1).standard_normal((1, 24, 16, 16)).astype(np.float32)  # not the calibration data
    exact, approximate = _run(grouped_block.onnx_path, x), _run(int8_path, x)
    relative_error = np.linalg.norm(approximate - exact) / np.linalg.norm(exact)
    assert relative_error < 0.1, relative_error  # the same block at 8 bits, not some other model
    assert quantizer.quantized(grouped_block.onnx_path, grouped_block.onnx_sha256) == int8_path  # made once


def test_int8_precision_measures_the_block_and_records_the_recipe(grouped_block: OpInput, fast_policy):
    backend = load_backend("onnxruntime", BackendOptions(precision="int8"))
    record = measure_op(backend, grouped_block, fast_policy)
    assert not record.is_failure, record
    assert record.runtime["extra"]["precision"] == "int8"
    assert record.runtime["extra"]["quantization"] == INT8_RECIPE
    fp32 = measure_op(OnnxRuntimeBackend(), grouped_block, fast_policy)
    assert fp32.runtime["extra"]["precision"] == "fp32" and "quantization" not in fp32.runtime["extra"]


def test_a_model_that_cannot_be_quantised_is_a_failure_with_a_reason(corrupt_onnx, fast_policy):
    path, sha256 = corrupt_onnx
    record = measure_op(OnnxRuntimeBackend(precision="int8"), OpInput("bad", path, sha256, {}), fast_policy)
    assert record.is_failure and "could not quantise corrupt.onnx to int8" in record.error


def test_unknown_precisions_and_int8_outside_onnxruntime_are_refused():
    with pytest.raises(BackendUnavailableError, match="unknown precision 'fp16'; one of fp32, int8"):
        OnnxRuntimeBackend(precision="fp16")
    with pytest.raises(BackendUnavailableError, match="precision int8 needs the onnxruntime backend, not torch"):
        load_backend("torch", BackendOptions(precision="int8"))


def test_device_agent_info_shows_the_precision_and_refuses_a_bad_one_in_one_line():
    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "device_agents", "info", *args], capture_output=True,
                              text=True, timeout=120, check=False)

    shown = agent("--precision", "int8")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["runtime"]["extra"]["precision"] == "int8"
    refused = agent("--precision", "int4")
    assert refused.returncode == 2 and "unknown precision 'int4'" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_int8_and_fp32_agents_keep_separate_speed_reference_calibrations(tmp_path: Path):
    """The reference model is quantised too on an int8 agent: its nominal time is not the fp32 one."""
    from device_agents.speed_reference import calibration_path

    reference_sha256 = "a" * 64
    fp32 = calibration_path(tmp_path, OnnxRuntimeBackend().runtime_info(), reference_sha256)
    int8 = calibration_path(tmp_path, OnnxRuntimeBackend(precision="int8").runtime_info(), reference_sha256)
    assert fp32 != int8
