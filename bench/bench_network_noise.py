"""How far apart are two measurements of the same whole network? (the floor under any LUT's fidelity)

Measures every network of the validation set (`dnas validate`'s: seeded random architectures plus FBNet-A/B/C)
twice, in two passes a minute or so apart, with the agent's own backend and timing engine (onnxruntime CPU,
1 thread, pinned, adaptive timing, median). Prints the relative difference between the passes and Kendall's tau
between them: a prediction cannot rank networks better than a second measurement of them does.

    .venv/bin/python bench/bench_network_noise.py [--n 30] [--seed 0] [--resolution 224] [--cpu 0]
        [--realtime-priority 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from device_agents.backends.base import OpInput  # noqa: E402
from device_agents.backends.onnxruntime import OnnxRuntimeBackend  # noqa: E402
from device_agents.scheduling import set_realtime_priority  # noqa: E402
from device_agents.timing import TimingPolicy  # noqa: E402
from fbnet_core.fidelity import kendall_tau  # noqa: E402
from fbnet_core.stats import sample_stats  # noqa: E402
from search_client.space.export import export_onnx  # noqa: E402
from search_client.validation.validate import validation_models  # noqa: E402

PASSES = 2


def measure_pass(backend: OnnxRuntimeBackend, inputs: list[OpInput]) -> list[float]:
    medians_us = []
    for op_input in inputs:
        runner = backend.prepare(op_input)
        try:
            medians_us.append(sample_stats(runner.measure(TimingPolicy()).samples_us).median_us)
        finally:
            runner.close()
    return medians_us


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30, help="random architectures besides the zoo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--cpu", type=int, default=0, help="the CPU to measure on")
    parser.add_argument("--realtime-priority", type=int, default=0, help="SCHED_FIFO priority (0: off)")
    args = parser.parse_args()
    if args.realtime_priority:
        set_realtime_priority(args.realtime_priority)
    backend = OnnxRuntimeBackend(cpu_affinity=[args.cpu])
    models = [m for m in validation_models(args.n, args.seed, args.resolution) if m.arch is not None]
    with tempfile.TemporaryDirectory(prefix="network-noise-") as folder:
        inputs = []
        for model in models:
            path = Path(folder) / f"{model.network.key}.onnx"
            path.write_bytes(export_onnx(model.network.spec))
            inputs.append(OpInput(model.network.key, path, "", model.network.spec))
        first, second = (np.asarray(measure_pass(backend, inputs)) for _ in range(PASSES))
    difference_pct = 100 * np.abs(second - first) / np.minimum(first, second)
    tau = kendall_tau(list(first), list(second))
    print(
        f"{len(models)} networks measured twice: |difference| median {np.median(difference_pct):.1f} %, "
        f"p90 {np.percentile(difference_pct, 90):.1f} %, max {difference_pct.max():.1f} %; "
        f"second / first median {np.median(second / first):.3f}; Kendall tau between the passes "
        f"{'n/a' if tau is None else f'{tau:.3f}'}"
    )


if __name__ == "__main__":
    main()
