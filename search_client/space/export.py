"""Deterministic ONNX export of ops and models (the file format is in docs/contracts.md).

Determinism: weights are drawn from a generator seeded by the op's key (so the same op gives the same weights
in any process), the TorchScript exporter (`dynamo=False`) is used because it is fast (tens of ms per op) and
its output is stable, and the opset is pinned. BatchNorm statistics are drawn too (not left at mean 0 / var 1),
so that a wrong BN fold cannot hide behind an identity transform; the exporter folds BN into the convs in eval
mode.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from fbnet_core.keys import op_input_shape, op_key
from search_client.errors import ExportError
from search_client.space.ops import build_op

OPSET_VERSION = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def seed_from_key(key: str) -> int:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def _randomise_batchnorm(module: nn.Module) -> None:
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            with torch.no_grad():
                bn.weight.uniform_(0.5, 1.5)
                bn.bias.uniform_(-0.1, 0.1)
                bn.running_mean.uniform_(-0.1, 0.1)
                bn.running_var.uniform_(0.5, 1.5)


def seeded_eval_op(spec: Mapping[str, Any]) -> nn.Module:
    """The op of `spec` with weights drawn from its key's seed, in eval mode: what the ONNX file contains."""
    seed = seed_from_key(op_key(spec))
    # fork_rng keeps the caller's global RNG untouched; module init draws from the global generator.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build_op(spec)
        _randomise_batchnorm(module)
    return module.eval()


def export_module(module: nn.Module, input_shape: tuple[int, int, int, int]) -> bytes:
    """ONNX bytes of an eval-mode module with one static float32 input `input` and one output `output`."""
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # The TorchScript exporter is deprecated in favour of dynamo; we choose it on purpose (see above).
            warnings.simplefilter("ignore", category=DeprecationWarning)
            torch.onnx.export(
                module.eval(),
                (torch.zeros(input_shape),),
                buffer,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=OPSET_VERSION,
                dynamo=False,
                do_constant_folding=True,
            )
    except Exception as exc:  # the exporter raises many unrelated types; one boundary translates them all
        raise ExportError(f"ONNX export failed for input shape {input_shape}: {exc}") from exc
    return buffer.getvalue()


def export_onnx(spec: Mapping[str, Any]) -> bytes:
    """The ONNX file of an op: byte-identical for the same spec in any process."""
    return export_module(seeded_eval_op(spec), op_input_shape(spec))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
