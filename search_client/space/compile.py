"""Ops and whole networks compiled for the runtime that runs them: ONNX, ExecuTorch (`.pte`) or LiteRT
(`.tflite`), from the same module with the same weights (drawn from the op's key, search_client/space/export.py).

Every format is deterministic: the same spec gives the same bytes in any process (the .pte and .tflite writers
embed no time stamp or path; tests/search/test_compile.py checks it), so a file's sha256 names the op's model
in that format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from fbnet_core.keys import op_input_shape
from fbnet_core.model_formats import ModelFormat, check_format
from search_client.space.executorch import compile_pte
from search_client.space.export import export_module, seeded_eval_op
from search_client.space.litert import compile_tflite_many

Compiled = list[bytes]


def compile_modules(modules: Sequence[tuple[nn.Module, tuple[int, int, int, int]]], model_format: str) -> Compiled:
    """Each eval-mode module (with its static input shape) as a file of `model_format`, in order."""
    fmt: ModelFormat = check_format(model_format)
    if fmt == "tflite":
        return compile_tflite_many(modules)  # one converter process for the whole batch
    compile_one = export_module if fmt == "onnx" else compile_pte
    return [compile_one(module, shape) for module, shape in modules]


def compile_ops(specs: Sequence[Mapping[str, Any]], model_format: str) -> Compiled:
    """The file of each op spec in `model_format` (weights drawn from the op's key, as in its ONNX file)."""
    return compile_modules([(seeded_eval_op(spec), op_input_shape(spec)) for spec in specs], model_format)


def compile_op(spec: Mapping[str, Any], model_format: str) -> bytes:
    return compile_ops([spec], model_format)[0]
