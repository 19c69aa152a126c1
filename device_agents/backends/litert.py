"""LiteRT backend: run each op's `.tflite` model with LiteRT's interpreter in process (XNNPACK, the interpreter's
default CPU delegate for float models), timed by the shared engine.

The model is the op converted by the search client (search_client/space/litert.py) from the same spec as its ONNX
file. Only the runtime is needed here (`pip install 'fbnet-lut[litert]'`: ai-edge-litert, no torch, no
TensorFlow), not the converter.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

import numpy as np

from device_agents.backends.base import InProcessRunner, OnThisHost, OpInput, RuntimeInfo
from device_agents.errors import BackendUnavailableError, OpFailedError
from device_agents.system import current_affinity, set_affinity

INSTALL_HINT = "pip install 'fbnet-lut[litert]'"
DELEGATE = "XNNPACK"


class LiteRtRunner(InProcessRunner):
    def __init__(self, interpreter: Any) -> None:
        self._interpreter = interpreter

    def run_once(self) -> None:
        self._interpreter.invoke()


class LiteRtBackend(OnThisHost):
    name = "litert"
    model_format = "tflite"

    def __init__(self, threads: int = 1, cpu_affinity: list[int] | None = None) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as exc:
            raise BackendUnavailableError(f"the litert backend needs LiteRT: {INSTALL_HINT} ({exc})") from exc
        if threads < 1:
            raise BackendUnavailableError("threads must be >= 1 (-1 would let LiteRT pick, unrecorded)")
        if cpu_affinity is not None:
            # Before any interpreter exists: XNNPACK's pool threads inherit the process affinity.
            set_affinity(cpu_affinity)
        self._interpreter_class = Interpreter
        self._threads = threads

    def runtime_info(self) -> RuntimeInfo:
        return RuntimeInfo(
            runtime="litert",
            runtime_version=importlib.metadata.version("ai-edge-litert"),
            execution_provider=DELEGATE,
            threads=self._threads,
            cpu_affinity=current_affinity(),
            graph_optimization=None,
            extra={"delegate": f"{DELEGATE} (the interpreter's default)", "model_format": self.model_format},
        )

    def prepare(self, op: OpInput) -> LiteRtRunner:
        path = op.file_in(self.model_format)
        try:
            interpreter = self._interpreter_class(model_path=str(path), num_threads=self._threads)
            interpreter.allocate_tensors()
            rng = np.random.default_rng(0)
            for detail in interpreter.get_input_details():
                if detail["dtype"] != np.float32:
                    raise OpFailedError(f"input {detail['name']!r} is {detail['dtype']}, expected float32")
                interpreter.set_tensor(detail["index"], rng.standard_normal(detail["shape"]).astype(np.float32))
        except OpFailedError:
            raise
        except Exception as exc:  # the interpreter raises ValueError and RuntimeError alike for a bad model
            raise OpFailedError(f"LiteRT could not load {path.name}: {exc}") from exc
        runner = LiteRtRunner(interpreter)
        try:
            runner.run_once()  # a runtime error must fail here, as the op's failure, not mid-timing
        except Exception as exc:
            raise OpFailedError(f"LiteRT failed to run {path.name}: {exc}") from exc
        return runner
