"""Benchmark on any device (the supernet step of bench/gpu_check.sh): supernet training throughput, weighted
sum of all candidates (the paper) vs single path, against the straightforward implementation
(`straightforward_weighted`: the supernet's reference mode; `straightforward_single_path`: a few lines
below) and a plain
network (k5_e6 in every layer), all measured in the same run. One child process per mode, so that each peak
memory figure is its own.

    .venv/bin/python bench/bench_supernet_throughput.py                     # CPU, 32x32, batch 32, width 1.0, 10 classes
    .venv/bin/python bench/bench_supernet_throughput.py --device cuda --resolution 224 --batch 192 --num-classes 100 \\
        --bf16 --channels-last                                      # the H200 configuration

A step is forward + cross-entropy + backward + SGD step over weights and theta, as in the search. Prints img/s
(median step), peak memory (CPU: the child's peak RSS above its RSS before the model was built; CUDA: the peak
allocated), and the ratios of ours against the straightforward implementation of the same mode, against the
plain network, and of single path against weighted.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F
from bench_supernet import Plain  # bench/ is not a package: the script's folder is on sys.path
from torch import nn

from fbnet_core.arch import Architecture
from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import SearchSpace, fbnet_space
from search_client.search.gumbel import gumbel_softmax_weights, sample_gumbel_noise
from search_client.search.supernet import DEFAULT_PATH_GROUPS, Supernet
from search_client.space.blocks import make_block
from search_client.space.model import build_model, make_classifier, make_head, make_stem

MODES = ("weighted", "straightforward_weighted", "single_path", "straightforward_single_path", "plain")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class StraightforwardSinglePath(nn.Module):
    """The single-path baseline written the obvious way: each layer holds the 9 blocks.py candidates and runs the
    one Gumbel-hard candidate of the first sample's draw for the whole batch. (The weighted baseline is the
    supernet's own reference mode, `Supernet(..., reference=True)`.)"""

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.stem = make_stem(space.stem)
        self.layers = nn.ModuleList(
            nn.ModuleList(
                make_block(name, layer.in_channels, layer.out_channels, layer.stride) for name in CANDIDATES
            )
            for layer in space.layers
        )
        self.head, self.classifier = make_head(space.head), make_classifier(space.classifier)
        self.theta = nn.Parameter(torch.zeros(len(space.layers), len(CANDIDATES)))

    def forward(
        self, images: torch.Tensor, temperature: float, noise: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        weights = gumbel_softmax_weights(self.theta, noise[:1], temperature, hard=True)
        x = self.stem(images)
        for candidates, layer_weights in zip(self.layers, weights.unbind(1), strict=True):
            index = int(layer_weights[0].argmax())
            x = candidates[index](x) * layer_weights[0, index]
        return self.classifier(self.head(x)), weights


def build_bench_model(args: argparse.Namespace, space: SearchSpace) -> nn.Module:
    if args.mode == "plain":
        return Plain(build_model(Architecture(("k5_e6",) * len(space.layers)), space))
    if args.mode == "straightforward_weighted":
        return Supernet(space, "weighted", reference=True)
    if args.mode == "straightforward_single_path":
        return StraightforwardSinglePath(space)
    return Supernet(space, args.mode, args.path_groups)


def measure_mode(args: argparse.Namespace) -> dict[str, float | str]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    space = fbnet_space(
        args.resolution, args.width, args.num_classes, args.head_channels, args.schedule == "small-input"
    )
    idle_mib = rss_mib()
    model = build_bench_model(args, space)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.randint(0, args.num_classes, (args.batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # Every mode draws the same noise, so both single-path implementations train the same random paths.
    noise_generator = torch.Generator().manual_seed(1)
    step_s: list[float] = []
    for step in range(args.warmup + args.steps):
        noise = sample_gumbel_noise(
            args.batch, torch.empty(len(space.layers), len(CANDIDATES)), noise_generator
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits, _ = model(images, 5.0, noise=noise.to(device))
            loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if step >= args.warmup:
            step_s.append(time.perf_counter() - started)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - idle_mib
    median_s = statistics.median(step_s)
    return {
        "mode": args.mode,
        "img_per_s": args.batch / median_s,
        "step_ms": 1000 * median_s,
        "peak_mib": peak_mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--head-channels", type=int, default=1984)
    parser.add_argument(
        "--schedule",
        choices=("imagenet", "small-input"),
        default="imagenet",
        help="stride schedule: imagenet (total stride 32) or small-input (total stride 8)",
    )
    parser.add_argument(
        "--path-groups", type=int, default=DEFAULT_PATH_GROUPS, help="single_path's sample groups per batch"
    )
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # set in the child processes
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure_mode(args)))
        return
    child_args = [
        f"--{name.replace('_', '-')}={value}"
        for name, value in vars(args).items()
        if name not in ("modes", "mode", "bf16", "channels_last") and value is not None
    ]
    child_args += ["--bf16"] * args.bf16 + ["--channels-last"] * args.channels_last
    results = {}
    for mode in args.modes.split(","):
        output = subprocess.run(
            [sys.executable, __file__, *child_args, "--mode", mode],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    print(
        f"supernet step on {args.device}, {args.resolution}x{args.resolution} ({args.schedule} strides), "
        f"batch {args.batch}, width {args.width}, "
        f"{'bf16' if args.bf16 else 'fp32'}{', channels_last' if args.channels_last else ''}, "
        f"torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, "
        f"single_path groups {args.path_groups}"
    )
    plain = results.get("plain")
    for mode, result in results.items():
        ratio = f", {result['img_per_s'] / plain['img_per_s']:.2f}x the plain network" if plain else ""
        print(
            f"{mode:>27}: {result['img_per_s']:8.1f} img/s ({result['step_ms']:.0f} ms/step), "
            f"peak {result['peak_mib']:.0f} MiB{ratio}"
        )
    comparisons = [(mode, f"straightforward_{mode}") for mode in ("weighted", "single_path")]
    for faster, slower in [*comparisons, ("single_path", "weighted")]:
        if faster in results and slower in results:
            print(f"{faster} vs {slower}: {compare(results[faster], results[slower])}")


def compare(ours: dict[str, float | str], other: dict[str, float | str]) -> str:
    speedup = float(ours["img_per_s"]) / float(other["img_per_s"])
    memory = float(ours["peak_mib"]) / max(float(other["peak_mib"]), 1e-9)
    return f"{speedup:.2f}x img/s, {memory:.2f}x the peak memory"


if __name__ == "__main__":
    main()
