"""Real ONNX files (built with onnx.helper, no torch needed) and server set-up shared by the agent tests."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from fbnet_core.formats import ops_manifest


def write_conv_onnx(path: Path, channels: int = 8, size: int = 16, seed: int = 0) -> str:
    """A 3x3 conv + ReLU with the contract's I/O names (`input` [1,C,H,W] -> `output`); returns its sha256."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array(rng.standard_normal((channels, channels, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "w"], ["conv"], pads=[1, 1, 1, 1]),
            helper.make_node("Relu", ["conv"], ["output"]),
        ],
        "conv",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, channels, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, channels, size, size])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_manifest(folder: Path, entries: list[tuple[str, Path, str]]) -> Path:
    """ops.jsonl as `dnas export-ops` writes it (docs/contracts.md)."""
    manifest = folder / ops_manifest.OPS_MANIFEST_NAME
    spec = {"kind": "test_conv", "batch": 1, "dtype": "float32"}
    ops_manifest.write_manifest(
        manifest,
        [ops_manifest.ManifestEntry(key, {**spec, "key": key}, onnx_path.name, sha256) for key, onnx_path, sha256 in entries],
    )
    return manifest


def write_runtime_broken_onnx(path: Path) -> str:
    """Valid for onnx.checker (the server accepts it) but not runnable: the conv weight has 4 input channels
    for an 8-channel input, which onnxruntime rejects - a 'runtime error' op."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["output"], pads=[1, 1, 1, 1])],
        "broken",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 16, 16])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8, 16, 16])],
        initializer=[weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.write_bytes(model.SerializeToString())
    return hashlib.sha256(path.read_bytes()).hexdigest()


def queue_ops(server, device: str, ops: list[tuple[str, Path]]) -> None:
    """Upload ops (admin token) and queue them for `device`, as `dnas` does."""
    from fbnet_core.client import OpUpload

    admin = server.client(server.admin_token)
    uploads = [OpUpload(key, {"kind": "test_conv", "batch": 1, "dtype": "float32"}, p.read_bytes()) for key, p in ops]
    admin.upload_ops(uploads)
    admin.create_jobs(device, [key for key, _ in ops])
