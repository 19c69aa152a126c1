"""ExecuTorch backend: run each op's `.pte` program (XNNPACK delegate) in process, timed by the shared engine.

The program is the op compiled by the search client (search_client/space/executorch.py) from the same spec as
its ONNX file. ExecuTorch's Python runtime passes torch tensors, so torch is imported here, and only when this
backend is chosen (`pip install 'fbnet-lut[executorch]'`).

Threads: XNNPACK runs on ExecuTorch's one process-wide thread pool, whose size can be set only once per process
(`_unsafe_reset_threadpool`; a second, different size aborts the process), so a second backend in the same
process asking for another thread count is refused instead. torch's own intra-op pool gets the same size: the
runtime takes its inputs as torch tensors, and with torch's default (one thread per core) a run whose input is
large enough for torch to split its copy waits for a second thread - on a busy machine milliseconds per run (the
224 px stem: 8 ms instead of 0.5 ms on this project's 2-core CPU, 16 ms under a real-time priority).
"""

from __future__ import annotations

import importlib.metadata
from typing import Any

from device_agents.backends.base import InProcessRunner, OnThisHost, OpInput, RuntimeInfo
from device_agents.errors import BackendUnavailableError, OpFailedError
from device_agents.system import current_affinity, set_affinity

INSTALL_HINT = "pip install 'fbnet-lut[executorch]'"
DELEGATE = "XnnpackBackend"
# The thread pool's size once this process set it (None: not yet).
_threadpool_threads: int | None = None


def _reset_threadpool(threads: int) -> None:
    global _threadpool_threads
    if _threadpool_threads == threads:
        return
    if _threadpool_threads is not None:
        raise BackendUnavailableError(
            f"ExecuTorch's thread pool already has {_threadpool_threads} threads in this process; "
            f"{threads} needs another process"
        )
    from executorch.extension.pybindings import portable_lib

    portable_lib._unsafe_reset_threadpool(threads)
    _threadpool_threads = threads


class ExecuTorchRunner(InProcessRunner):
    def __init__(self, method: Any, inputs: list[Any]) -> None:
        self._method = method
        self._inputs = inputs

    def run_once(self) -> None:
        self._method.execute(self._inputs)


class ExecuTorchBackend(OnThisHost):
    name = "executorch"
    model_format = "pte"

    def __init__(self, threads: int = 1, cpu_affinity: list[int] | None = None) -> None:
        try:
            import torch
            from executorch.runtime import Runtime, Verification
        except ImportError as exc:
            raise BackendUnavailableError(f"the executorch backend needs ExecuTorch: {INSTALL_HINT} ({exc})") from exc
        if threads < 1:
            raise BackendUnavailableError("threads must be >= 1")
        if cpu_affinity is not None:
            # Before the thread pool exists: its threads inherit the process affinity.
            set_affinity(cpu_affinity)
        _reset_threadpool(threads)
        torch.set_num_threads(threads)
        self._torch = torch
        self._runtime = Runtime.get()
        self._verification = Verification.Minimal
        self._threads = threads

    def runtime_info(self) -> RuntimeInfo:
        return RuntimeInfo(
            runtime="executorch",
            runtime_version=importlib.metadata.version("executorch"),
            execution_provider=DELEGATE,
            threads=self._threads,
            cpu_affinity=current_affinity(),
            graph_optimization=None,
            extra={
                "delegate": DELEGATE,
                "model_format": self.model_format,
                "threadpool": "process-wide",
                "torch_threads": self._torch.get_num_threads(),
            },
        )

    def prepare(self, op: OpInput) -> ExecuTorchRunner:
        path = op.file_in(self.model_format)
        try:
            program = self._runtime.load_program(path, verification=self._verification)
            method = program.load_method("forward")
            meta = method.metadata
            generator = self._torch.Generator().manual_seed(0)
            inputs = []
            for index in range(meta.num_inputs()):
                sizes = tuple(meta.input_tensor_meta(index).sizes())
                inputs.append(self._torch.randn(sizes, generator=generator))
        except Exception as exc:  # the runtime raises RuntimeError and its own pybind types alike
            raise OpFailedError(f"ExecuTorch could not load {path.name}: {exc}") from exc
        runner = ExecuTorchRunner(method, inputs)
        try:
            runner.run_once()  # a runtime error must fail here, as the op's failure, not mid-timing
        except Exception as exc:
            raise OpFailedError(f"ExecuTorch failed to run {path.name}: {exc}") from exc
        return runner
