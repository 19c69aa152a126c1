"""Benchmark: the paper's RQ5 on the devices we have - is each device's searched architecture fastest on it?

Two emulated devices on this CPU give two distinct LUTs (--pair): `threads` = onnxruntime with 1 thread on CPU 0
(`cpu-ort-t1`) and with 2 threads on CPUs 0-1 (`cpu-ort-t2`), where a second thread changes large and small ops'
costs differently; `runtimes` = onnxruntime vs PyTorch eager (`cpu-torch-t1`), both 1 thread on CPU 0, whose
per-op overheads and kernels differ; `optimization` = onnxruntime with all graph optimisations (`cpu-ort-t1`) and
with none (`cpu-ort-t1-noopt`: BatchNorm and ReLU run as their own nodes), both 1 thread on CPU 0, so each device
has a core to itself while it measures; `executorch` = onnxruntime (`cpu-ort-t1`) and ExecuTorch with the XNNPACK
delegate (`cpu-et-t1`: every op and network compiled to a .pte program), both 1 thread on CPU 0, the runtimes a
network ships on to a PC and to a phone; `precision` = onnxruntime fp32 (`cpu-ort-t1`) and int8 (`cpu-ort-t1-int8`:
each op statically quantised by the agent, device_agents/quantize.py), both 1 thread on CPU 0, whose kernels
differ most (grouped convolutions 1.5-3x dearer in int8, wide expansions cheaper). End to end, nothing mocked:

1. A real `profiler-server serve --dev` (SQLite, temp folder); both devices register through real
   `device-agent run` processes; the search space's ops and the whole networks that fit how the LUT's ops add up
   (what `dnas lut request` queues) are uploaded, compiled for each device's format, and queued for both
   (search_client.lut.client), and each agent drains its queue alone (`--once`), never both at the same time.
   Each device's LUT is then read as `dnas search` reads it (fbnet_core/lut_costs.py, network_fit.py).
2. One DNAS search per device (search_client.search.loop.loop.run_search, digits, identical settings and seed; only the
   LUT differs), each device's argmax architecture kept. The default loss is the additive CE + lambda * LAT with
   lambda = --latency-weight / (the device's expected latency under uniform theta): the same *relative* latency
   pull on both devices, whose LUTs differ ~10x in scale. (The paper's multiplicative loss barely moves theta on
   digits - its latency gradient is ~70x smaller than the cross-entropy's, docs/search.md, RQ2 - so a search
   with it is close to latency-unaware and says little about RQ5; `--aware-loss multiplicative` runs it anyway.)
3. Both architectures (and FBNet-A/B/C in the same space, for the trade-off figure) become whole-network ops,
   measured by both agents in --network-rounds rounds (each network's median); each is trained from scratch
   with the same recipe for its digits top-1.

    .venv/bin/python bench/bench_rq5.py [--pair threads|runtimes|optimization|executorch|precision] [--resolution 16]
        [--search-epochs 8] [--train-epochs 8] [--network-rounds 5] [--raw-lut] [--out DIR]

Prints the 2 x 2 table of measured latencies and, per device, the ratio (other device's architecture / own
architecture; > 1 means the own one is faster, the paper's iPhone X figure is 1.4x); writes rq5.json,
tradeoff_points.json, tradeoff.png and one arch_<device>.png per device to --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_stack import Stack, exit_on_sigterm  # noqa: E402  (bench/ is not a package)
from shared_machine import low_priority, timing_lock  # noqa: E402

from fbnet_core.arch import Architecture  # noqa: E402
from fbnet_core.blocks import CANDIDATES  # noqa: E402
from fbnet_core.client import ProfilerClient  # noqa: E402
from fbnet_core.keys import Op, make_op, network_spec  # noqa: E402
from fbnet_core.lut_costs import LutCosts  # noqa: E402
from fbnet_core.network_fit import fit_network_costs, lut_ops  # noqa: E402
from fbnet_core.predict import predict_latency_us  # noqa: E402
from fbnet_core.space import SearchSpace  # noqa: E402
from search_client.lut.client import Waiter, missing_keys, request_lut  # noqa: E402
from search_client.lut.latency import latency_table_for_space  # noqa: E402
from search_client.search.loop import EpochRecord, SearchConfig, run_search  # noqa: E402
from search_client.search.loss import LossConfig  # noqa: E402
from search_client.search.train import TrainConfig, train_architecture  # noqa: E402
from search_client.space.zoo import get_model  # noqa: E402
from search_client.validation.tradeoff import TradeoffPoint, plot_architecture, plot_tradeoff, write_points  # noqa: E402
from search_client.validation.validate import measure_rounds  # noqa: E402

# Two emulated devices on this CPU, per --pair: name -> `device-agent run` arguments.
PAIRS: dict[str, dict[str, tuple[str, ...]]] = {
    "threads": {
        "cpu-ort-t1": ("--threads", "1", "--cpu-affinity", "0"),
        "cpu-ort-t2": ("--threads", "2", "--cpu-affinity", "0-1"),
    },
    "runtimes": {
        "cpu-ort-t1": ("--threads", "1", "--cpu-affinity", "0"),
        "cpu-torch-t1": ("--backend", "torch", "--threads", "1", "--cpu-affinity", "0"),
    },
    "optimization": {
        "cpu-ort-t1": ("--threads", "1", "--cpu-affinity", "0"),
        "cpu-ort-t1-noopt": (
            "--threads", "1", "--cpu-affinity", "0", "--graph-optimization", "ORT_DISABLE_ALL",
        ),
    },
    "executorch": {
        "cpu-ort-t1": ("--threads", "1", "--cpu-affinity", "0"),
        "cpu-et-t1": ("--backend", "executorch", "--threads", "1", "--cpu-affinity", "0"),
    },
    "precision": {
        "cpu-ort-t1": ("--threads", "1", "--cpu-affinity", "0"),
        "cpu-ort-t1-int8": ("--threads", "1", "--cpu-affinity", "0", "--precision", "int8"),
    },
}
ZOO_FOR_TRADEOFF = ("fbnet_a", "fbnet_b", "fbnet_c")
NUM_CLASSES = 10  # digits


def measure(
    stack: Stack,
    admin: ProfilerClient,
    devices: dict[str, tuple[str, ...]],
    ops: list[Op],
    lock: Path | None,
) -> dict[str, dict[str, dict[str, Any]]]:
    """Queue `ops` on every device, let each device's agent drain its queue alone; device -> key -> LUT entry."""
    for device in devices:
        request_lut(admin, device, ops)
    for device, agent_args in devices.items():
        with timing_lock(lock):
            started = time.perf_counter()
            stack.drain(device, agent_args)
        print(f"{device}: queue drained in {time.perf_counter() - started:.0f} s")
    keys = [op.key for op in ops]
    luts = {device: admin.get_lut(device, keys=keys) for device in devices}
    for device, lut in luts.items():
        if lut.missing:
            raise SystemExit(
                f"{device}: {len(lut.missing)} ops not measured (see agent-{device}.log): {lut.missing}"
            )
    return {device: dict(lut.entries) for device, lut in luts.items()}


def measure_in_rounds(
    stack: Stack,
    admin: ProfilerClient,
    devices: dict[str, tuple[str, ...]],
    ops: list[Op],
    rounds: int,
    lock: Path | None,
) -> dict[str, dict[str, list[float]]]:
    """`measure`, then `rounds - 1` more rounds per device (search_client.validation.validate.measure_rounds, its agent
    drained alone for each); device -> key -> one median per round. One measurement of two close networks can
    land in one of this machine's slow phases."""
    measure(stack, admin, devices, ops, lock)
    keys = [op.key for op in ops]

    def drained(agent_args: tuple[str, ...]) -> Waiter:
        def wait(
            client: ProfilerClient, device: str, keys: list[str], timeout_s: float, poll_s: float, *,
            stale: Mapping[str, str] | None = None,
        ) -> list[str]:  # fmt: skip
            with timing_lock(lock):
                stack.drain(device, agent_args)
            return missing_keys(client, device, keys, stale=stale)

        return wait

    return {
        device: measure_rounds(admin, device, keys, rounds - 1, timeout_s=0.0, wait=drained(agent_args))  # no polling
        for device, agent_args in devices.items()
    }


def device_costs(entries: Mapping[str, Mapping[str, Any]], space: SearchSpace, raw: bool) -> LutCosts:
    """The device's LUT as `dnas search` reads it: each op's invocation overhead counted once per network where
    the agent measured it, with the work scale and boundary share fitted on the LUT's whole networks (fbnet_core/network_fit.py);
    with `raw`, sums of medians (`dnas search --raw-lut`)."""
    costs = LutCosts.from_entries(entries)
    return costs.raw() if raw else fit_network_costs(costs, space)


def device_loss(args: argparse.Namespace, lut: LutCosts, space: SearchSpace) -> LossConfig:
    """The search loss for one device: the additive form scaled to the device's own latency (see the docstring)."""
    if args.aware_loss == "multiplicative":
        return LossConfig(latency_unit_ms=args.latency_unit_ms)
    table = latency_table_for_space(space, lut)
    layers, candidates = len(space.layers), len(CANDIDATES)
    uniform_ms = float(table.expected_ms(torch.full((1, layers, candidates), 1.0 / candidates)))
    return LossConfig("additive", lambda_per_ms=args.latency_weight / uniform_ms)


def search(config: SearchConfig, lut: LutCosts, folder: Path) -> tuple[Architecture, SearchSpace, float]:
    started = time.perf_counter()

    def show(record: EpochRecord) -> None:
        print(
            f"  epoch {record.epoch}: val top-1 {record.val_accuracy:.1%}, argmax {record.argmax_latency_ms:.3f} ms"
        )

    result = run_search(config, lut, folder, on_epoch_end=show, sample_count=1)  # 0 raises in sample_blocks
    return (
        Architecture(tuple(result.state.model.argmax_blocks())),
        result.space,
        time.perf_counter() - started,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pair", choices=sorted(PAIRS), default="threads", help="which two emulated devices")
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--head-channels", type=int, default=256)
    parser.add_argument("--search-epochs", type=int, default=8)
    parser.add_argument("--train-epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--aware-loss", choices=("additive", "multiplicative"), default="additive", help="the searches' loss"
    )
    parser.add_argument(
        "--latency-weight",
        type=float,
        default=0.5,
        help="additive loss: lambda_per_ms = this / the device's uniform-theta latency (ms)",
    )
    parser.add_argument("--latency-unit-ms", type=float, default=0.01, help="LAT's unit in the paper's loss")
    parser.add_argument(
        "--raw-lut", action="store_true",
        help="search and predict with sums of medians, as `dnas search --raw-lut` (no overhead taken out)",
    )  # fmt: skip
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads for search and training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--network-rounds", type=int, default=5,
        help="whole networks measured this many times on each device (median); 1: once, as before",
    )  # fmt: skip
    parser.add_argument(
        "--timing-lock",
        type=Path,
        default=None,
        help="hold an flock on this file while measuring (shared machines)",
    )
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="rq5.json and the figures (default: workdir)")
    args = parser.parse_args()
    if args.network_rounds < 1:
        parser.error("--network-rounds must be at least 1")
    exit_on_sigterm()
    devices = PAIRS[args.pair]
    torch.set_num_threads(args.torch_threads)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-rq5-"))
    out = args.out or workdir
    out.mkdir(parents=True, exist_ok=True)
    config = SearchConfig(
        data="digits", resolution=args.resolution, width=args.width, head_channels=args.head_channels, small_input=True,
        epochs=args.search_epochs, batch_size=args.batch_size, mode="weighted", seed=args.seed,
    )  # fmt: skip
    space = config.space(NUM_CLASSES)
    stack = Stack(workdir, server_cpus=(1,))
    try:
        stack.start_server()
        with stack.admin() as admin:
            for device, agent_args in devices.items():
                stack.drain(device, agent_args)  # registers it; its queue is still empty
            luts = {
                device: device_costs(entries, space, args.raw_lut)
                for device, entries in measure(
                    stack, admin, devices, lut_ops(space), args.timing_lock
                ).items()
            }
            searched: dict[str, Architecture] = {}
            for device in devices:
                loss = device_loss(args, luts[device], space)
                print(f"{device}: {loss}; {luts[device].summary_line()}")
                device_config = dataclasses.replace(config, loss=loss)
                with low_priority():
                    arch, searched_space, search_s = search(
                        device_config, luts[device], workdir / f"search-{device}"
                    )
                assert searched_space == space  # the LUT was measured for exactly this space
                searched[device] = arch
                print(f"searched for {device} in {search_s:.0f} s: {arch}")
            networks = {f"searched_{device}": arch for device, arch in searched.items()}
            networks.update({name: get_model(name).arch for name in ZOO_FOR_TRADEOFF})
            network_ops = {name: make_op(network_spec(arch, space.params)) for name, arch in networks.items()}
            measured = measure_in_rounds(
                stack, admin, devices, list(network_ops.values()), args.network_rounds, args.timing_lock
            )
    finally:
        stack.close()

    round_ms = {
        (name, device): [us / 1000.0 for us in measured[device][op.key]]
        for name, op in network_ops.items()
        for device in devices
    }
    latency_ms = {cell: statistics.median(values) for cell, values in round_ms.items()}
    predicted_ms = {
        (name, device): predict_latency_us(luts[device], arch, space) / 1000.0
        for name, arch in networks.items()
        for device in devices
    }
    top1_pct: dict[str, float] = {}
    for name, arch in networks.items():
        with low_priority():
            trained = train_architecture(
                arch,
                space.params,
                TrainConfig(epochs=args.train_epochs, batch_size=args.batch_size, seed=args.seed),
            )
        top1_pct[name] = 100.0 * trained.top1
        print(f"trained {name}: top-1 {top1_pct[name]:.1f} % on digits")

    first, second = devices
    print(
        f"\nRQ5 on digits {args.resolution}x{args.resolution} (small-input schedule), measured end to end, ms:"
    )
    width = max(len(device) for device in devices) + 2
    print(f"{'':>26}{first:>{width}}{second:>{width}}   top-1")
    for name in networks:
        row = "".join(f"{latency_ms[(name, device)]:>{width}.3f}" for device in devices)
        print(f"{name:>26}{row}   {top1_pct[name]:.1f} %")
    ratios = {}
    for device, other in ((first, second), (second, first)):
        own, foreign = f"searched_{device}", f"searched_{other}"
        ratios[device] = latency_ms[(foreign, device)] / latency_ms[(own, device)]
        verdict = "own architecture faster" if ratios[device] > 1 else "own architecture NOT faster"
        # The device's own LUT's view tells a search that missed its LUT's best from a LUT that misjudges.
        predicted = predicted_ms[(foreign, device)] / predicted_ms[(own, device)]
        print(
            f"on {device}: {foreign} / {own} = {ratios[device]:.3f}x ({verdict}); "
            f"its LUT predicted {predicted:.3f}x"
        )
        if args.network_rounds > 1:
            wins = sum(
                foreign_ms > own_ms
                for own_ms, foreign_ms in zip(round_ms[(own, device)], round_ms[(foreign, device)], strict=True)
            )
            print(f"  own faster in {wins} of {args.network_rounds} rounds")
    if searched[first] == searched[second]:
        print("both searches chose the same architecture: the two LUTs did not lead to different networks")

    points = [
        TradeoffPoint(name, "searched" if name.startswith("searched_") else "zoo", device,
                      latency_ms[(name, device)], top1_pct[name], f"digits {args.resolution}x{args.resolution}")
        for name in networks
        for device in devices
    ]  # fmt: skip
    write_points(out / "tradeoff_points.json", points)
    plot_tradeoff(points, out / "tradeoff.png", "digits top-1 vs latency measured on each emulated device")
    for device, arch in searched.items():
        plot_architecture(arch, out / f"arch_{device}.png", f"searched for {device}")
    summary = {
        "args": {key: str(value) for key, value in vars(args).items()},
        "devices": {name: " ".join(agent_args) for name, agent_args in devices.items()},
        "architectures": {name: arch.to_string() for name, arch in networks.items()},
        "measured_ms": {f"{name}@{device}": value for (name, device), value in latency_ms.items()},
        "round_ms": {f"{name}@{device}": values for (name, device), values in round_ms.items()},
        "predicted_ms": {f"{name}@{device}": value for (name, device), value in predicted_ms.items()},
        "top1_pct": top1_pct,
        "ratio_other_over_own": ratios,
        "lut_costs": {device: costs.describe() for device, costs in luts.items()},
    }
    (out / "rq5.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {out / 'rq5.json'}, tradeoff_points.json, tradeoff.png, arch_*.png")


if __name__ == "__main__":
    main()
