"""The onnxruntime backend and `measure_op` on real ONNX files and real sessions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from device_agents.backends.base import OpInput
from device_agents.backends.onnxruntime import OnnxRuntimeBackend
from device_agents.errors import BackendUnavailableError
from device_agents.measure import measure_op


def test_measures_a_real_conv_and_records_its_provenance(conv_onnx, fast_policy):
    path, sha256 = conv_onnx
    backend = OnnxRuntimeBackend(threads=1, cpu_affinity=[0])
    record = measure_op(backend, OpInput("conv_k3", path, sha256, {}), fast_policy)
    assert not record.is_failure, record
    assert record.key == "conv_k3" and record.onnx_sha256 == sha256
    samples = record.samples_us
    assert len(samples) >= fast_policy.min_runs and all(0 < s < 1e6 for s in samples)
    runtime = record.runtime
    assert runtime["runtime"] == "onnxruntime" and runtime["execution_provider"] == "CPUExecutionProvider"
    assert runtime["threads"] == 1 and runtime["cpu_affinity"] == [0]
    assert runtime["graph_optimization"] == "ORT_ENABLE_ALL"
    assert runtime["timed_runs"] == len(samples) and runtime["warmup_runs"] >= fast_policy.warmup_min_runs
    assert runtime["extra"]["stop_reason"] in {"ci", "time_cap", "max_runs"}
    assert runtime["started_at"] <= runtime["finished_at"]


@pytest.fixture(autouse=True)
def _restore_affinity():
    before = os.sched_getaffinity(0)
    yield
    os.sched_setaffinity(0, before)


def test_a_corrupt_model_is_a_failure_with_a_reason(corrupt_onnx, fast_policy):
    path, sha256 = corrupt_onnx
    record = measure_op(OnnxRuntimeBackend(), OpInput("bad", path, sha256, {}), fast_policy)
    assert record.is_failure
    assert "onnxruntime could not load corrupt.onnx" in record.error
    assert record.samples_us is None


def test_a_file_that_does_not_match_its_sha256_is_not_measured(conv_onnx, fast_policy):
    path, _ = conv_onnx
    record = measure_op(OnnxRuntimeBackend(), OpInput("k", path, "0" * 64, {}), fast_policy)
    assert record.is_failure and "does not match" in record.error


def test_a_missing_file_is_a_failure(tmp_path: Path, fast_policy):
    record = measure_op(OnnxRuntimeBackend(), OpInput("k", tmp_path / "gone.onnx", "0" * 64, {}), fast_policy)
    assert record.is_failure and "gone.onnx" in record.error


def test_an_uninstalled_execution_provider_is_refused_by_name():
    with pytest.raises(BackendUnavailableError, match="TensorrtExecutionProvider.*CPUExecutionProvider"):
        OnnxRuntimeBackend(provider="TensorrtExecutionProvider")


def test_a_model_past_the_memory_bound_is_refused_before_it_is_loaded(conv_onnx, fast_policy):
    path, sha256 = conv_onnx
    record = measure_op(OnnxRuntimeBackend(max_model_bytes=1024), OpInput("k", path, sha256, {}), fast_policy)
    assert record.is_failure and "refused to load conv.onnx" in record.error and "the limit is" in record.error


def test_a_model_that_computes_a_huge_tensor_is_refused_before_onnxruntime_allocates_it(tmp_path, fast_policy):
    """A few hundred bytes asking for 1 GiB at session creation: refused from shape inference alone."""
    import hashlib

    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1, 256, 1024, 1024], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Constant", [], ["s"], value=shape), helper.make_node("ConstantOfShape", ["s"], ["big"]),
         helper.make_node("ReduceMean", ["big"], ["m"], keepdims=1), helper.make_node("Add", ["input", "m"], ["output"])],
        "bomb",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 4, 8, 8])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "bomb.onnx"
    path.write_bytes(model.SerializeToString())
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    record = measure_op(OnnxRuntimeBackend(), OpInput("bomb", path, sha256, {}), fast_policy)
    assert record.is_failure and "refused to load bomb.onnx" in record.error, record.error
    assert "268,435,456 elements" in record.error
