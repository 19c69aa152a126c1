"""Benchmark: the paper's RQ2 on this machine - does the latency-aware loss find faster networks at equal accuracy?

1. LUT: every op of the search space is exported (search_client.space.export) and measured here with the device agent's
   own timing engine and onnxruntime backend (CPU, 1 thread, in-process; no server in the loop).
2. Two searches on digits, identical but for the loss: latency-unaware (the paper's alpha = 0: cross-entropy
   alone) and the paper's CE * 0.2 * log(LAT)^0.6, both with `dnas search`'s defaults (temperature 5 -> 0.087 over
   the search, theta's steps and lr, LAT's unit from the LUT, label smoothing; docs/search.md) unless a flag
   below overrides one.
3. Each argmax architecture is trained from scratch with the same recipe and seed.
4. Each trained network is exported whole and measured with the same engine: predicted (LUT sum) vs measured.
   The two networks are measured in --network-rounds alternating rounds (median of the rounds' medians): a slow
   phase of a shared machine then slows both, not whichever network it happens to fall on.

    .venv/bin/python bench/bench_rq2.py [--resolution 16] [--width 0.5] [--search-epochs 12] [--train-epochs 12]

Prints, for both searches, the architecture, predicted and measured latency, top-1, and the ratios against the
latency-unaware run (goal: >= 25% faster predicted and measured, top-1 within 2 points); writes rq2.json.

With --out, the LUT is kept there (lut.json) and reused, and each search resumes from its checkpoint, so a run can
be continued and both searches judged against one LUT. On two cores the searches can run side by side:

    bench_rq2.py --out DIR --only latency_unaware ...   # measures the LUT first, then searches
    bench_rq2.py --out DIR --only latency_aware ...     # started once DIR/lut.json exists
    bench_rq2.py --out DIR ...                          # both finished: trains, measures, compares
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_machine import low_priority, timing_lock  # noqa: E402  (bench/ is not a package)

from device_agents.backends.base import Backend, OpInput
from device_agents.backends.onnxruntime import OnnxRuntimeBackend
from device_agents.measure import measure_op
from device_agents.overhead import OverheadMeasuringBackend
from device_agents.timing import TimingPolicy
from fbnet_core.arch import Architecture
from fbnet_core.lut_costs import LutCosts
from fbnet_core.measurement import MeasurementRecord
from fbnet_core.network_fit import fit_network_costs, lut_ops
from fbnet_core.predict import predict_latency_us
from fbnet_core.space import SearchSpace
from search_client.errors import InvalidSearchConfigError
from search_client.search.data import global_batches, load_data
from search_client.search.loop import CHECKPOINT_NAME, SearchConfig, SearchResult, run_search
from search_client.search.loss import LossConfig
from search_client.search.schedule import split_for_search
from search_client.search.train import TrainConfig, train_architecture
from search_client.space.export import export_module, export_onnx, sha256_hex
from search_client.validation.theta_pull import ThetaPull, measure_theta_pull

GOAL_FASTER = 0.25
GOAL_TOP1_POINTS = 2.0
POLICY = TimingPolicy(min_s=0.2, max_s=0.5)
LUT_NAME = "lut.json"
RUN_NAMES = ("latency_unaware", "latency_aware")


def measure_record(backend: Backend, key: str, onnx: bytes, spec: dict, folder: Path) -> MeasurementRecord:
    path = folder / f"{key}.onnx"
    path.write_bytes(onnx)
    record = measure_op(backend, OpInput(key, path, sha256_hex(onnx), spec), POLICY)
    if record.is_failure:
        raise RuntimeError(f"{key}: {record.error}")
    return record


def measure_median_us(backend: Backend, key: str, onnx: bytes, spec: dict, folder: Path) -> float:
    samples_us = measure_record(backend, key, onnx, spec, folder).samples_us
    assert samples_us is not None  # measure_record raised for a failure
    return statistics.median(samples_us)


def measured_lut(space: SearchSpace, backend: Backend, folder: Path, lock: Path | None) -> LutCosts:
    """The LUT kept in `folder`, or a fresh measurement saved there (a resumed or split run uses one LUT), with
    its work scale and boundary share fitted for `space` as a search fits it."""
    saved = folder / LUT_NAME
    if saved.is_file():
        body = json.loads(saved.read_text())
        # A LUT saved as plain key -> median (no overhead figures) is read as such.
        lut = fit_network_costs(LutCosts.from_body(body) if "entries" in body else LutCosts(body), space)
        print(f"LUT: {len(lut.median_us)} ops from {saved}; {lut.summary_line()}")
        return lut
    with timing_lock(lock):
        body = measure_lut(space, backend, folder)
    saved.write_text(json.dumps(body, indent=1, sort_keys=True))
    lut = fit_network_costs(LutCosts.from_body(body), space)
    print(lut.summary_line())
    return lut


def measure_lut(space: SearchSpace, backend: Backend, folder: Path) -> dict:
    """A `GET /lut/{device}`-shaped body: each op's median and the invocation overhead the agent measured."""
    ops = lut_ops(space)
    entries = {}
    started = time.perf_counter()
    probing = OverheadMeasuringBackend(backend)
    try:
        for op in ops:
            record = measure_record(probing, op.key, export_onnx(op.spec), op.spec, folder)
            assert record.runtime is not None and record.samples_us is not None
            overhead = record.runtime["extra"].get("invocation_overhead")
            entries[op.key] = {
                "median_us": statistics.median(record.samples_us),
                "invocation_overhead": overhead
                and {k: overhead[k] for k in ("us", "input_us", "output_us", "fixed_us")},
            }
    finally:
        probing.close()
    print(f"LUT: {len(ops)} ops measured in {time.perf_counter() - started:.0f} s")
    return {"device": "bench-rq2-onnxruntime-cpu-1t", "entries": entries}


def search_config(loss: LossConfig, args: argparse.Namespace) -> SearchConfig:
    return SearchConfig(
        data="digits",
        resolution=args.resolution,
        width=args.width,
        head_channels=args.head_channels,
        small_input=True,
        epochs=args.search_epochs,
        batch_size=args.batch_size,
        mode="weighted",
        seed=args.seed,
        loss=loss,
        theta_lr=args.theta_lr,
        theta_passes=args.theta_passes,
        temperature_decay=args.temperature_decay,
        paper_schedule=args.paper_schedule,
        lut_overhead_once=not args.raw_lut,
    )


def search(name: str, config: SearchConfig, lut: LutCosts, folder: Path) -> tuple[SearchResult, float]:
    started = time.perf_counter()
    # A finished or interrupted search in --out is resumed rather than redone.
    resume = (folder / name / CHECKPOINT_NAME).is_file()
    with low_priority():
        result = run_search(config, lut, folder / name, resume=resume, sample_count=0)
    return result, time.perf_counter() - started


def run_one(
    name: str,
    loss: LossConfig,
    aware_loss: LossConfig,
    args: argparse.Namespace,
    lut: LutCosts,
    folder: Path,
) -> tuple[dict, bytes]:
    """Search (or resume), report the pull on theta, train the argmax from scratch; the run and its ONNX."""
    config = search_config(loss, args)
    result, search_s = search(name, config, lut, folder)
    pull = final_theta_pull(config, result, aware_loss)
    theta_samples = result.schedule.theta_steps * config.batch_size
    print(f"{name}: {pull.describe()}; this search gave theta {theta_samples:,} samples")
    arch = Architecture(tuple(result.state.model.argmax_blocks()))
    with low_priority():
        trained = train_architecture(
            arch,
            result.space.params,
            TrainConfig(epochs=args.train_epochs, batch_size=args.batch_size, seed=args.seed),
        )
    onnx = export_module(trained.model.eval().cpu(), result.space.input_shape)
    run = {
        "name": name,
        "loss": dataclasses.asdict(loss),
        "arch": arch.to_string(),
        "skips": arch.blocks.count("skip"),
        "predicted_ms": predict_latency_us(result.costs, arch, result.space) / 1000.0,
        "top1": trained.top1,
        "search_s": search_s,
        "schedule": result.schedule.to_json(),
        "final_expected_latency_ms": result.state.history[-1].expected_latency_ms,
        "theta_pull_latency_over_ce": pull.latency_over_cross_entropy,
        "theta_samples_needed": pull.theta_samples_needed,
        "theta_samples": theta_samples,
    }
    return run, onnx


def measure_networks(
    backend: OnnxRuntimeBackend, networks: dict[str, bytes], rounds: int, folder: Path, lock: Path | None
) -> dict[str, list[float]]:
    """Each network's median (us) per round; the order alternates between rounds."""
    names = list(networks)
    round_us: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        with timing_lock(lock):
            for name in names if index % 2 == 0 else reversed(names):
                round_us[name].append(measure_median_us(backend, f"net-{name}", networks[name], {}, folder))
    return round_us


def final_theta_pull(config: SearchConfig, result: SearchResult, aware_loss: LossConfig) -> ThetaPull:
    """How hard the *aware* loss pulls on theta at the end of this search, CE part vs latency part, over the
    theta split at the last temperature (for the unaware search: what the aware loss would have done there)."""
    data = load_data(config.data, config.resolution, config.seed)
    split = split_for_search(len(data.train), config.weight_fraction, config.seed)
    images, labels = data.train.tensors
    batches = [
        (images[rows], labels[rows]) for rows in global_batches(split.theta_indices, config.batch_size, 0)
    ]
    tau = result.state.history[-1].temperature
    resolved = aware_loss.resolved(result.table.min_ms(), paper=config.paper_schedule)
    return measure_theta_pull(result.state.model, result.table, resolved, batches, tau)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--head-channels", type=int, default=128)
    parser.add_argument("--search-epochs", type=int, default=12)
    parser.add_argument("--train-epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--aware-loss",
        choices=("multiplicative", "additive"),
        default="multiplicative",
        help="the aware run's loss",
    )
    parser.add_argument("--lambda-per-ms", type=float, default=1.0, help="additive loss weight (1/ms)")
    # Search settings: left out, each takes `dnas search`'s default (SearchConfig / LossConfig).
    parser.add_argument("--theta-lr", type=float, default=None, help="Adam lr for theta")
    parser.add_argument(
        "--theta-passes", type=int, default=None, help="passes over the theta split per epoch"
    )
    parser.add_argument("--temperature-decay", type=float, default=None, help="tau = 5 exp(-d epoch)")
    parser.add_argument("--latency-unit-ms", type=float, default=None, help="LAT's unit in the paper's loss")
    parser.add_argument(
        "--label-smoothing",
        type=float,
        default=None,
        help="smooth both searches' CE (final networks: plain CE)",
    )
    parser.add_argument("--paper-schedule", action="store_true", help="the paper's exact settings")
    parser.add_argument(
        "--raw-lut", action="store_true", help="search and predict with raw sums of medians (overhead per op)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads for search and training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--network-rounds", type=int, default=5, help="alternating rounds measuring the two whole networks"
    )
    parser.add_argument(
        "--timing-lock",
        type=Path,
        default=None,
        help="hold an flock on this file while measuring (shared machines)",
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the LUT, the searches and rq2.json here")
    parser.add_argument(
        "--only",
        choices=RUN_NAMES,
        default=None,
        help="run this search only (needs --out), e.g. one per core",
    )
    args = parser.parse_args()
    if args.network_rounds < 1:
        parser.error("--network-rounds must be at least 1")
    try:  # SearchConfig owns the schedule's rules; here they become usage errors
        search_config(LossConfig(alpha=0.0, label_smoothing=args.label_smoothing), args)
    except InvalidSearchConfigError as exc:
        parser.error(str(exc))
    if args.only and args.out is None:
        parser.error("--only needs --out: the other search and the comparison find its checkpoint there")
    torch.set_num_threads(args.threads)
    backend = OnnxRuntimeBackend(threads=1)
    folder = args.out or Path(tempfile.mkdtemp(prefix="rq2-"))
    folder.mkdir(parents=True, exist_ok=True)
    space = SearchConfig(
        resolution=args.resolution, width=args.width, head_channels=args.head_channels, small_input=True
    ).space(num_classes=10)
    lut = measured_lut(space, backend, folder, args.timing_lock)
    aware_loss = LossConfig(
        args.aware_loss,
        lambda_per_ms=args.lambda_per_ms,
        latency_unit_ms=args.latency_unit_ms,
        label_smoothing=args.label_smoothing,
    )
    # The paper's latency-unaware baseline: alpha 0, cross-entropy alone (smoothed as the aware run's is).
    unaware_loss = dataclasses.replace(aware_loss, form="multiplicative", alpha=0.0)
    losses = dict(zip(RUN_NAMES, (unaware_loss, aware_loss), strict=True))
    if args.only:
        _, search_s = search(args.only, search_config(losses[args.only], args), lut, folder)
        print(f"{args.only}: search done in {search_s:.0f} s; run again without --only to compare")
        return
    searched = [run_one(name, loss, aware_loss, args, lut, folder) for name, loss in losses.items()]
    runs = [run for run, _ in searched]
    round_us = measure_networks(
        backend, {run["name"]: onnx for run, onnx in searched}, args.network_rounds, folder, args.timing_lock
    )
    for run in runs:
        run["round_ms"] = [us / 1000.0 for us in round_us[run["name"]]]
        run["measured_ms"] = statistics.median(run["round_ms"])
    base, aware = runs
    aware_won = sum(a < b for a, b in zip(aware["round_ms"], base["round_ms"], strict=True))
    print(
        f"\nRQ2 on digits {args.resolution}x{args.resolution}, width {args.width}, onnxruntime CPU 1 thread"
    )
    for run in runs:
        print(
            f"{run['name']:>16}: predicted {run['predicted_ms']:.3f} ms, measured {run['measured_ms']:.3f} ms "
            f"(median of {len(run['round_ms'])} rounds; LUT error "
            f"{100 * (run['predicted_ms'] - run['measured_ms']) / run['measured_ms']:+.1f} %), "
            f"top-1 {run['top1']:.1%}, {run['skips']} skips, search {run['search_s']:.0f} s\n"
            f"{'':>18}{run['arch']}"
        )
    faster_predicted = 1.0 - aware["predicted_ms"] / base["predicted_ms"]
    faster_measured = 1.0 - aware["measured_ms"] / base["measured_ms"]
    top1_points = 100.0 * (aware["top1"] - base["top1"])
    print(
        f"latency-aware vs unaware: {faster_predicted:.1%} faster predicted, {faster_measured:.1%} faster measured "
        f"(goal >= {GOAL_FASTER:.0%}; aware faster in {aware_won} of {args.network_rounds} rounds), top-1 "
        f"{top1_points:+.1f} points (goal within {GOAL_TOP1_POINTS})"
    )
    summary = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "runs": runs,
        "faster_predicted": faster_predicted,
        "faster_measured": faster_measured,
        "top1_points": top1_points,
        "aware_faster_rounds": aware_won,
        "lut_entries": len(lut.median_us),
        "lut_prediction": lut.describe(),
    }
    (folder / "rq2.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {folder / 'rq2.json'}")


if __name__ == "__main__":
    main()
