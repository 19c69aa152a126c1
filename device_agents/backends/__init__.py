"""Measurement backends, one file each; `load_backend` builds one by name and imports only its runtime."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from device_agents.backends.base import Backend, OpInput, Runner, RuntimeInfo
from device_agents.errors import BackendUnavailableError

BACKEND_NAMES = ("onnxruntime", "torch", "executorch", "litert", "adb")
# A model whose tensors add up to more than this is refused before it is loaded (onnxruntime backend).
DEFAULT_MAX_MODEL_MIB = 2048


@dataclass(frozen=True)
class BackendOptions:
    """Every backend's settings, as the command line gives them; each backend reads the ones it knows."""

    threads: int = 1
    cpu_affinity: list[int] | None = None
    provider: str = "CPUExecutionProvider"  # onnxruntime
    graph_optimization: str = "ORT_ENABLE_ALL"  # onnxruntime
    precision: str = "fp32"  # onnxruntime: fp32, or int8 (device_agents/quantize.py)
    torch_device: str = "cpu"  # torch
    cuda_graphs: bool = False  # torch
    adb_tool: str = "onnxruntime_perf_test"  # adb: or executor_runner (ExecuTorch), benchmark_model (LiteRT)
    adb_binary: Path | None = None  # adb
    adb_serial: str | None = None  # adb
    adb_runs_per_invocation: int = 50  # adb
    runtime_version: str | None = None  # adb: the binary's version, when known
    max_model_mib: int = DEFAULT_MAX_MODEL_MIB  # onnxruntime


def load_backend(name: str, options: BackendOptions) -> Backend:
    if name != "onnxruntime" and options.precision != "fp32":
        raise BackendUnavailableError(f"precision {options.precision} needs the onnxruntime backend, not {name}")
    if name == "onnxruntime":
        from device_agents.backends.onnxruntime import OnnxRuntimeBackend

        return OnnxRuntimeBackend(
            options.provider,
            options.threads,
            options.cpu_affinity,
            options.graph_optimization,
            precision=options.precision,
            max_model_bytes=options.max_model_mib << 20,
        )
    if name == "torch":
        from device_agents.backends.torch import TorchBackend

        return TorchBackend(options.torch_device, options.threads, options.cpu_affinity, options.cuda_graphs)
    if name == "executorch":
        from device_agents.backends.executorch import ExecuTorchBackend

        return ExecuTorchBackend(options.threads, options.cpu_affinity)
    if name == "litert":
        from device_agents.backends.litert import LiteRtBackend

        return LiteRtBackend(options.threads, options.cpu_affinity)
    if name == "adb":
        from device_agents.backends.adb import AdbBackend

        if options.adb_binary is None or options.cpu_affinity is None:
            raise BackendUnavailableError("the adb backend needs --adb-binary and --cpu-affinity (the phone's cores)")
        return AdbBackend(
            options.adb_tool,
            options.adb_binary,
            options.cpu_affinity,
            threads=options.threads,
            serial=options.adb_serial,
            runs_per_invocation=options.adb_runs_per_invocation,
            runtime_version=options.runtime_version,
        )
    raise BackendUnavailableError(f"unknown backend {name!r}; one of {', '.join(BACKEND_NAMES)}")


__all__ = ["BACKEND_NAMES", "Backend", "BackendOptions", "OpInput", "Runner", "RuntimeInfo", "load_backend"]
