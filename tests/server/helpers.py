"""Small real inputs for the server tests: ONNX files built with onnx.helper (no torch), and results."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fbnet_core.client import OpUpload, ProfilerClient


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


def unique(prefix: str) -> str:
    """A name no other test uses (the session's server is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


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


def task_result(
    task_id: int, key: str, samples_us: list[float], onnx_sha256: str | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "task_id": task_id,
        "result_id": str(uuid.uuid4()),
        "key": key,
        "samples_us": samples_us,
        "runtime": RUNTIME,
    }
    if onnx_sha256 is not None:
        result["onnx_sha256"] = onnx_sha256
    return result


def offline_result(key: str, onnx_sha256: str, samples_us: list[float]) -> dict[str, Any]:
    return {"result_id": str(uuid.uuid4()), "key": key, "onnx_sha256": onnx_sha256, "samples_us": samples_us,
            "runtime": RUNTIME}  # fmt: skip


class Setup:
    """A registered device with ops uploaded (and optionally queued) on a live server."""

    def __init__(self, server: Any, unique_name: Any, n_ops: int = 3, queue: bool = True) -> None:
        self.admin: ProfilerClient = server.client(server.admin_token)
        self.device_name = unique_name("dev")
        registered = server.client(server.enroll_token).register_device(
            self.device_name, "linux-x86_64", {"cores": 2}
        )
        self.agent: ProfilerClient = server.client(registered.token)
        self.device_token = registered.token
        self.keys = [unique_name(f"op{i}") for i in range(n_ops)]
        seeds = [int(uuid.uuid4().int % 1_000_000) for _ in self.keys]
        uploads = [op_upload(key, seed) for key, seed in zip(self.keys, seeds, strict=True)]
        self.sha = {u.key: sha256(u.onnx_bytes) for u in uploads}
        self.onnx = {u.key: u.onnx_bytes for u in uploads}
        self.admin.upload_ops(uploads)
        if queue:
            self.admin.create_jobs(self.device_name, self.keys)
