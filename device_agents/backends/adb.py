"""Android over adb: push the op's model in the tool's format (ONNX for onnxruntime_perf_test, .pte for
ExecuTorch's executor_runner, .tflite for LiteRT's benchmark_model) and a user-supplied benchmark binary, pin it
with taskset, run it, and parse its output strictly.

Each invocation of the binary runs the op `runs_per_invocation` times and reports their mean; one invocation
is one sample for the shared timing engine, which repeats invocations until the median of those means is
known to the target precision (so thermal drift between invocations shows up in the samples). Sensors and
the device description come from the phone, not from the host driving it.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_agents import AGENT_VERSION
from device_agents.backends.base import OpInput, RuntimeInfo
from device_agents.backends.tool_output import (
    ToolReading,
    parse_executor_runner,
    parse_ort_perf_test,
    parse_tflite_benchmark_model,
)
from device_agents.errors import BackendUnavailableError, OpFailedError
from device_agents.system import SensorReadings
from device_agents.timing import Clock, Measurement, TimingPolicy, measure
from fbnet_core.model_formats import FORMAT_SUFFIX

CommandRunner = Callable[[list[str], float], str]  # argv, timeout in seconds -> combined output

# One shell line that prints every thermal zone and cpufreq reading as tagged lines (missing files: empty).
_SENSOR_SCRIPT = (
    "for z in /sys/class/thermal/thermal_zone*; do echo \"T $(cat $z/type 2>/dev/null) $(cat $z/temp 2>/dev/null)\";"
    " done; for c in /sys/devices/system/cpu/cpu[0-9]*; do echo \"F ${c##*/}"
    " $(cat $c/cpufreq/scaling_cur_freq 2>/dev/null) $(cat $c/cpufreq/scaling_governor 2>/dev/null)\"; done"
)


def run_command(argv: list[str], timeout_s: float) -> str:
    """Run a host command; a non-zero exit or a timeout is the op's failure, with the output as reason."""
    try:
        completed = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        raise OpFailedError(f"timed out after {timeout_s:g} s: {shlex.join(argv)}") from exc
    except OSError as exc:
        raise BackendUnavailableError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    output = completed.stdout + completed.stderr
    if completed.returncode != 0:
        raise OpFailedError(f"{shlex.join(argv)} exited with {completed.returncode}; output was:\n{output[-2000:]}")
    return output


def cpu_mask(cpus: list[int]) -> str:
    """taskset's hexadecimal mask: [4, 5, 6, 7] -> 'f0'."""
    return format(sum(1 << cpu for cpu in set(cpus)), "x")


@dataclass(frozen=True)
class BenchmarkTool:
    """How to drive one benchmark binary: its runtime, the model format it loads, its command line and its parser."""

    name: str
    runtime: str
    model_format: str
    parse: Callable[[str], ToolReading]

    def arguments(self, remote_model: str, threads: int, runs: int) -> list[str]:
        if self.name == "onnxruntime_perf_test":
            # -I: random inputs from the model's static shapes; -m times -r: fixed run count; -y 1: no inter-op pool.
            return ["-e", "cpu", "-I", "-m", "times", "-r", str(runs), "-x", str(threads), "-y", "1", remote_model]
        if self.name == "executor_runner":
            # Inputs are all ones (the tool's own choice); one run more than asked: the first, cold, is left out.
            return [f"--model_path={remote_model}", f"--num_executions={runs + 1}", f"--cpu_threads={threads}"]
        return [f"--graph={remote_model}", f"--num_threads={threads}", f"--num_runs={runs}", "--min_secs=0",
                "--warmup_runs=5", "--warmup_min_secs=0"]


TOOLS = {
    "onnxruntime_perf_test": BenchmarkTool("onnxruntime_perf_test", "onnxruntime", "onnx", parse_ort_perf_test),
    "executor_runner": BenchmarkTool("executor_runner", "executorch", "pte", parse_executor_runner),
    "benchmark_model": BenchmarkTool("benchmark_model", "litert", "tflite", parse_tflite_benchmark_model),
}


# What runs the op inside each tool: onnxruntime's CPU provider; the XNNPACK delegate the .pte was compiled for;
# XNNPACK, LiteRT's default CPU delegate for float models.
_EXECUTION_PROVIDER = {"onnxruntime": "CPUExecutionProvider", "executorch": "XnnpackBackend", "litert": "XNNPACK"}


def parse_sensor_lines(output: str) -> SensorReadings:
    temperatures: dict[str, float] = {}
    freqs: dict[str, float] = {}
    governors: dict[str, str] = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "T" and parts[2].lstrip("-").isdigit():
            name = parts[1] if parts[1] not in temperatures else f"{parts[1]}.{len(temperatures)}"
            # Android kernels report millidegrees, a few old ones whole degrees.
            raw = int(parts[2])
            temperatures[name] = raw / 1000.0 if abs(raw) >= 1000 else float(raw)
        elif len(parts) >= 3 and parts[0] == "F" and parts[2].isdigit():
            freqs[parts[1]] = int(parts[2]) / 1000.0
            if len(parts) == 4:
                governors[parts[1]] = parts[3]
    return SensorReadings(temperatures or None, freqs or None, governors or None)


class AdbRunner:
    def __init__(self, backend: AdbBackend, remote_model: str) -> None:
        self._backend = backend
        self._remote_model = remote_model

    def run_invocation(self) -> float:
        return self._backend.invoke(self._remote_model).mean_us / 1e6

    def measure(self, policy: TimingPolicy, clock: Clock = time.perf_counter) -> Measurement:
        return measure(self.run_invocation, policy, clock)

    def close(self) -> None:
        return None  # pushed models stay cached on the phone under their sha256


class AdbBackend:
    name = "adb"

    def __init__(
        self,
        tool: str,
        binary: Path,
        cpus: list[int],
        threads: int = 1,
        serial: str | None = None,
        runs_per_invocation: int = 50,
        runtime_version: str | None = None,
        adb: str = "adb",
        remote_dir: str = "/data/local/tmp/fbnet-lut",
        invocation_timeout_s: float = 300.0,
        run: CommandRunner = run_command,
    ) -> None:
        if tool not in TOOLS:
            raise BackendUnavailableError(f"unknown benchmark tool {tool!r}; one of {', '.join(TOOLS)}")
        if not binary.is_file():
            raise BackendUnavailableError(f"benchmark binary not found: {binary}")
        self._tool = TOOLS[tool]
        self.model_format = self._tool.model_format
        self._cpus = sorted(set(cpus))
        self._threads = threads
        self._runs = runs_per_invocation
        self._adb = [adb, *(["-s", serial] if serial else [])]
        self._remote_dir = remote_dir
        self._timeout_s = invocation_timeout_s
        self._run = run
        binary_sha256 = hashlib.sha256(binary.read_bytes()).hexdigest()
        # The build matters (two builds of one runtime version can time differently): without a stated version, the
        # binary's hash names it.
        self._runtime_version = runtime_version or f"binary-sha256:{binary_sha256[:16]}"
        self._pushed: set[str] = set()
        state = self._run([*self._adb, "get-state"], 30.0).strip()
        if state != "device":
            raise BackendUnavailableError(f"adb device is {state!r}, not 'device'")
        self._remote_binary = f"{remote_dir}/{tool}"
        self.shell(f"mkdir -p {shlex.quote(remote_dir)}")
        self._run([*self._adb, "push", str(binary), self._remote_binary], self._timeout_s)
        self.shell(f"chmod 755 {shlex.quote(self._remote_binary)}")

    def shell(self, command: str, timeout_s: float = 60.0) -> str:
        return self._run([*self._adb, "shell", command], timeout_s)

    def invoke(self, remote_model: str) -> ToolReading:
        arguments = self._tool.arguments(remote_model, self._threads, self._runs)
        command = shlex.join(["taskset", cpu_mask(self._cpus), self._remote_binary, *arguments])
        return self._tool.parse(self.shell(command, self._timeout_s))

    def prepare(self, op: OpInput) -> AdbRunner:
        local = op.file_in(self.model_format)
        try:
            content = local.read_bytes()
        except OSError as exc:
            raise OpFailedError(f"{self._tool.name} needs {local}: {exc.strerror or exc}") from exc
        # Named by its own content: the phone's cache never serves a stale file under a reused name.
        remote = f"{self._remote_dir}/{hashlib.sha256(content).hexdigest()}{FORMAT_SUFFIX[self.model_format]}"
        if remote not in self._pushed:
            self._run([*self._adb, "push", str(local), remote], self._timeout_s)
            self._pushed.add(remote)
        runner = AdbRunner(self, remote)
        runner.run_invocation()  # a model the tool cannot run fails here, before any timing
        return runner

    def runtime_info(self) -> RuntimeInfo:
        return RuntimeInfo(
            runtime=self._tool.runtime,
            runtime_version=self._runtime_version,
            execution_provider=_EXECUTION_PROVIDER[self._tool.runtime],
            threads=self._threads,
            cpu_affinity=self._cpus,
            graph_optimization="ORT_ENABLE_ALL" if self._tool.runtime == "onnxruntime" else None,
            extra={"benchmark_tool": self._tool.name, "runs_per_sample": self._runs, "model_format": self.model_format,
                   "sample": "mean of runs_per_sample runs in one invocation of the tool"},
        )

    def read_sensors(self) -> SensorReadings:
        try:
            return parse_sensor_lines(self.shell(_SENSOR_SCRIPT))
        except OpFailedError:
            return SensorReadings(None, None, None)  # no sensor access is not a failed op

    def describe_device(self) -> dict[str, Any]:
        props = {}
        for prop in ("ro.product.manufacturer", "ro.product.model", "ro.build.version.release", "ro.soc.model",
                     "ro.board.platform", "ro.product.cpu.abi"):
            props[prop] = self.shell(f"getprop {prop}").strip() or None
        cores = self.shell("nproc").strip()
        return {
            "hostname": " ".join(filter(None, [props["ro.product.manufacturer"], props["ro.product.model"]])) or None,
            "platform": f"android-{props['ro.product.cpu.abi'] or 'unknown'}",
            "os": f"Android {props['ro.build.version.release']}",
            "cpu_model": props["ro.soc.model"] or props["ro.board.platform"],
            "cpu_cores": int(cores) if cores.isdigit() else None,
            "agent_version": AGENT_VERSION,
        }
