"""Benchmark: `dnas search --target-ms` - does the search land within its latency budget, on the device too?

1. LUT: the search space measured here by the agent's own timing engine and onnxruntime backend, with each op's
   invocation cost (bench_rq2.py's; with --out it is kept in DIR/lut.json and reused, e.g. copied from an RQ2 run).
2. For each target and seed, a search on digits with `dnas search`'s defaults and the budget: the most probable
   architecture whose predicted latency lies in [0.95 T, T] (search_client/search/budget.py). Targets are given in
   ms (--targets-ms) or as fractions of the way from the LUT's fastest architecture to its slowest
   (--target-fractions).
3. Each chosen network is exported whole (freshly initialised: its latency does not depend on trained weights)
   and measured with the same engine, all of them in --network-rounds alternating rounds (median of the rounds).

    .venv/bin/python bench/bench_target.py --out DIR [--target-fractions 0.1,0.2,0.35] [--seeds 0,1]
    bench_target.py --out DIR --only 1:0 ...    # one search (index of the target : seed), e.g. one per core
    bench_target.py --out DIR ...                # all searched: measures and compares

Prints per run the target, the predicted latency and how far under the target it landed (goal: within 5 % under
it), and the measured latency against the prediction (goal: within 10 %); writes target.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_rq2 import measure_networks, measured_lut, search  # noqa: E402  (bench/ is not a package)

from device_agents.backends.onnxruntime import OnnxRuntimeBackend
from fbnet_core.formats.architecture_file import load_architecture
from fbnet_core.lut_costs import LutCosts
from search_client.lut.latency import latency_table_for_space
from search_client.search.loop import TARGET_NAME, SearchConfig
from search_client.search.loss import LossConfig
from search_client.space.export import export_module
from search_client.space.model import build_model

GOAL_UNDER_PCT = 5.0
GOAL_MEASURED_PCT = 10.0


def base_config(args: argparse.Namespace, loss: LossConfig, seed: int) -> SearchConfig:
    return SearchConfig(
        data="digits",
        resolution=args.resolution,
        width=args.width,
        head_channels=args.head_channels,
        small_input=True,
        epochs=args.search_epochs,
        batch_size=args.batch_size,
        mode="weighted",
        seed=seed,
        loss=loss,
    )


def targets_ms(args: argparse.Namespace, lut: LutCosts) -> list[float]:
    """The targets in ms: as given, or at fractions of the way from the fastest architecture to the slowest."""
    if args.targets_ms:
        return [float(value) for value in args.targets_ms.split(",")]
    space = base_config(args, LossConfig(), 0).space(num_classes=10)
    table = latency_table_for_space(space, lut)
    fastest_ms = table.min_ms()
    slowest_ms = float(table.block_ms.max(dim=1).values.sum()) + table.fixed_ms
    print(f"LUT's fastest architecture {fastest_ms:.3f} ms, slowest {slowest_ms:.3f} ms")
    return [
        round(fastest_ms + float(f) * (slowest_ms - fastest_ms), 3) for f in args.target_fractions.split(",")
    ]


def run_name(target_ms: float, seed: int) -> str:
    return f"target{target_ms:g}ms-seed{seed}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--head-channels", type=int, default=128)
    parser.add_argument("--search-epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--targets-ms", default="", help="comma-separated targets in ms")
    parser.add_argument(
        "--target-fractions",
        default="0.1,0.2,0.35",
        help="targets as fractions from the fastest to the slowest",
    )
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the searches")
    parser.add_argument("--network-rounds", type=int, default=5)
    parser.add_argument("--timing-lock", type=Path, default=None, help="flock this file while measuring")
    parser.add_argument(
        "--out", type=Path, default=None, help="keep the LUT, the searches and target.json here"
    )
    parser.add_argument("--only", default=None, help="TARGET_INDEX:SEED - run this search only (needs --out)")
    args = parser.parse_args()
    if args.only and args.out is None:
        parser.error("--only needs --out: the comparison finds the searches there")
    torch.set_num_threads(args.threads)
    backend = OnnxRuntimeBackend(threads=1)
    folder = args.out or Path(tempfile.mkdtemp(prefix="target-"))
    folder.mkdir(parents=True, exist_ok=True)
    space = base_config(args, LossConfig(), 0).space(num_classes=10)
    lut = measured_lut(space, backend, folder, args.timing_lock)
    targets = targets_ms(args, lut)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    runs = [(target, seed) for target in targets for seed in seeds]
    if args.only:
        index, seed = (int(part) for part in args.only.split(":"))
        runs = [(targets[index], seed)]
    results = []
    for target, seed in runs:
        name = run_name(target, seed)
        result, search_s = search(name, base_config(args, LossConfig(target_ms=target), seed), lut, folder)
        chosen = load_architecture(folder / name / TARGET_NAME)
        assert chosen.budget is not None and chosen.predicted_latency_ms is not None
        print(
            f"{name}: predicted {chosen.predicted_latency_ms:.3f} ms ({chosen.budget['landed_pct']:+.1f} % of the "
            f"target), argmax {result.state.history[-1].argmax_latency_ms:.3f} ms, search {search_s:.0f} s"
        )
        network = build_model(chosen.arch, result.space).eval()
        results.append((name, target, seed, chosen, export_module(network, result.space.input_shape)))
    if args.only:
        print("search done; run again without --only to measure and compare")
        return
    round_us = measure_networks(
        backend,
        {name: onnx for name, _, _, _, onnx in results},
        args.network_rounds,
        folder,
        args.timing_lock,
    )
    print(
        f"\n--target-ms on digits {args.resolution}x{args.resolution}, width {args.width}, onnxruntime CPU 1 thread"
    )
    rows = []
    for name, target, seed, chosen, _ in results:
        measured_ms = statistics.median(round_us[name]) / 1000.0
        predicted_ms = chosen.predicted_latency_ms
        assert chosen.budget is not None and predicted_ms is not None
        landed_pct = chosen.budget["landed_pct"]
        error_pct = 100.0 * (measured_ms - predicted_ms) / predicted_ms
        within = -GOAL_UNDER_PCT <= landed_pct <= 0.0
        print(
            f"target {target:.3f} ms, seed {seed}: predicted {predicted_ms:.3f} ms ({landed_pct:+.1f} %, "
            f"{'within' if within else 'outside'} 5 % under it), measured {measured_ms:.3f} ms "
            f"({error_pct:+.1f} % of predicted, {'within' if abs(error_pct) <= GOAL_MEASURED_PCT else 'outside'} "
            f"10 %) - {chosen.arch}"
        )
        rows.append({"name": name, "target_ms": target, "seed": seed, "arch": str(chosen.arch),
                     "predicted_ms": predicted_ms, "landed_pct": landed_pct, "in_window": within,
                     "measured_ms": measured_ms, "round_ms": [us / 1000.0 for us in round_us[name]],
                     "measured_vs_predicted_pct": error_pct})  # fmt: skip
    met = sum(row["in_window"] and abs(row["measured_vs_predicted_pct"]) <= GOAL_MEASURED_PCT for row in rows)
    print(
        f"goal met (within 5 % under the target, measured within 10 % of predicted) in {met} runs of {len(rows)}"
    )
    (folder / "target.json").write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}, "runs": rows},
                                                   indent=2, default=str))  # fmt: skip
    print(f"wrote {folder / 'target.json'}")


if __name__ == "__main__":
    main()
