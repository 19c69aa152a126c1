"""Benchmark: the same ops timed by onnxruntime, ExecuTorch (XNNPACK) and LiteRT (XNNPACK) on this CPU, each op
compiled for the runtime that times it; which blocks the runtimes rank differently.

For each op of a sample of FBNet layers at 224 (every non-skip candidate of the chosen layers): its ONNX, .pte and
.tflite files (compile times per format are printed), then two passes over the three backends (1 thread, the
agent's timing engine, `device_agents.measure.measure_op`), interleaved op by op so that the machine's speed
phases hit the runtimes alike. Prints per op the medians, each runtime's ratio to onnxruntime in the same pass,
the two passes' agreement per runtime (median and p95 of |difference|), and Kendall's tau between the runtimes'
rankings of the blocks of each layer. Needs the LiteRT converter (scripts/setup-litert-converter.sh).
`--timing-lock` holds an flock on that file during the two timing passes only: the compilation (minutes for
the .pte files) does not keep other timing jobs waiting.

    .venv/bin/python bench/bench_phone_runtimes.py [--layers 1,12] [--max-s 1.0] [--timing-lock /tmp/timing.lock]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from device_agents.backends import BackendOptions, load_backend
from device_agents.backends.base import OpInput
from device_agents.measure import measure_op
from device_agents.timing import TimingPolicy
from fbnet_core.keys import candidate_ops
from fbnet_core.space import fbnet_space
from search_client.space.compile import compile_ops
from search_client.space.export import sha256_hex

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_machine import timing_lock  # noqa: E402  (bench/ is not a package)

RUNTIMES = (("onnxruntime", "onnx"), ("executorch", "pte"), ("litert", "tflite"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", default="1,12", help="FBNet layer indices (0-21) whose candidates are timed")
    parser.add_argument("--max-s", type=float, default=1.0, help="per-op cap on the timed phase, seconds")
    parser.add_argument(
        "--timing-lock", type=Path, default=None, help="hold an flock on this file while timing (shared machines)"
    )
    args = parser.parse_args()
    layers = [int(index) for index in args.layers.split(",")]
    per_layer = candidate_ops(fbnet_space())
    ops = [op for index in layers for op in per_layer[index] if op is not None]
    print(f"{len(ops)} ops from layers {layers} at 224")

    folder = Path(tempfile.mkdtemp(prefix="bench-phone-runtimes-"))
    files: dict[str, dict[str, tuple[Path, str]]] = {op.key: {} for op in ops}
    for _, model_format in RUNTIMES:
        started = time.perf_counter()
        compiled = compile_ops([op.spec for op in ops], model_format)
        elapsed_s = time.perf_counter() - started
        for op, data in zip(ops, compiled, strict=True):
            path = folder / f"{op.key}.{model_format}"
            path.write_bytes(data)
            files[op.key][model_format] = (path, sha256_hex(data))
        print(f"compile .{model_format}: {elapsed_s:.1f} s for {len(ops)} ops ({elapsed_s / len(ops):.2f} s/op)")

    backends = {name: load_backend(name, BackendOptions(threads=1)) for name, _ in RUNTIMES}
    policy = TimingPolicy(max_s=args.max_s)
    medians: dict[str, list[list[float]]] = {name: [[], []] for name, _ in RUNTIMES}
    with timing_lock(args.timing_lock):
        for run in range(2):
            for op in ops:
                onnx_path, onnx_sha = files[op.key]["onnx"]
                for name, model_format in RUNTIMES:
                    model_path, model_sha = files[op.key][model_format]
                    op_input = (OpInput(op.key, onnx_path, onnx_sha, op.spec) if model_format == "onnx" else
                                OpInput(op.key, None, onnx_sha, op.spec, model_path, model_sha))  # fmt: skip
                    record = measure_op(backends[name], op_input, policy)
                    if record.is_failure:
                        raise SystemExit(f"{name} failed on {op.key}: {record.error}")
                    medians[name][run].append(statistics.median(record.samples_us))

    print(f"\n{'op':40s} " + " ".join(f"{name + ' us':>15s}" for name, _ in RUNTIMES) + "   et/ort  lite/ort")
    for i, op in enumerate(ops):
        row = [statistics.mean(medians[name][r][i] for r in range(2)) for name, _ in RUNTIMES]
        print(f"{op.key:40s} " + " ".join(f"{v:15.1f}" for v in row) + f"   {row[1] / row[0]:6.2f}  {row[2] / row[0]:8.2f}")

    print("\nrun-to-run agreement (|run 2 / run 1 - 1|):")
    for name, _ in RUNTIMES:
        first, second = (np.array(medians[name][r]) for r in range(2))
        diff = np.abs(second / first - 1.0) * 100.0
        print(f"  {name:12s} median {np.median(diff):5.2f} %   p95 {np.percentile(diff, 95):5.2f} %")

    print("\nKendall tau between the runtimes' rankings of each layer's blocks (1 = same order):")
    start = 0
    for index in layers:
        count = sum(op is not None for op in per_layer[index])
        means = {name: [statistics.mean(medians[name][r][start + j] for r in range(2)) for j in range(count)]
                 for name, _ in RUNTIMES}  # fmt: skip
        pairs = [("onnxruntime", "executorch"), ("onnxruntime", "litert"), ("executorch", "litert")]
        taus = "   ".join(f"{a}/{b} {kendalltau(means[a], means[b]).statistic:+.2f}" for a, b in pairs)
        cheapest = {name: ops[start + int(np.argmin(values))].key.split(".")[1] for name, values in means.items()}
        print(f"  layer {index:2d} ({count} blocks): {taus}; cheapest: {cheapest}")
        start += count


if __name__ == "__main__":
    main()
