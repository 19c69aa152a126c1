from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fbnet_core.keys import Op, ops_for_space
from fbnet_core.space import fbnet_space
from search_client.space.export import OPSET_VERSION, export_onnx, seeded_eval_op, sha256_hex

# A small space exercises every op kind and every candidate at full speed; one 224 layer checks real shapes.
OPS = ops_for_space(fbnet_space(resolution=32, small_input=True, num_classes=10))
OPS_224_SAMPLE = [op for op in ops_for_space(fbnet_space()) if op.key.endswith("s2.h112w112")]
TOLERANCE = 1e-4


def _onnxruntime_output(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return session.run(["output"], {"input": x})[0]


@pytest.mark.parametrize("op", OPS + OPS_224_SAMPLE, ids=lambda op: op.key)
def test_onnxruntime_matches_torch(op: Op) -> None:
    model_bytes = export_onnx(op.spec)
    x = torch.randn(op.spec["input_shape"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = seeded_eval_op(op.spec)(x).numpy()
    got = _onnxruntime_output(model_bytes, x.numpy())
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=TOLERANCE)
    # The output must not be trivially zero, or the comparison would prove nothing.
    assert np.abs(expected).max() > 1e-3


def test_file_follows_the_contract() -> None:
    op = next(op for op in OPS if op.spec["kind"] == "block" and op.spec["block"] == "k5_e1_g2")
    model = onnx.load_from_string(export_onnx(op.spec))
    onnx.checker.check_model(model)
    assert [opset.version for opset in model.opset_import if opset.domain in ("", "ai.onnx")] == [
        OPSET_VERSION
    ]
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert graph_input.name == "input" and graph_output.name == "output"
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]
    assert dims == op.spec["input_shape"]
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    node_types = {node.op_type for node in model.graph.node}
    assert "BatchNormalization" not in node_types, "eval-mode export folds BN into the convs"
    assert {"Conv", "Transpose", "Relu"} <= node_types


def test_export_is_byte_identical_across_processes() -> None:
    sample = OPS[:: max(1, len(OPS) // 12)]
    code = (
        "import sys, json\n"
        "from search_client.space.export import export_onnx, sha256_hex\n"
        "specs = json.load(sys.stdin)\n"
        "print('\\n'.join(sha256_hex(export_onnx(spec)) for spec in specs))\n"
    )
    payload = json.dumps([op.spec for op in sample])
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], input=payload, capture_output=True, text=True, check=True
        )
        for _ in range(2)
    ]
    mine = [sha256_hex(export_onnx(op.spec)) for op in sample]
    assert runs[0].stdout.split() == runs[1].stdout.split() == mine
    assert len(set(mine)) == len(mine)


def test_export_leaves_the_callers_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    export_onnx(OPS[1].spec)
    assert torch.equal(torch.rand(3), expected)
