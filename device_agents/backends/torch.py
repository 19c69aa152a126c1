"""PyTorch backend: rebuild the op from its spec with the search client's block registry, run it eagerly
on CPU or CUDA (CUDA events around each run; optionally one captured CUDA graph replayed per run).

torch and search_client are imported only when this backend is chosen: the agent itself needs no torch.
"""

from __future__ import annotations

from typing import Any

from device_agents.backends.base import InProcessRunner, OnThisHost, OpInput, RuntimeInfo
from device_agents.errors import BackendUnavailableError, OpFailedError
from device_agents.system import current_affinity, set_affinity
from device_agents.timing import Clock, PreemptionCounter, TimeOneRun

_CUDA_GRAPH_WARMUP_RUNS = 3  # eager runs on a side stream before capture (cuDNN picks its kernels there)


class TorchCpuRunner(InProcessRunner):
    def __init__(self, module: Any, example: Any) -> None:
        self._module = module
        self._example = example

    def run_once(self) -> None:
        self._module(self._example)


class TorchCudaRunner(InProcessRunner):
    """Timed by CUDA events on the device: host launch overhead is excluded only where the GPU is idle-bound."""

    def __init__(self, torch: Any, module: Any, example: Any, cuda_graphs: bool) -> None:
        self._torch = torch
        self._module = module
        self._example = example
        self._graph = None
        if cuda_graphs:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(_CUDA_GRAPH_WARMUP_RUNS):
                    module(example)
            torch.cuda.current_stream().wait_stream(stream)
            self._graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self._graph):
                self._static_output = module(example)
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def run_once(self) -> None:
        if self._graph is not None:
            self._graph.replay()
        else:
            self._module(self._example)

    def time_one_run(self, clock: Clock) -> TimeOneRun:
        def time_one_run() -> float:
            self._start.record()
            self.run_once()
            self._end.record()
            self._end.synchronize()
            return self._start.elapsed_time(self._end) / 1e3  # elapsed_time is in milliseconds

        return time_one_run

    def preemption_counter(self) -> PreemptionCounter | None:
        return None  # the GPU's events time the GPU: a descheduled host thread does not inflate them

    def close(self) -> None:
        self._graph = None
        self._torch.cuda.empty_cache()


class TorchBackend(OnThisHost):
    name = "torch"
    model_format = "onnx"

    def __init__(
        self,
        device: str = "cpu",
        threads: int = 1,
        cpu_affinity: list[int] | None = None,
        cuda_graphs: bool = False,
    ) -> None:
        try:
            import torch
        except ImportError as exc:
            raise BackendUnavailableError("the torch backend needs PyTorch: pip install 'fbnet-lut[search]'") from exc
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"device {device!r} asked for, but torch sees no CUDA device")
        if device != "cpu" and not device.startswith("cuda"):
            raise BackendUnavailableError(f"device must be 'cpu' or 'cuda[:N]', not {device!r}")
        if cuda_graphs and not device.startswith("cuda"):
            raise BackendUnavailableError("CUDA graphs need a CUDA device")
        if cpu_affinity is not None:
            set_affinity(cpu_affinity)  # before torch starts its intra-op pool: its threads inherit it
        torch.set_num_threads(threads)
        self._torch = torch
        self._device = device
        self._threads = threads
        self._cuda_graphs = cuda_graphs

    def runtime_info(self) -> RuntimeInfo:
        torch = self._torch
        extra: dict[str, Any] = {"dtype": "float32", "grad": False}
        if self._device.startswith("cuda"):
            extra.update(
                gpu=torch.cuda.get_device_name(torch.device(self._device)),
                cuda_version=torch.version.cuda,
                cudnn_version=torch.backends.cudnn.version(),
                cudnn_benchmark=torch.backends.cudnn.benchmark,
                timer="cuda_events",
            )
        return RuntimeInfo(
            runtime="torch",
            runtime_version=torch.__version__,
            execution_provider=self._device,
            threads=self._threads,
            cpu_affinity=current_affinity(),
            graph_optimization="cuda_graphs" if self._cuda_graphs else "eager",
            extra=extra,
        )

    def prepare(self, op: OpInput) -> InProcessRunner:
        from fbnet_core.errors import FbnetLutError
        from fbnet_core.keys import op_input_shape
        from search_client.space.export import seeded_eval_op

        torch = self._torch
        try:
            module = seeded_eval_op(op.spec).to(self._device)  # the same weights as the ONNX file
            example = torch.randn(op_input_shape(op.spec), device=self._device)
        except FbnetLutError as exc:
            raise OpFailedError(f"cannot rebuild {op.key} from its spec: {exc}") from exc
        for parameter in module.parameters():
            parameter.requires_grad_(False)  # no autograd graph per run, without global grad state
        try:
            runner: InProcessRunner
            if self._device.startswith("cuda"):
                runner = TorchCudaRunner(torch, module, example, self._cuda_graphs)
            else:
                runner = TorchCpuRunner(module, example)
            runner.run_once()
        except RuntimeError as exc:  # out of memory, unsupported kernel, failed capture
            raise OpFailedError(f"torch failed to run {op.key}: {exc}") from exc
        return runner


