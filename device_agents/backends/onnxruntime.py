"""onnxruntime backend: any installed execution provider, fixed threads, optimisation level recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort

from device_agents.backends.base import InProcessRunner, OnThisHost, OpInput, RuntimeInfo
from device_agents.errors import BackendUnavailableError, OpFailedError
from device_agents.quantize import INT8_RECIPE, PRECISIONS, Int8Quantizer
from device_agents.system import current_affinity, set_affinity
from fbnet_core.onnx_safety import UnsafeModelError, check_allocation

GRAPH_OPTIMIZATION_LEVELS = {
    "ORT_DISABLE_ALL": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "ORT_ENABLE_BASIC": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "ORT_ENABLE_EXTENDED": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "ORT_ENABLE_ALL": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


class OnnxRuntimeRunner(InProcessRunner):
    def __init__(self, session: ort.InferenceSession, feed: dict[str, np.ndarray]) -> None:
        self._session = session
        # IOBinding keeps the input resident and skips the Python-side output conversion each run.
        self._binding = session.io_binding()
        for name, value in feed.items():
            self._binding.bind_cpu_input(name, value)
        for output in session.get_outputs():
            self._binding.bind_output(output.name)

    def run_once(self) -> None:
        self._session.run_with_iobinding(self._binding)


class OnnxRuntimeBackend(OnThisHost):
    name = "onnxruntime"
    model_format = "onnx"

    def __init__(
        self,
        provider: str = "CPUExecutionProvider",
        threads: int = 1,
        cpu_affinity: list[int] | None = None,
        graph_optimization: str = "ORT_ENABLE_ALL",
        provider_options: dict[str, Any] | None = None,
        precision: str = "fp32",
        max_model_bytes: int = 2 << 30,
    ) -> None:
        available = ort.get_available_providers()
        if provider not in available:
            raise BackendUnavailableError(
                f"execution provider {provider!r} is not installed here; available: {', '.join(available)}"
            )
        if graph_optimization not in GRAPH_OPTIMIZATION_LEVELS:
            raise BackendUnavailableError(
                f"unknown graph optimisation {graph_optimization!r}; one of {', '.join(GRAPH_OPTIMIZATION_LEVELS)}"
            )
        if precision not in PRECISIONS:
            raise BackendUnavailableError(f"unknown precision {precision!r}; one of {', '.join(PRECISIONS)}")
        if threads < 1:
            raise BackendUnavailableError("threads must be >= 1 (0 would let onnxruntime pick, unrecorded)")
        if cpu_affinity is not None:
            # Before any session exists: onnxruntime's pool threads inherit the process affinity.
            set_affinity(cpu_affinity)
        self._provider = provider
        self._provider_options = provider_options or {}
        self._threads = threads
        self._graph_optimization = graph_optimization
        self._precision = precision
        self._int8 = Int8Quantizer() if precision == "int8" else None
        self._max_model_bytes = max_model_bytes

    def runtime_info(self) -> RuntimeInfo:
        return RuntimeInfo(
            runtime="onnxruntime",
            runtime_version=ort.__version__,
            execution_provider=self._provider,
            threads=self._threads,
            cpu_affinity=current_affinity(),
            graph_optimization=self._graph_optimization,
            extra={
                "inter_op_threads": 1, "execution_mode": "ORT_SEQUENTIAL", "io_binding": True,
                "precision": self._precision, **({"quantization": INT8_RECIPE} if self._int8 else {}),
            },
        )  # fmt: skip

    def _session_options(self) -> ort.SessionOptions:
        options = ort.SessionOptions()
        options.intra_op_num_threads = self._threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = GRAPH_OPTIMIZATION_LEVELS[self._graph_optimization]
        options.log_severity_level = 3  # errors only: warnings would flood the agent's log per op
        return options

    def _check_allocation(self, model_path: Path) -> None:
        """Refuse, before onnxruntime allocates anything, a model whose tensors would exceed this device's bound."""
        try:
            model = onnx.load(str(model_path))
        except Exception:  # not a model (DecodeError, a missing file...): onnxruntime's load says so, below
            return
        try:
            check_allocation(model, max_total_bytes=self._max_model_bytes)
        except UnsafeModelError as exc:
            raise OpFailedError(f"refused to load {model_path.name}: {exc}") from exc

    def prepare(self, op: OpInput) -> OnnxRuntimeRunner:
        onnx_path = op.file_in("onnx")
        self._check_allocation(onnx_path)
        model_path = self._int8.quantized(onnx_path, op.onnx_sha256) if self._int8 else onnx_path
        try:
            session = ort.InferenceSession(
                str(model_path),
                sess_options=self._session_options(),
                providers=[(self._provider, self._provider_options)],
            )
        except Exception as exc:  # onnxruntime raises its own pybind classes (Fail, InvalidProtobuf, ...)
            raise OpFailedError(f"onnxruntime could not load {onnx_path.name}: {exc}") from exc
        feed = {}
        rng = np.random.default_rng(0)
        for model_input in session.get_inputs():
            shape = model_input.shape
            if not all(isinstance(dim, int) and dim > 0 for dim in shape):
                raise OpFailedError(f"input {model_input.name!r} has a non-static shape {shape}")
            if model_input.type != "tensor(float)":
                raise OpFailedError(f"input {model_input.name!r} is {model_input.type}, expected tensor(float)")
            feed[model_input.name] = rng.standard_normal(shape).astype(np.float32)
        runner = OnnxRuntimeRunner(session, feed)
        try:
            runner.run_once()  # a runtime error must fail here, as the op's failure, not mid-timing
        except Exception as exc:
            raise OpFailedError(f"onnxruntime failed to run {onnx_path.name}: {exc}") from exc
        return runner
