"""Ops compiled for ExecuTorch (.pte, XNNPACK) and LiteRT (.tflite): run by the real runtimes, they match the
PyTorch op within 1e-4, and compiling twice gives the same bytes.

ExecuTorch and ai-edge-litert are installed with the project's dev extras, so the .pte tests and the .tflite
runtime tests always run. The LiteRT converter lives in its own environment (.venv-litert, about 2 GB), which
CI does not build: the .tflite runtime tests read files converted once by scripts/make-compiled-fixtures.py
(data/), and the tests that run the converter itself run only where it is installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fbnet_core.keys import Op, ops_for_space
from fbnet_core.model_formats import header_problem
from fbnet_core.space import fbnet_space
from search_client.errors import CompilerUnavailableError
from search_client.space import litert
from search_client.space.compile import compile_op, compile_ops
from search_client.space.export import seeded_eval_op

DATA = Path(__file__).parent / "data"
OPS = {op.key: op for op in ops_for_space(fbnet_space(resolution=32, small_input=True, num_classes=10))}
# An inverted residual (expansion 6, skip), a grouped block with its channel shuffle, and the stem.
PTE_KEYS = ("blk.k3_e6.c16.o16.s1.h32w32", "blk.k5_e1_g2.c16.o16.s1.h32w32", "stem.k3.c3.o16.s1.h32w32")
TFLITE_FIXTURES = sorted(DATA.glob("*.tflite"))
TOLERANCE = 1e-4
needs_converter = pytest.mark.skipif(
    not litert.converter_available(), reason=f"the LiteRT converter is not installed ({litert.INSTALL_HINT})"
)


def _expected(op: Op, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        expected = seeded_eval_op(op.spec)(x).numpy()
    assert np.abs(expected).max() > 1e-3  # a zero output would make the comparison prove nothing
    return expected


def _input(op: Op) -> torch.Tensor:
    return torch.randn(op.spec["input_shape"], generator=torch.Generator().manual_seed(0))


def _run_pte(program: bytes, x: torch.Tensor) -> np.ndarray:
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(program).load_method("forward")
    return method.execute([x])[0].numpy()


def _run_tflite(model: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model, num_threads=1)
    interpreter.allocate_tensors()
    (model_input,) = interpreter.get_input_details()
    interpreter.set_tensor(model_input["index"], x)
    interpreter.invoke()
    (model_output,) = interpreter.get_output_details()
    return interpreter.get_tensor(model_output["index"])


@pytest.mark.parametrize("key", PTE_KEYS)
def test_a_pte_op_runs_on_executorch_and_matches_pytorch(key: str) -> None:
    op = OPS[key]
    program = compile_op(op.spec, "pte")
    assert header_problem("pte", program) is None
    x = _input(op)
    np.testing.assert_allclose(_run_pte(program, x), _expected(op, x), atol=TOLERANCE, rtol=TOLERANCE)


def test_pte_compilation_is_deterministic_across_processes() -> None:
    op = OPS[PTE_KEYS[0]]
    here = compile_op(op.spec, "pte")
    assert compile_op(op.spec, "pte") == here
    script = (
        "import sys; from fbnet_core.keys import ops_for_space; from fbnet_core.space import fbnet_space; "
        "from search_client.space.compile import compile_op; "
        "ops = {o.key: o for o in ops_for_space(fbnet_space(resolution=32, small_input=True, num_classes=10))}; "
        f"sys.stdout.buffer.write(compile_op(ops[{op.key!r}].spec, 'pte'))"
    )
    other = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True, timeout=600).stdout
    assert other == here
    # ... and across runs: the committed file was compiled earlier (by scripts/make-compiled-fixtures.py, which an
    # ExecuTorch upgrade that changes the program's bytes makes one rerun).
    assert (DATA / f"{op.key}.pte").read_bytes() == here


def test_the_tflite_fixtures_are_there() -> None:
    # The runtime tests below are parametrised by these files: without them they would silently test nothing.
    assert {path.stem for path in TFLITE_FIXTURES} == {PTE_KEYS[0], PTE_KEYS[1]}


@pytest.mark.parametrize("path", TFLITE_FIXTURES, ids=lambda path: path.stem)
def test_a_tflite_op_runs_on_litert_and_matches_pytorch(path: Path) -> None:
    op = OPS[path.stem]
    model = path.read_bytes()
    assert header_problem("tflite", model) is None
    x = _input(op)
    np.testing.assert_allclose(_run_tflite(model, x.numpy()), _expected(op, x), atol=TOLERANCE, rtol=TOLERANCE)


@needs_converter
def test_converting_again_gives_the_committed_tflite_bytes() -> None:
    # Deterministic across processes and runs: the fixtures were converted by another process, earlier.
    converted = compile_ops([OPS[path.stem].spec for path in TFLITE_FIXTURES], "tflite")
    assert converted == [path.read_bytes() for path in TFLITE_FIXTURES]


def test_without_the_converter_tflite_compilation_says_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(litert.CONVERTER_PYTHON_ENV, str(tmp_path / "no-such-python"))
    with pytest.raises(CompilerUnavailableError, match="setup-litert-converter.sh"):
        compile_op(OPS[PTE_KEYS[0]].spec, "tflite")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model format 'caffe2'"):
        compile_op(OPS[PTE_KEYS[0]].spec, "caffe2")
