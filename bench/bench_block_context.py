"""Diagnosis: does a block run as fast inside a whole network as alone? (why the LUT's sum misses)

For each network, onnxruntime's own profiler (SessionOptions.enable_profiling) times every node of the whole
network and every node of each of its ops (stem, blocks, head, pool + classifier) run alone, with the agent's
settings (CPU execution provider, 1 thread, sequential, ORT_ENABLE_ALL, pinned). Nodes of the whole network are
attributed to ops by their ONNX names (/stem/..., /layers/layers.N/..., /head/..., /classifier/...); layout
reorders onnxruntime inserts between blocks are reported apart. Both sides are profiled, so the profiler's own
per-node cost is on both sides; the per-run overhead (session run minus its nodes) is reported per op.

    .venv/bin/python bench/bench_block_context.py --networks fbnet_c,random_000 [--seed 0] [--resolution 224]
        [--cpu 0] [--realtime-priority 1] [--runs 40]

Prints one row per op (alone, in the network, ratio) and the totals per op kind.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from device_agents.scheduling import set_realtime_priority  # noqa: E402
from device_agents.system import set_affinity  # noqa: E402
from fbnet_core.blocks import is_identity  # noqa: E402
from fbnet_core.keys import Op  # noqa: E402
from fbnet_core.space import build_space  # noqa: E402
from search_client.space.export import export_onnx  # noqa: E402
from search_client.validation.calibration_kinds import FIXED, op_kind  # noqa: E402
from search_client.validation.validate import ValidationModel, validation_models  # noqa: E402

WARMUP_RUNS = 10
_OWNER = re.compile(r"^/(stem|head|classifier|layers/layers\.(\d+))/")
KERNEL_SUFFIX = "_kernel_time"


def _session(path: Path, profile_dir: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(profile_dir / "profile")
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def profile_us(path: Path, runs: int, profile_dir: Path) -> tuple[dict[str, float], float]:
    """Median kernel time of each node (us) and the median session run (us), warm-up runs left out."""
    session = _session(path, profile_dir)
    feed = np.random.default_rng(0).standard_normal(session.get_inputs()[0].shape).astype(np.float32)
    for _ in range(WARMUP_RUNS + runs):
        session.run(None, {session.get_inputs()[0].name: feed})
    trace = Path(session.end_profiling())
    events = json.loads(trace.read_text())
    trace.unlink()
    nodes: dict[str, list[float]] = defaultdict(list)
    session_runs = []
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith(KERNEL_SUFFIX):
            nodes[event["name"].removesuffix(KERNEL_SUFFIX)].append(event["dur"])
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            session_runs.append(event["dur"])
    node_us = {name: statistics.median(d[WARMUP_RUNS:]) for name, d in nodes.items()}
    return node_us, statistics.median(session_runs[WARMUP_RUNS:])


def owner(node: str) -> str:
    """`stem`, `L07`, `head`, `classifier`, or `between` (onnxruntime's layout reorders between blocks)."""
    match = _OWNER.match(node)
    if match is None:
        return "between"
    return f"L{int(match.group(2)):02d}" if match.group(2) else match.group(1)


def op_owners(model: ValidationModel) -> list[tuple[str, Op]]:
    """Each op of the network's prediction with the name its nodes carry inside the whole network."""
    if model.arch is None or model.params is None:
        raise SystemExit(f"{model.name} is outside the FBNet space: no blocks to compare")
    space = build_space(model.params)
    layers = [
        f"L{index:02d}"
        for index, (name, layer) in enumerate(zip(model.arch.blocks, space.layers, strict=True))
        if not is_identity(name, layer.in_channels, layer.out_channels, layer.stride)
    ]
    return list(zip(["stem", *layers, "head", "classifier"], model.block_ops(), strict=True))


def _onnx(op: Op, folder: Path) -> Path:
    path = folder / f"{op.key}.onnx"
    if not path.exists():
        path.write_bytes(export_onnx(op.spec))
    return path


def report(model: ValidationModel, runs: int, folder: Path) -> None:
    network_nodes, network_run_us = profile_us(_onnx(model.network, folder), runs, folder)
    inside: dict[str, float] = defaultdict(float)
    for node, us in network_nodes.items():
        inside[owner(node)] += us
    print(f"\n{model.name}: whole network {network_run_us:.0f} us per run, nodes {sum(network_nodes.values()):.0f} us, "
          f"layout reorders between blocks {inside['between']:.0f} us")  # fmt: skip
    print(f"{'op':6} {'key':40} {'alone us':>9} {'run alone':>9} {'inside us':>9} {'inside/alone':>12}")
    per_kind: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for name, op in op_owners(model):
        nodes, run_us = profile_us(_onnx(op, folder), runs, folder)
        alone_us = sum(nodes.values())
        print(
            f"{name:6} {op.key:40} {alone_us:9.0f} {run_us:9.0f} {inside[name]:9.0f} {inside[name] / alone_us:12.2f}"
        )
        totals = per_kind[name if op_kind(op) == FIXED else op_kind(op)]  # stem, head, classifier apart
        totals[0], totals[1], totals[2] = totals[0] + alone_us, totals[1] + run_us, totals[2] + inside[name]
    for kind, (alone_us, run_us, inside_us) in sorted(per_kind.items()):
        print(f"  {kind:10} nodes alone {alone_us:7.0f} us, session runs alone {run_us:7.0f} us, "
              f"inside the network {inside_us:7.0f} us ({inside_us / alone_us:.2f} x nodes alone)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--networks", default="fbnet_c,random_000", help="names from the validation set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random networks (as dnas validate)")
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to pin to")
    parser.add_argument("--realtime-priority", type=int, default=0, help="SCHED_FIFO priority (0: off)")
    parser.add_argument("--runs", type=int, default=40, help="profiled runs per op, after 10 warm-up runs")
    args = parser.parse_args()
    wanted = args.networks.split(",")
    models = {m.name: m for m in validation_models(30, args.seed, args.resolution) if m.arch is not None}
    unknown = sorted(set(wanted) - set(models))
    if unknown:
        parser.error(f"not in the validation set (or outside the FBNet space): {', '.join(unknown)}")
    set_affinity([args.cpu])
    if args.realtime_priority:
        set_realtime_priority(args.realtime_priority)
    with tempfile.TemporaryDirectory(prefix="block-context-") as folder:
        for name in wanted:
            report(models[name], args.runs, Path(folder))


if __name__ == "__main__":
    main()
