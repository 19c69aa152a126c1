"""The smallest inputs a real server accepts, for exercising one without a device or torch: a seeded 1x1-conv ONNX
op (built with onnx.helper) and the runtime object of a measurement."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fbnet_core.client import OpUpload


def tiny_onnx(seed: int, channels: int = 4, size: int = 8) -> bytes:
    """A 1x1 conv with seeded weights: input `input` [1, C, H, W], output `output` (docs/contracts.md)."""
    weights = np.random.default_rng(seed).standard_normal((channels, channels, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"])],
        f"tiny{seed}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, size, size])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def op_upload(key: str, seed: int) -> OpUpload:
    return OpUpload(key=key, spec={"kind": "test_conv", "batch": 1, "dtype": "float32", "seed": seed},
                    onnx_bytes=tiny_onnx(seed))  # fmt: skip


RUNTIME: dict[str, Any] = {
    "runtime": "onnxruntime",
    "runtime_version": "1.32.0",
    "execution_provider": "CPUExecutionProvider",
    "threads": 1,
    "cpu_affinity": [0],
    "graph_optimization": "ORT_ENABLE_ALL",
    "agent_version": "0.1.0",
    "warmup_runs": 25,
    "warmup_s": 0.5,
    "timed_runs": 5,
    "temperatures_c": None,
    "cpu_freq_mhz": None,
    "started_at": "2026-11-28T17:20:00Z",
    "finished_at": "2026-11-28T17:20:01Z",
    "extra": {},
}
