"""Benchmark: the whole FBNet LUT measured through a real server by onnxruntime, ExecuTorch and LiteRT: time to a
full LUT, two runs' agreement, and where the three runtimes rank the blocks of a layer differently.

End to end, nothing mocked: every op of the space (stem, every non-skip candidate of every layer, head, pool+fc:
105 ops at 224) is compiled for each runtime first, outside any timing (ONNX for onnxruntime, `.pte` with the
XNNPACK delegate for ExecuTorch, `.tflite` for LiteRT; `search_client.space.compile.compile_ops`, the code
`dnas lut request` uses), with the compile time per format. A real `profiler-server serve --dev` (SQLite, temp
folder, pinned to --server-cpu) gets every op in every format in one upload. Then, one runtime after the other,
a real `device-agent run --backend B` (1 thread, pinned to --agent-cpu; devices cpu-ort-t1, cpu-et-t1,
cpu-litert-t1) is started; once it has registered, every op is queued and the wall time until the device's LUT
holds every entry is the LUT time (goal: <= 300 s per runtime). Every op is then queued again for
re-measurement (`measure_rounds`, as `dnas validate --rounds` does) and the two runs' medians are compared:
median and p95 of |run 2 / run 1 - 1| (goals: <= 2 % and <= 5 %). Last, the LUTs side by side (each op's figure
per runtime is the mean of its two runs' medians): per layer (layers with the same candidate ops are one row),
Kendall's tau between each pair of runtimes' rankings of the layer's blocks and each runtime's cheapest block;
the blocks whose rank within their layer differs between runtimes, with their medians; each runtime's ratio to
onnxruntime (median over ops).

`--timing-lock` holds an flock on that file during each runtime's two timed runs only: compiling (minutes for the
.pte files at 224) and starting agents do not keep other timing jobs waiting. `--compiled-cache DIR` keeps every
compiled file (and the time it took) per (format, key), so a re-run compiles nothing (compiling is
deterministic, search_client/space/compile.py; delete DIR after upgrading torch, ExecuTorch or litert-torch).
LiteRT needs the converter (scripts/setup-litert-converter.sh). `--layers` restricts the ops to those layers'
candidates (no stem, head or pool+fc): a quick check on a small space, e.g.
`--resolution 16 --width 0.25 --head-channels 64 --num-classes 10 --layers 1,12`.

    .venv/bin/python bench/bench_runtime_luts.py [--resolution 224] [--width 1.0] [--head-channels 1984]
        [--num-classes 1000] [--runtimes onnxruntime,executorch,litert] [--layers 1,12]
        [--agent-cpu 0] [--server-cpu 1] [--agent-realtime-priority 1] [--agent-timing OPTIONS]
        [--timing-lock /tmp/timing.lock] [--compiled-cache DIR] [--timeout-s 1800] [--workdir DIR] [--out DIR]

With --out DIR: runtime_luts.json (every figure, every op's median per runtime per run) and report.txt (the text
printed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau, rankdata
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_stack import (  # noqa: E402
    Stack,
    add_agent_arguments,
    agent_arguments,
    exit_on_sigterm,
    speed_reference_arguments,
)
from shared_machine import timing_lock  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fbnet_core.client import OpUpload, ProfilerClient  # noqa: E402
from fbnet_core.errors import FbnetLutError  # noqa: E402
from fbnet_core.keys import Op, candidate_ops, ops_for_space  # noqa: E402
from fbnet_core.model_formats import FORMAT_SUFFIX, ModelFormat, header_problem  # noqa: E402
from fbnet_core.space import SearchSpace, fbnet_space, space_params  # noqa: E402
from search_client.lut.client import Waiter, missing_keys, wait_for_entries  # noqa: E402
from search_client.space.compile import compile_ops  # noqa: E402
from search_client.validation.validate import ValidationTimeout, measure_rounds  # noqa: E402

GOAL_LUT_S = 300.0
GOAL_AGREEMENT_MEDIAN_PCT = 2.0
GOAL_AGREEMENT_P95_PCT = 5.0
POLL_S = 0.5  # the LUT time's resolution: well under 1 % of the 300 s goal
# One LiteRT converter process per this many ops: its start-up (importing jax, seconds) is paid per batch, and
# the progress bar still moves during a compile of minutes.
TFLITE_BATCH = 16
SECONDS_FILE = "seconds.json"  # in each format's cache folder: key -> seconds its compile took


@dataclass(frozen=True)
class Runtime:
    backend: str  # device-agent run --backend
    model_format: ModelFormat
    device: str
    label: str  # column heading


RUNTIMES: dict[str, Runtime] = {
    runtime.backend: runtime
    for runtime in (
        Runtime("onnxruntime", "onnx", "cpu-ort-t1", "ort"),
        Runtime("executorch", "pte", "cpu-et-t1", "et"),
        Runtime("litert", "tflite", "cpu-litert-t1", "litert"),
    )
}


class Report:
    """Prints each line and keeps it, for report.txt."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        line = line.rstrip()  # padded last columns
        print(line, flush=True)
        self.lines.append(line)


# -- compiling --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompileFigures:
    model_format: str
    ops: int
    compiled: int  # compiled in this run
    compiled_s: float  # wall time of those compiles
    cached: int  # read from --compiled-cache
    cached_s: float  # the time the cached ones took when they were compiled

    @property
    def total_s(self) -> float:
        return self.compiled_s + self.cached_s

    def line(self) -> str:
        name = "ONNX export" if self.model_format == "onnx" else f"compile .{self.model_format}"
        cache = f" ({self.cached} from the cache, timed when compiled)" if self.cached else ""
        return (
            f"{name:15s} {self.total_s:8.1f} s for {self.ops} ops, {self.total_s / self.ops:6.2f} s/op{cache}"
        )


def _read_cached(
    folder: Path | None, op: Op, model_format: ModelFormat, seconds: Mapping[str, float]
) -> bytes | None:
    """The op's cached file, when the cache has it and the time its compile took (a file without it was written
    by an interrupted run, or by hand); a file whose header is not the format's is compiled again."""
    if folder is None or op.key not in seconds:
        return None
    path = folder / f"{op.key}{FORMAT_SUFFIX[model_format]}"
    if not path.is_file():
        return None
    data = path.read_bytes()
    return None if header_problem(model_format, data) else data


def _write_cached(folder: Path, key: str, model_format: ModelFormat, data: bytes) -> None:
    # Through a temporary name: an interrupted run leaves no truncated file behind to be reused.
    path = folder / f"{key}{FORMAT_SUFFIX[model_format]}"
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def compile_format(
    ops: Sequence[Op], model_format: ModelFormat, cache: Path | None
) -> tuple[dict[str, bytes], CompileFigures]:
    """Every op's file in `model_format` (from the cache where it has it), and the compile time per format."""
    folder = None if cache is None else cache / model_format
    seconds: dict[str, float] = {}
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / SECONDS_FILE).is_file():
            seconds = {key: float(s) for key, s in json.loads((folder / SECONDS_FILE).read_text()).items()}
    files: dict[str, bytes] = {}
    for op in ops:
        data = _read_cached(folder, op, model_format, seconds)
        if data is not None:
            files[op.key] = data
    cached_s = sum(seconds[key] for key in files)
    todo = [op for op in ops if op.key not in files]
    batch_size = TFLITE_BATCH if model_format == "tflite" else 1
    compiled_s = 0.0
    label = "ONNX export" if model_format == "onnx" else f"compile .{model_format}"
    with tqdm(total=len(ops), initial=len(files), desc=label, unit="op", file=sys.stderr) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            started = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    # torch.export and ExecuTorch warn about their own deprecations once per op: noise between
                    # the progress bar's lines, nothing the benchmark can act on.
                    warnings.simplefilter("ignore", category=FutureWarning)
                    compiled = compile_ops([op.spec for op in batch], model_format)
            except FbnetLutError as error:
                raise SystemExit(f"{label} failed on {batch[0].key}...: {error}") from error
            elapsed_s = time.perf_counter() - started
            compiled_s += elapsed_s
            for op, data in zip(batch, compiled, strict=True):
                files[op.key] = data
                seconds[op.key] = elapsed_s / len(batch)
                if folder is not None:
                    _write_cached(folder, op.key, model_format, data)
            if folder is not None:  # after every batch: an interrupted run keeps what it compiled
                (folder / SECONDS_FILE).write_text(json.dumps(seconds, indent=1, sort_keys=True))
            bar.update(len(batch))
    figures = CompileFigures(model_format, len(ops), len(todo), compiled_s, len(ops) - len(todo), cached_s)
    return files, figures


# -- measuring --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuntimeRun:
    runtime: Runtime
    lut_s: float  # queueing every op -> the LUT holds every entry
    remeasure_s: float  # queueing every op again -> every entry holds a newer result
    medians_us: dict[str, tuple[float, float]]  # key -> (run 1, run 2)
    unstable: tuple[int, int]  # entries the server flagged unstable, per run


def progress_waiter(agent: subprocess.Popen[bytes], log: Path, label: str) -> Waiter:
    """`wait_for_entries` with a progress bar, that stops at once when the agent is gone or the device's queue is
    empty while entries are still missing (an op that fails on this runtime), rather than at the timeout."""

    def wait(
        client: ProfilerClient,
        device: str,
        keys: list[str],
        timeout_s: float,
        poll_s: float,
        *,
        stale: Mapping[str, str] | None = None,
    ) -> list[str]:
        with tqdm(total=len(keys), desc=label, unit="op", file=sys.stderr) as bar:

            def check(done: int, total: int) -> None:
                bar.update(done - bar.n)
                if done == total:
                    return
                if agent.poll() is not None:
                    raise SystemExit(f"{device}: the agent exited with code {agent.returncode}; see {log}")
                coverage = client.get_device(device).coverage
                if coverage.queued == 0 and coverage.leased == 0:
                    # Read again after the queue: a result posted since the LUT was read is not an op left
                    # without a task.
                    missing = missing_keys(client, device, keys, stale)
                    if missing:
                        raise SystemExit(
                            f"{device}: {len(missing)} ops left unmeasured with nothing queued (failed on this "
                            f"runtime? {', '.join(missing[:3])}...); see {log}"
                        )

            return wait_for_entries(client, device, keys, timeout_s, poll_s, on_progress=check, stale=stale)

    return wait


def measure_runtime(stack: Stack, runtime: Runtime, keys: list[str], args: argparse.Namespace) -> RuntimeRun:
    """One agent of `runtime` measures every key twice; only queueing and measuring are timed."""
    agent_args = ["--backend", runtime.backend, *agent_arguments(args)]
    space = space_params(args.resolution, args.width, args.num_classes, args.head_channels)
    agent_args += speed_reference_arguments(stack, args.speed_reference, runtime.backend, space, args.server_cpu)
    # Started and registered before the clock starts: the runtime's import and start-up are not the LUT's time.
    agent = stack.start_agent(runtime.device, threads=1, cpus=str(args.agent_cpu), agent_args=agent_args)
    log = stack.workdir / f"agent-{runtime.device}.log"
    try:
        with stack.admin() as admin:
            registered = admin.get_device(runtime.device).format
            if registered != runtime.model_format:
                raise SystemExit(
                    f"{runtime.device} registered format {registered}, not {runtime.model_format}"
                )
            with timing_lock(args.timing_lock):
                started = time.perf_counter()
                admin.create_jobs(runtime.device, keys)
                wait = progress_waiter(agent, log, f"{runtime.backend} run 1")
                missing = wait(admin, runtime.device, keys, args.timeout_s, POLL_S)
                lut_s = time.perf_counter() - started
                if missing:
                    raise ValidationTimeout(missing)
                first = admin.get_lut(runtime.device, keys=keys).entries
                started = time.perf_counter()
                # Every op queued again for re-measurement; waits until each entry holds a newer result.
                wait = progress_waiter(agent, log, f"{runtime.backend} run 2")
                round_us = measure_rounds(admin, runtime.device, keys, 1, args.timeout_s, POLL_S, wait)
                remeasure_s = time.perf_counter() - started
            second = admin.get_lut(runtime.device, keys=keys).entries
    except ValidationTimeout as error:
        raise SystemExit(f"{runtime.device}: {error} after {args.timeout_s:.0f} s; see {log}") from error
    finally:
        stack.stop(agent)  # one agent at a time on the measuring CPU
    unstable = tuple(sum(bool(entries[key].get("unstable")) for key in keys) for entries in (first, second))
    medians = {key: (values[0], values[1]) for key, values in round_us.items()}
    return RuntimeRun(runtime, lut_s, remeasure_s, medians, (unstable[0], unstable[1]))


# -- comparing --------------------------------------------------------------------------------------------------


def agreement_pct(run: RuntimeRun) -> tuple[float, float]:
    """Median and p95 over ops of |run 2 / run 1 - 1|, in percent."""
    diffs = np.array([abs(second / first - 1.0) * 100.0 for first, second in run.medians_us.values()])
    return float(np.median(diffs)), float(np.percentile(diffs, 95))


def mean_medians(run: RuntimeRun) -> dict[str, float]:
    """Each op's figure for the comparison: the mean of its two runs' medians."""
    return {key: (first + second) / 2.0 for key, (first, second) in run.medians_us.items()}


@dataclass(frozen=True)
class LayerGroup:
    """Layers whose candidates are the same ops (same shapes): their rankings are one ranking."""

    layers: tuple[int, ...]
    blocks: tuple[tuple[str, str], ...]  # (block name, op key), non-identity candidates in CANDIDATES order

    @property
    def name(self) -> str:
        if len(self.layers) > 2 and self.layers == tuple(range(self.layers[0], self.layers[-1] + 1)):
            return f"{self.layers[0]}-{self.layers[-1]}"
        return ",".join(str(layer) for layer in self.layers)


def layer_groups(space: SearchSpace, layers: Sequence[int]) -> list[LayerGroup]:
    per_layer = candidate_ops(space)
    grouped: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for index in layers:
        blocks = tuple((str(op.spec["block"]), op.key) for op in per_layer[index] if op is not None)
        grouped.setdefault(blocks, []).append(index)
    return [LayerGroup(tuple(indices), blocks) for blocks, indices in grouped.items()]


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """None where it is undefined (fewer than two blocks, or one runtime timing them all alike): JSON has no NaN."""
    if len(a) < 2:
        return None
    tau = float(kendalltau(a, b).statistic)
    return None if np.isnan(tau) else tau


def pair_name(a: Runtime, b: Runtime) -> str:
    return f"{a.label}/{b.label}"


def compare_layers(
    groups: Sequence[LayerGroup], figures: Mapping[str, Mapping[str, float]], runtimes: Sequence[Runtime]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per layer group: Kendall tau per pair of runtimes and each runtime's cheapest block; and every block whose
    rank (1 = cheapest in its layer) is not the same under every runtime."""
    rows: list[dict[str, Any]] = []
    differing: list[dict[str, Any]] = []
    for group in groups:
        values = {rt.backend: [figures[rt.backend][key] for _, key in group.blocks] for rt in runtimes}
        taus = {
            pair_name(a, b): kendall_tau(values[a.backend], values[b.backend])
            for a, b in itertools.combinations(runtimes, 2)
        }
        cheapest = {rt.backend: group.blocks[int(np.argmin(values[rt.backend]))][0] for rt in runtimes}
        rows.append(
            {
                "name": group.name,
                "layers": list(group.layers),
                "blocks": len(group.blocks),
                "kendall_tau": taus,
                "cheapest": cheapest,
            }
        )
        ranks = {rt.backend: rankdata(values[rt.backend], method="min").astype(int) for rt in runtimes}
        for i, (block, key) in enumerate(group.blocks):
            block_ranks = {rt.backend: int(ranks[rt.backend][i]) for rt in runtimes}
            if len(set(block_ranks.values())) > 1:
                medians = {rt.backend: values[rt.backend][i] for rt in runtimes}
                differing.append(
                    {
                        "name": group.name,
                        "layers": list(group.layers),
                        "block": block,
                        "key": key,
                        "rank": block_ranks,
                        "median_us": medians,
                    }
                )
    return rows, differing


def ratios_to_onnxruntime(
    figures: Mapping[str, Mapping[str, float]], runtimes: Sequence[Runtime]
) -> dict[str, Any]:
    """Per runtime other than onnxruntime: its median over ops of (its figure / onnxruntime's), and the range."""
    if "onnxruntime" not in figures:
        return {}
    base = figures["onnxruntime"]
    ratios = {}
    for rt in runtimes:
        if rt.backend == "onnxruntime":
            continue
        each = [figures[rt.backend][key] / base[key] for key in base]
        ratios[rt.backend] = {"median": statistics.median(each), "min": min(each), "max": max(each)}
    return ratios


# -- the benchmark ----------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--head-channels", type=int, default=1984)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument(
        "--runtimes", default=",".join(RUNTIMES), help=f"comma-separated, any of {', '.join(RUNTIMES)}"
    )
    parser.add_argument(
        "--layers", default=None,
        help="only these layers' candidates (comma-separated indices; no stem, head or pool+fc); default: every op",
    )  # fmt: skip
    add_agent_arguments(parser)
    parser.add_argument(
        "--speed-reference", default="fbnet_a",
        help="zoo model each agent times every run against, compiled for its runtime (device-agent "
             "--speed-reference; 'none': off): the machine's speed, which moves between two runs, cancels",
    )  # fmt: skip
    parser.add_argument(
        "--timing-lock",
        type=Path,
        default=None,
        help="hold an flock on this file while timing (shared machines)",
    )
    parser.add_argument(
        "--compiled-cache", type=Path, default=None,
        help="keep compiled files here per (format, key) and reuse them on a re-run",
    )  # fmt: skip
    parser.add_argument(
        "--timeout-s", type=float, default=1800.0, help="give up on a run that has not filled the LUT by then"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep the server's database and logs here")
    parser.add_argument("--out", type=Path, default=None, help="write runtime_luts.json and report.txt here")
    return parser.parse_args()


def chosen_runtimes(names: str) -> list[Runtime]:
    chosen = [name.strip() for name in names.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in RUNTIMES]
    if unknown or not chosen:
        raise SystemExit(
            f"--runtimes: unknown {', '.join(unknown) or '(none given)'}; any of {', '.join(RUNTIMES)}"
        )
    return [RUNTIMES[name] for name in dict.fromkeys(chosen)]


def chosen_ops(space: SearchSpace, layers: str | None) -> tuple[list[Op], list[int]]:
    """The ops to measure (each once) and the layers whose rankings are compared."""
    if layers is None:
        return ops_for_space(space), list(range(len(space.layers)))
    try:
        indices = [int(index) for index in layers.split(",")]
    except ValueError:
        raise SystemExit(f"--layers: expected comma-separated layer indices, got {layers!r}") from None
    if any(not 0 <= index < len(space.layers) for index in indices):
        raise SystemExit(f"--layers: indices run from 0 to {len(space.layers) - 1}, got {layers}")
    per_layer = candidate_ops(space)
    unique = {op.key: op for index in indices for op in per_layer[index] if op is not None}
    return list(unique.values()), indices


def verdict(ok: bool) -> str:
    return "meets" if ok else "misses"


def runtime_figures(
    runs: Sequence[RuntimeRun], compile_figures: Mapping[str, CompileFigures]
) -> dict[str, Any]:
    """Per runtime: compile time, LUT time, re-measurement time, agreement, verdicts, every op's two medians."""
    per_runtime: dict[str, Any] = {}
    for run in runs:
        rt = run.runtime
        median_pct, p95_pct = agreement_pct(run)
        compiled = compile_figures[rt.model_format]
        per_runtime[rt.backend] = {
            "device": rt.device,
            "format": rt.model_format,
            "compile_s": compiled.total_s,
            "compile_s_per_op": compiled.total_s / compiled.ops,
            "lut_s": run.lut_s,
            "lut_goal_met": run.lut_s <= GOAL_LUT_S,
            "remeasure_s": run.remeasure_s,
            "agreement_median_pct": median_pct,
            "agreement_p95_pct": p95_pct,
            "agreement_goal_met": median_pct <= GOAL_AGREEMENT_MEDIAN_PCT
            and p95_pct <= GOAL_AGREEMENT_P95_PCT,
            "unstable_entries": list(run.unstable),
            "medians_us": {
                key: {"run1": first, "run2": second} for key, (first, second) in run.medians_us.items()
            },
        }
    return per_runtime


def print_runtimes(say: Report, per_runtime: Mapping[str, Mapping[str, Any]], agent_cpu: int) -> None:
    say(
        f"\nper runtime (agent: 1 thread on CPU {agent_cpu}; goals: LUT <= {GOAL_LUT_S:.0f} s after queueing, "
        f"run-to-run |run 2 / run 1 - 1| median <= {GOAL_AGREEMENT_MEDIAN_PCT:.0f} %, p95 <= "
        f"{GOAL_AGREEMENT_P95_PCT:.0f} %):"
    )
    say(
        f"  {'runtime':12s} {'device':14s} {'compile s':>9s} {'s/op':>6s} {'LUT s':>7s} {'':6s} {'run 2 s':>7s} "
        f"{'median':>8s} {'p95':>8s} {'':6s} {'unstable':>9s}"
    )
    for backend, row in per_runtime.items():
        say(
            f"  {backend:12s} {row['device']:14s} {row['compile_s']:9.1f} {row['compile_s_per_op']:6.2f} "
            f"{row['lut_s']:7.1f} {verdict(row['lut_goal_met']):6s} {row['remeasure_s']:7.1f} "
            f"{row['agreement_median_pct']:6.2f} % {row['agreement_p95_pct']:6.2f} % "
            f"{verdict(row['agreement_goal_met']):6s} {row['unstable_entries'][0]:4d}/{row['unstable_entries'][1]:<4d}"
        )


def print_comparison(
    say: Report,
    runtimes: Sequence[Runtime],
    layer_rows: Sequence[Mapping[str, Any]],
    differing: Sequence[Mapping[str, Any]],
    ratios: Mapping[str, Mapping[str, float]],
    op_count: int,
) -> None:
    pairs = [pair_name(a, b) for a, b in itertools.combinations(runtimes, 2)]
    labels = "/".join(rt.label for rt in runtimes)
    if layer_rows:
        say(
            "\nper layer (each op: the mean of its two runs' medians): Kendall tau between the runtimes' rankings "
            "of the layer's blocks (1 = same order), and each runtime's cheapest block:"
        )
        say(
            f"  {'layers':8s} {'blocks':>6s} "
            + " ".join(f"{pair:>10s}" for pair in pairs)
            + f"   cheapest ({labels})"
        )
        for row in layer_rows:
            taus = (row["kendall_tau"][pair] for pair in pairs)
            cells = " ".join(f"{'n/a' if tau is None else f'{tau:+.2f}':>10s}" for tau in taus)
            cheapest = ", ".join(row["cheapest"][rt.backend] for rt in runtimes)
            say(f"  {row['name']:8s} {row['blocks']:6d} {cells}   {cheapest}")
        for pair in pairs:
            # Per layer of the space: a group of identical layers counts once per layer.
            each = [row["kendall_tau"][pair] for row in layer_rows for _ in row["layers"]]
            defined = [tau for tau in each if tau is not None]
            if defined:
                say(
                    f"  {pair}: median tau over {len(defined)} layers {statistics.median(defined):+.2f}, "
                    f"lowest {min(defined):+.2f}"
                )
        same = sum(len(set(row["cheapest"].values())) == 1 for row in layer_rows)
        say(f"  the same cheapest block under every runtime in {same} of {len(layer_rows)} layer groups")
        say(
            f"\nblocks whose rank within their layer differs between runtimes: {len(differing)} (rank 1 = cheapest)"
        )
        if differing:
            say(f"  {'layers':8s} {'block':10s} {'ranks ' + labels:>20s}   medians us")
        for item in differing:
            ranks = "/".join(str(item["rank"][rt.backend]) for rt in runtimes)
            medians = "  ".join(f"{rt.label} {item['median_us'][rt.backend]:9.1f}" for rt in runtimes)
            say(f"  {item['name']:8s} {item['block']:10s} {ranks:>20s}   {medians}")
    if ratios:
        say("\neach runtime's latency relative to onnxruntime (per op: its mean median / onnxruntime's):")
        for backend, ratio in ratios.items():
            say(
                f"  {backend:12s} median {ratio['median']:.2f}x over {op_count} ops "
                f"(from {ratio['min']:.2f}x to {ratio['max']:.2f}x)"
            )


def measure_all(
    args: argparse.Namespace,
    say: Report,
    ops: Sequence[Op],
    files: Mapping[str, Mapping[str, bytes]],
    runtimes: Sequence[Runtime],
) -> tuple[float, list[RuntimeRun]]:
    """A server gets every op in every format (the upload is not timed); then each runtime's agent in turn
    measures the LUT twice. Returns the upload time and the runs."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-runtime-luts-"))
    stack = Stack(workdir, server_cpus=(args.server_cpu,))
    keys = [op.key for op in ops]
    formats = list(files)
    runs: list[RuntimeRun] = []
    try:
        stack.start_server()
        started = time.perf_counter()
        uploads = (
            OpUpload(op.key, op.spec, files["onnx"][op.key], {fmt: files[fmt][op.key] for fmt in formats[1:]})
            for op in ops
        )
        with stack.admin() as admin:
            receipt = admin.upload_ops(uploads)
        upload_s = time.perf_counter() - started
        say(
            f"\nuploaded {len(receipt.created)} ops in {len(formats)} formats in {upload_s:.1f} s to {stack.url} "
            f"(logs in {workdir}); measuring:"
        )
        for runtime in runtimes:
            run = measure_runtime(stack, runtime, keys, args)
            runs.append(run)
            say(
                f"  {runtime.backend}: LUT complete {run.lut_s:.1f} s after queueing; every op re-measured "
                f"{run.remeasure_s:.1f} s after queueing again"
            )
    finally:
        stack.close()
    return upload_s, runs


def main() -> None:
    args = parse_args()
    exit_on_sigterm()
    runtimes = chosen_runtimes(args.runtimes)
    try:
        space = fbnet_space(args.resolution, args.width, args.num_classes, args.head_channels)
    except FbnetLutError as error:
        raise SystemExit(f"space: {error}") from error
    ops, layers = chosen_ops(space, args.layers)
    say = Report()
    scope = f"the candidates of layers {args.layers}" if args.layers else "the whole space"
    say(
        f"{len(ops)} ops ({scope}) at {args.resolution}x{args.resolution}, width {args.width}, head "
        f"{args.head_channels}, {args.num_classes} classes; runtimes {', '.join(rt.backend for rt in runtimes)}"
    )

    # Everything compiled before anything is timed. ONNX always: it is each op's defining file on the server.
    formats: list[ModelFormat] = ["onnx", *(rt.model_format for rt in runtimes if rt.model_format != "onnx")]
    files: dict[str, dict[str, bytes]] = {}
    compile_figures: dict[str, CompileFigures] = {}
    for model_format in formats:
        files[model_format], compile_figures[model_format] = compile_format(
            ops, model_format, args.compiled_cache
        )
    say("\ncompile time (before and outside the timed part):")
    for figures in compile_figures.values():
        say(f"  {figures.line()}")

    upload_s, runs = measure_all(args, say, ops, files, runtimes)

    per_runtime = runtime_figures(runs, compile_figures)
    print_runtimes(say, per_runtime, args.agent_cpu)
    medians = {run.runtime.backend: mean_medians(run) for run in runs}
    layer_rows, differing = compare_layers(layer_groups(space, layers), medians, runtimes)
    ratios = ratios_to_onnxruntime(medians, runtimes)
    print_comparison(say, runtimes, layer_rows if len(runtimes) > 1 else [], differing, ratios, len(ops))

    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        document = {
            "config": {
                key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()
            },
            "space": asdict(space.params),
            "goals": {
                "lut_s": GOAL_LUT_S,
                "agreement_median_pct": GOAL_AGREEMENT_MEDIAN_PCT,
                "agreement_p95_pct": GOAL_AGREEMENT_P95_PCT,
            },
            "ops": [op.key for op in ops],
            "compile": {
                fmt: {**asdict(c), "total_s": c.total_s, "s_per_op": c.total_s / c.ops}
                for fmt, c in compile_figures.items()
            },
            "upload_s": upload_s,
            "runtimes": per_runtime,
            "layers": layer_rows,
            "rank_differences": differing,
            "ratio_to_onnxruntime": ratios,
        }
        (args.out / "runtime_luts.json").write_text(json.dumps(document, indent=1))
        (args.out / "report.txt").write_text("\n".join(say.lines) + "\n")
        print(f"\nwrote {args.out / 'runtime_luts.json'} and {args.out / 'report.txt'}")


if __name__ == "__main__":
    main()
