"""Benchmark: supernet training throughput, weighted sum of all candidates (the paper) vs single path, against a
plain network (k5_e6 in every layer) measured in the same run. One child process per mode, so that each peak
memory figure is its own.

    .venv/bin/python bench/bench_supernet.py                       # CPU, 32x32, batch 32, width 1.0, 10 classes
    .venv/bin/python bench/bench_supernet.py --device cuda --resolution 224 --batch 192 --num-classes 100 \\
        --bf16 --channels-last                                      # the H200 configuration of ANCHORS.md

A step is forward + cross-entropy + backward + SGD step over weights and theta, as in the search. Prints img/s
(median step), peak memory (CPU: the child's peak RSS above its RSS before the model was built; CUDA: the peak
allocated), and the ratios against the plain network and single path against weighted.
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
from torch import nn

from search_client.arch import Architecture
from search_client.model import build_model
from search_client.space import fbnet_space
from search_client.supernet import Supernet

MODES = ("weighted", "single_path", "plain")


def rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


class Plain(nn.Module):
    """The plain network with the supernet's call signature (no theta, no Gumbel weights)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor, temperature: float) -> tuple[torch.Tensor, None]:
        return self.net(images), None


def measure_mode(args: argparse.Namespace) -> dict[str, float | str]:
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    space = fbnet_space(
        args.resolution, args.width, args.num_classes, args.head_channels, args.schedule == "small-input"
    )
    idle_mib = rss_mib()
    if args.mode == "plain":
        model: nn.Module = Plain(build_model(Architecture(("k5_e6",) * len(space.layers)), space))
    else:
        model = Supernet(space, args.mode)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randn(args.batch, 3, args.resolution, args.resolution, device=device)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.randint(0, args.num_classes, (args.batch,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step_s: list[float] = []
    for step in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            logits, _ = model(images, 5.0)
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
        help="stride schedule: imagenet (total stride 32, as ANCHORS.md) or small-input (total stride 8)",
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
        f"torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}"
    )
    plain = results.get("plain")
    for mode, result in results.items():
        ratio = f", {result['img_per_s'] / plain['img_per_s']:.2f}x the plain network" if plain else ""
        print(
            f"{mode:>12}: {result['img_per_s']:8.1f} img/s ({result['step_ms']:.0f} ms/step), "
            f"peak {result['peak_mib']:.0f} MiB{ratio}"
        )
    if "weighted" in results and "single_path" in results:
        speedup = results["single_path"]["img_per_s"] / results["weighted"]["img_per_s"]
        memory = results["weighted"]["peak_mib"] / max(results["single_path"]["peak_mib"], 1e-9)
        print(f"single path vs weighted: {speedup:.2f}x img/s, {memory:.2f}x less peak memory")


if __name__ == "__main__":
    main()
