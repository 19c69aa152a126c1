"""The `device-agent` command line: info, profile (offline), upload, run (online)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from device_agents.backends import BACKEND_NAMES, DEFAULT_MAX_MODEL_MIB, Backend, BackendOptions, load_backend
from device_agents.errors import AgentError
from device_agents.system import parse_cpu_list
from device_agents.timing import TimingPolicy
from fbnet_core.cli_boundary import Interrupted, run_cli
from fbnet_core.dev_tokens import DevTokens

# Plain click help: it wraps long option names (--speed-reference...) at 80 columns instead of cutting them.
app = typer.Typer(
    no_args_is_help=True, add_completion=False, rich_markup_mode=None, help="Measure ONNX ops on this device for the LUT."
)

BackendName = Annotated[str, typer.Option("--backend", help=f"One of {', '.join(BACKEND_NAMES)}.")]
Provider = Annotated[str, typer.Option(help="onnxruntime execution provider.")]
Threads = Annotated[int, typer.Option(min=1, help="Intra-op threads (1 for a stable LUT).")]
Affinity = Annotated[
    str | None, typer.Option("--cpu-affinity", help="CPUs to pin to, e.g. '0' or '4-7' (the phone's for adb).")
]
GraphOptimization = Annotated[str, typer.Option(help="onnxruntime graph optimisation level.")]
Precision = Annotated[
    str,
    typer.Option(help="onnxruntime: fp32, or int8 = each op statically quantised here before timing (an int8 "
                 "deployment is its own device: give it its own --device)."),
]
TorchDevice = Annotated[str, typer.Option(help="torch backend: 'cpu' or 'cuda[:N]'.")]
CudaGraphs = Annotated[bool, typer.Option(help="torch backend on CUDA: replay one captured CUDA graph per run.")]
AdbTool = Annotated[
    str, typer.Option(help="adb: onnxruntime_perf_test, executor_runner (ExecuTorch) or benchmark_model (LiteRT).")
]
AdbBinary = Annotated[Path | None, typer.Option(help="adb: the benchmark binary built for the phone.")]
AdbSerial = Annotated[str | None, typer.Option(help="adb: device serial when several are attached.")]
RuntimeVersion = Annotated[str | None, typer.Option(help="adb: the binary's runtime version, when known.")]
AdbRuns = Annotated[int, typer.Option(min=1, help="adb: runs per invocation of the tool (one sample = their mean).")]
MaxS = Annotated[float, typer.Option(min=0.01, help="Per-op cap on the timed phase, seconds.")]
TargetCi = Annotated[float, typer.Option(min=0.001, max=0.5, help="Stop when the median's 95% CI is within this.")]
WarmupMaxS = Annotated[float, typer.Option(min=0.0, help="Per-op cap on the warm-up, seconds.")]
CooldownS = Annotated[float, typer.Option(min=0.0, help="Idle seconds before each op (thermal cool-down).")]
OpTimeoutS = Annotated[float, typer.Option(min=1.0, help="An op running longer than this is failed.")]
RealtimePriority = Annotated[
    int,
    typer.Option(min=0, max=99, help="Measure under SCHED_FIFO at this priority (1-99; needs root or "
                 "CAP_SYS_NICE), so other processes cannot preempt a timed run; 0: the OS default policy."),
]
SpeedReferenceModel = Annotated[
    Path | None,
    typer.Option("--speed-reference", help="Time every run against this model (in the backend's format: .onnx, "
                 ".pte, .tflite) run right after it, so the machine's speed phases cancel (e.g. `dnas export --model "
                 "fbnet_a`, with the space's options for a small space; docs/agents.md)."),
]
InvocationOverhead = Annotated[
    bool,
    typer.Option("--invocation-overhead/--no-invocation-overhead",
                 help="Also measure the runtime's per-invocation overhead at each op's input and output shapes "
                      "(a network pays it once; the LUT serves it with the entry; docs/agents.md)."),
]
MaxModelMib = Annotated[
    int,
    typer.Option(min=1, help="onnxruntime: refuse (fail the op) a model whose tensors add up to more than this "
                 "many MiB, from shape inference, before loading it."),
]
# The same names as `dnas`: --server (or PROFILER_URL) and --device (--name still accepted).
ServerUrl = Annotated[str, typer.Option("--server", envvar="PROFILER_URL", help="Server URL, e.g. http://127.0.0.1:8000.")]
StateDir = Annotated[
    Path | None, typer.Option(envvar="PROFILER_STATE_DIR", help="Agent state root (token, spool, ONNX cache).")
]


def _fail(message: str) -> typer.Exit:
    typer.secho(f"device-agent: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(2)


def _backend_options(
    threads: int, cpu_affinity: str | None, provider: str, graph_optimization: str, precision: str,
    torch_device: str, cuda_graphs: bool, adb_tool: str, adb_binary: Path | None, adb_serial: str | None,
    runtime_version: str | None, adb_runs: int, max_model_mib: int = DEFAULT_MAX_MODEL_MIB,
) -> BackendOptions:
    try:
        cpus = parse_cpu_list(cpu_affinity) if cpu_affinity else None
    except ValueError as exc:
        raise _fail(f"--cpu-affinity: {exc}") from exc
    return BackendOptions(
        threads=threads, cpu_affinity=cpus, provider=provider, graph_optimization=graph_optimization,
        precision=precision, torch_device=torch_device, cuda_graphs=cuda_graphs, adb_tool=adb_tool,
        adb_binary=adb_binary, adb_serial=adb_serial, runtime_version=runtime_version, adb_runs_per_invocation=adb_runs,
        max_model_mib=max_model_mib,
    )


def _policy(max_s: float, target_ci: float, warmup_max_s: float, cooldown_s: float, op_timeout_s: float) -> TimingPolicy:
    return TimingPolicy(max_s=max_s, target_ci_rel=target_ci, warmup_max_s=warmup_max_s, cooldown_s=cooldown_s,
                        op_timeout_s=op_timeout_s)


def _with_speed_reference(backend: Backend, reference: Path | None, state_dir: Path | None) -> Backend:
    """The backend itself, or paired with the speed reference (calibrated once, kept under the state root)."""
    if reference is None:
        return backend
    from device_agents.speed_reference import SpeedReferencedBackend
    from device_agents.state import default_state_dir

    return SpeedReferencedBackend(backend, reference, state_dir or default_state_dir())


def _with_overhead(backend: Backend, enabled: bool) -> Backend:
    """The backend, its measurements carrying the invocation overhead of each op's shapes (overhead.py)."""
    if not enabled:
        return backend
    from device_agents.overhead import OverheadMeasuringBackend

    return OverheadMeasuringBackend(backend)


def _apply_realtime_priority(priority: int) -> None:
    """Before the backend starts its runtime threads: they inherit the policy."""
    if priority > 0:
        from device_agents.scheduling import set_realtime_priority

        set_realtime_priority(priority)


def _setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request would drown the progress


@app.command()
def info(
    backend: BackendName = "onnxruntime",
    provider: Provider = "CPUExecutionProvider",
    threads: Threads = 1,
    cpu_affinity: Affinity = None,
    graph_optimization: GraphOptimization = "ORT_ENABLE_ALL",
    precision: Precision = "fp32",
    torch_device: TorchDevice = "cpu",
    cuda_graphs: CudaGraphs = False,
    adb_tool: AdbTool = "onnxruntime_perf_test",
    adb_binary: AdbBinary = None,
    adb_serial: AdbSerial = None,
    runtime_version: RuntimeVersion = None,
    adb_runs: AdbRuns = 50,
) -> None:
    """Print, as JSON, the description this agent would register and the runtime it would measure with."""
    options = _backend_options(threads, cpu_affinity, provider, graph_optimization, precision, torch_device,
                               cuda_graphs, adb_tool, adb_binary, adb_serial, runtime_version, adb_runs)
    try:
        chosen = load_backend(backend, options)
        description = {"device": chosen.describe_device(), "runtime": chosen.runtime_info().__dict__,
                       "sensors": chosen.read_sensors().__dict__}
    except AgentError as exc:
        raise _fail(str(exc)) from exc
    typer.echo(json.dumps(description, indent=2))


@app.command()
def profile(
    ops: Annotated[Path, typer.Option("--ops", help="ops.jsonl written by `dnas export-ops`.")],
    out: Annotated[Path, typer.Option("-o", "--out", "--output", help="results.jsonl to append to (resumable).")],
    backend: BackendName = "onnxruntime",
    provider: Provider = "CPUExecutionProvider",
    threads: Threads = 1,
    cpu_affinity: Affinity = None,
    graph_optimization: GraphOptimization = "ORT_ENABLE_ALL",
    precision: Precision = "fp32",
    torch_device: TorchDevice = "cpu",
    cuda_graphs: CudaGraphs = False,
    adb_tool: AdbTool = "onnxruntime_perf_test",
    adb_binary: AdbBinary = None,
    adb_serial: AdbSerial = None,
    runtime_version: RuntimeVersion = None,
    adb_runs: AdbRuns = 50,
    max_model_mib: MaxModelMib = DEFAULT_MAX_MODEL_MIB,
    max_s: MaxS = 1.0,
    target_ci: TargetCi = 0.01,
    warmup_max_s: WarmupMaxS = 0.5,
    cooldown_s: CooldownS = 0.0,
    op_timeout_s: OpTimeoutS = 120.0,
    realtime_priority: RealtimePriority = 0,
    speed_reference: SpeedReferenceModel = None,
    invocation_overhead: InvocationOverhead = True,
    state_dir: StateDir = None,
) -> None:
    """Measure every op of a manifest without a server; keys already measured in --out are skipped."""
    from device_agents.manifest import read_ops
    from device_agents.offline import profile as run_profile

    _setup_logging()
    options = _backend_options(threads, cpu_affinity, provider, graph_optimization, precision, torch_device,
                               cuda_graphs, adb_tool, adb_binary, adb_serial, runtime_version, adb_runs, max_model_mib)
    try:
        policy = _policy(max_s, target_ci, warmup_max_s, cooldown_s, op_timeout_s)
        _apply_realtime_priority(realtime_priority)
        referenced = _with_speed_reference(load_backend(backend, options), speed_reference, state_dir)
        op_inputs = read_ops(ops, referenced.model_format)
        chosen = _with_overhead(referenced, invocation_overhead)
        summary = run_profile(op_inputs, out, chosen, policy, manifest=ops)
    except (AgentError, ValueError) as exc:
        raise _fail(str(exc)) from exc
    typer.echo(f"measured {summary.measured}, failed {summary.failed}, skipped {summary.skipped} (already in {out})")
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def upload(
    results: Annotated[Path, typer.Argument(help="results.jsonl written by `device-agent profile`.")],
    server: ServerUrl,
    name: Annotated[str, typer.Option("--device", "--name", help="This device's name on the server.")],
    enroll_token: Annotated[
        str | None, typer.Option(envvar="PROFILER_ENROLL_TOKEN", help="Needed only if the device is not registered yet.")
    ] = None,
    ops: Annotated[
        Path | None,
        typer.Option("--ops", help="The ops.jsonl the results were measured from; default: the one `profile` "
                     "recorded. Ops the server lacks are registered from it first (admin token)."),
    ] = None,
    admin_token: Annotated[
        str | None,
        typer.Option(envvar="PROFILER_ADMIN_TOKEN", help="Registers ops the server lacks; default: the dev tokens file."),
    ] = None,
    state_dir: Annotated[Path | None, typer.Option(envvar="PROFILER_STATE_DIR", help="Agent state root.")] = None,
) -> None:
    """Send offline results to the server (registering the measured ops it lacks first); safe to repeat (each
    result_id is stored once)."""
    import threading

    from device_agents.online import AgentSettings, ensure_registered
    from device_agents.state import AgentPaths, default_state_dir
    from device_agents.upload import (
        for_server,
        measured_format,
        ops_to_register,
        recorded_manifests,
        register_ops,
        unknown_keys,
    )
    from fbnet_core.client import ProfilerClient, ProfilerError
    from fbnet_core.formats.results import read_results

    _setup_logging(logging.WARNING)  # a one-off command: its outcome is its stdout, problems its stderr
    paths = AgentPaths.for_agent(state_dir or default_state_dir(), name)
    settings = AgentSettings(server_url=server, name=name, paths=paths)
    if not results.is_file():
        raise _fail(f"{results}: no such file (write one with `device-agent profile`)")
    _check_reachable(server)
    records = read_results(results)
    measurements = [record for record in records if record.runtime is not None]
    if not measurements:
        raise _fail(f"{results} holds no successful measurement to upload")
    runtime = measurements[0].runtime or {}
    device = runtime.get("extra", {}).get("device") or {"platform": "unknown"}
    credentials = ensure_registered(
        settings, enroll_token or _dev_enroll_token(server), device, threading.Event(),
        str(runtime.get("runtime") or "onnxruntime"), measured_format(measurements),
    )
    with ProfilerClient(server, credentials.device_token) as client:
        missing = unknown_keys(client, (record.key for record in measurements))
        if missing:
            plan = ops_to_register(missing, measurements, [ops] if ops else recorded_manifests(measurements), results)
            created = register_ops(server, admin_token or _dev_admin_token(server), plan)
            typer.echo(f"registered {len(created)} ops the server did not have, from {', '.join(map(str, plan.manifests))}")
        try:
            receipt = client.post_measurements([for_server(record).to_json() for record in measurements])
        except ProfilerError as exc:
            raise _fail(f"the server refused the upload: {exc}") from exc
    skipped = len(records) - len(measurements)
    typer.echo(f"accepted {receipt.accepted}, duplicates {receipt.duplicates}, failures not uploaded {skipped}")


@app.command()
def run(
    server: ServerUrl,
    name: Annotated[
        str,
        typer.Option("--device", "--name", help="This device's name on the server (one per device/runtime setting)."),
    ],
    enroll_token: Annotated[
        str | None,
        typer.Option(envvar="PROFILER_ENROLL_TOKEN", help="For the first registration; default: the dev tokens file."),
    ] = None,
    state_dir: StateDir = None,
    once: Annotated[bool, typer.Option("--once", help="Drain the queue, post, and exit.")] = False,
    backend: BackendName = "onnxruntime",
    provider: Provider = "CPUExecutionProvider",
    threads: Threads = 1,
    cpu_affinity: Affinity = None,
    graph_optimization: GraphOptimization = "ORT_ENABLE_ALL",
    precision: Precision = "fp32",
    torch_device: TorchDevice = "cpu",
    cuda_graphs: CudaGraphs = False,
    adb_tool: AdbTool = "onnxruntime_perf_test",
    adb_binary: AdbBinary = None,
    adb_serial: AdbSerial = None,
    runtime_version: RuntimeVersion = None,
    adb_runs: AdbRuns = 50,
    max_model_mib: MaxModelMib = DEFAULT_MAX_MODEL_MIB,
    max_s: MaxS = 1.0,
    target_ci: TargetCi = 0.01,
    warmup_max_s: WarmupMaxS = 0.5,
    cooldown_s: CooldownS = 0.0,
    op_timeout_s: OpTimeoutS = 120.0,
    realtime_priority: RealtimePriority = 0,
    speed_reference: SpeedReferenceModel = None,
    invocation_overhead: InvocationOverhead = True,
    post_batch: Annotated[int, typer.Option(min=1, help="Post results in batches of this many.")] = 16,
    idle_poll_s: Annotated[float, typer.Option(min=0.1, help="Seconds between polls of an empty queue.")] = 5.0,
    onnx_cache_mib: Annotated[
        int, typer.Option(min=1, help="Downloaded models kept at most, MiB (least recently used dropped first).")
    ] = 1024,
) -> None:
    """Register (once), then lease, measure and report tasks until stopped (SIGINT/SIGTERM: finish the op, post, exit)."""
    import signal
    import threading

    from device_agents.online import Agent, AgentSettings, AgentSummary, ensure_registered
    from device_agents.retry import StopRequestedError
    from device_agents.state import AgentPaths, default_state_dir
    from fbnet_core.client import ProfilerClient, ProfilerError

    _setup_logging()
    options = _backend_options(threads, cpu_affinity, provider, graph_optimization, precision, torch_device,
                               cuda_graphs, adb_tool, adb_binary, adb_serial, runtime_version, adb_runs, max_model_mib)
    stop = threading.Event()
    stopped_by: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        logging.getLogger("device_agents").info("%s: finishing the current op, then posting and exiting",
                                                signal.Signals(signum).name)
        stopped_by.append(signum)
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second signal stops at once

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    paths = AgentPaths.for_agent(state_dir or default_state_dir(), name)
    settings = AgentSettings(server_url=server, name=name, paths=paths, once=once, post_batch=post_batch,
                             idle_poll_s=idle_poll_s, onnx_cache_bytes=onnx_cache_mib << 20)
    if once:
        _check_reachable(server)
    try:
        policy = _policy(max_s, target_ci, warmup_max_s, cooldown_s, op_timeout_s)
        _apply_realtime_priority(realtime_priority)
        referenced = _with_speed_reference(load_backend(backend, options), speed_reference, state_dir)
        chosen = _with_overhead(referenced, invocation_overhead)
        runtime = chosen.runtime_info()
        device = {**chosen.describe_device(), "runtime": runtime.__dict__}
        credentials = ensure_registered(settings, enroll_token or _dev_enroll_token(server), device, stop,
                                        runtime.runtime, chosen.model_format)
        with ProfilerClient(server, credentials.device_token) as client:
            summary = Agent(client, chosen, policy, settings, stop).run()
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    except StopRequestedError:  # stopped while waiting for the server to answer the registration
        summary = AgentSummary()
    except ProfilerError as exc:  # a 4xx the agent cannot work around; spooled results stay for the next start
        raise _fail(f"the server refused a request: {exc}") from exc
    typer.echo(f"measured {summary.measured}, failed {summary.failed}, posted {summary.posted}, "
               f"rejected {summary.rejected}")
    if stopped_by == [signal.SIGINT]:
        raise Interrupted  # Ctrl-C: exit 130, as the shell expects; SIGTERM (a service stop) exits 0


def _check_reachable(server: str) -> None:
    """A one-off command (upload, run --once) gives up at once on a server it cannot reach when it starts (a wrong
    port is not a restart to wait out); once started, it retries as a long-running agent does."""
    from fbnet_core.client import ProfilerClient

    with ProfilerClient(server) as probe:
        probe.healthz()


def _dev_tokens(server: str) -> DevTokens | None:
    """The tokens `profiler-server serve --dev` wrote for this server, if any."""
    from fbnet_core.dev_tokens import read_dev_tokens

    try:
        return read_dev_tokens(server)
    except RuntimeError:
        return None


def _dev_enroll_token(server: str) -> str | None:
    tokens = _dev_tokens(server)
    return tokens.enroll_token if tokens else None


def _dev_admin_token(server: str) -> str | None:
    tokens = _dev_tokens(server)
    return tokens.admin_token if tokens else None


def main() -> None:
    run_cli(app, "device-agent")
