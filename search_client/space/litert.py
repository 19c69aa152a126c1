"""LiteRT models (`.tflite`) of ops and whole networks, converted by litert-torch in its own environment.

The converter (litert-torch) pulls jax, transformers and a large conversion library and pins typing_extensions
below what this project's other libraries need, so it lives in a virtual environment of its own (.venv-litert,
made by scripts/setup-litert-converter.sh, or any Python named by FBNET_LITERT_PYTHON). This side runs
torch.export and saves the programs; one converter process (search_client/space/tflite_worker.py) turns a
whole batch into `.tflite` files, so its start-up (seconds: it imports jax) is paid once per batch, not per op.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from search_client.errors import CompilerUnavailableError, ExportError

CONVERTER_PYTHON_ENV = "FBNET_LITERT_PYTHON"
CONVERTER_VENV = ".venv-litert"
_CONVERTER_SCRIPT = Path(__file__).with_name("tflite_worker.py")
# The repository root when the project is installed in editable mode (the usual checkout).
_REPOSITORY = Path(__file__).resolve().parents[2]
# Per file: conversion takes about a second; the start-up (importing jax) is paid once.
_STARTUP_TIMEOUT_S = 300.0
_PER_FILE_TIMEOUT_S = 120.0

INSTALL_HINT = (
    f"run scripts/setup-litert-converter.sh (creates {CONVERTER_VENV} with litert-torch) or set "
    f"{CONVERTER_PYTHON_ENV} to a Python that has litert-torch>=0.10 and torch=={torch.__version__}"
)


def converter_python() -> Path:
    """The Python that runs the converter: FBNET_LITERT_PYTHON, else .venv-litert in the working directory, else
    .venv-litert in this checkout."""
    configured = os.environ.get(CONVERTER_PYTHON_ENV)
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise CompilerUnavailableError(f"{CONVERTER_PYTHON_ENV}={configured} is not a file; {INSTALL_HINT}")
        return path
    bin_dir = "Scripts" if sys.platform == "win32" else "bin"
    for root in (Path.cwd(), _REPOSITORY):
        candidate = root / CONVERTER_VENV / bin_dir / "python"
        if candidate.is_file():
            return candidate
    raise CompilerUnavailableError(f"compiling .tflite needs the LiteRT converter: {INSTALL_HINT}")


def converter_available() -> bool:
    try:
        converter_python()
    except CompilerUnavailableError:
        return False
    return True


def compile_tflite_many(modules: Sequence[tuple[nn.Module, tuple[int, int, int, int]]]) -> list[bytes]:
    """The `.tflite` bytes of each eval-mode module (with its one static float32 input shape), in one converter
    process."""
    if not modules:
        return []
    python = converter_python()
    with tempfile.TemporaryDirectory(prefix="fbnet-litert-") as tmp:
        folder = Path(tmp)
        jobs = []
        for i, (module, input_shape) in enumerate(modules):
            program = folder / f"{i}.pt2"
            try:
                with torch.no_grad():
                    exported = torch.export.export(module.eval(), (torch.zeros(input_shape),), strict=True)
                torch.export.save(exported, program)
            except Exception as exc:  # torch.export raises many unrelated types; one boundary
                raise ExportError(f"torch.export failed for input shape {input_shape}: {exc}") from exc
            jobs.append({"program": str(program), "input_shape": list(input_shape), "output": str(folder / f"{i}.tflite")})
        request = json.dumps({"torch_version": torch.__version__, "jobs": jobs})
        timeout_s = _STARTUP_TIMEOUT_S + _PER_FILE_TIMEOUT_S * len(jobs)
        try:
            completed = subprocess.run(
                # -I: neither the script's folder nor user site-packages on sys.path (the script sees only the converter).
                [str(python), "-I", str(_CONVERTER_SCRIPT)], input=request, capture_output=True, text=True,
                timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ExportError(f"the LiteRT converter ({python}) did not finish in {timeout_s:g} s") from exc
        except OSError as exc:
            raise CompilerUnavailableError(f"cannot run {python}: {exc.strerror or exc}; {INSTALL_HINT}") from exc
        if completed.returncode != 0:
            lines = [line for line in completed.stderr.strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else f"exit status {completed.returncode}"
            if completed.returncode == 3:
                raise CompilerUnavailableError(f"{reason} ({python})")
            raise ExportError(f"LiteRT conversion failed: {reason}")
        return [Path(job["output"]).read_bytes() for job in jobs]
