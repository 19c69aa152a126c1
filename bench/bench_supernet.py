"""Benchmark: the supernet's training step against its arithmetic floor, on the CPU.

The weighted-sum supernet computes every candidate of every layer, so its floor is the work of the nine candidates
themselves: the sum of the step times of nine plain networks, each using one candidate in every layer (this floor
even counts the stem and head nine times). Single path runs one network per step, so its yardstick is the plain
network of the blocks it draws. Two configurations, in one run:

    224x224 with the ImageNet strides, batch 8
    32x32 with the small-input strides (total stride 8), batch 32

    flock /tmp/timing.lock .venv/bin/python bench/bench_supernet.py [--threads 2] [--rounds 3] [--profile]

A step is forward + cross-entropy + backward + SGD step over weights and theta, as in the search. Per
configuration, every variant is built in one process and timed in alternating rounds (one step each, after one
warm-up round); the figures are medians over the rounds: the fused weighted sum (`weighted`), the same sum
written the straightforward way (`Supernet(reference=True)`: every candidate's output weighted and added up),
the nine plain networks and their sum (the floor), single path with a fixed draw and the plain network of the
drawn blocks. Each plain network runs in both memory layouts (NCHW and channels-last, model and input) and counts
with the faster one, so the floor is the cheapest way PyTorch runs that candidate here, not a layout the supernet
happens to avoid. Peak memory is measured apart, one child process per variant (`--memory-variants`): its peak
resident set (VmHWM) over three steps above its resident set before the model was built. `--profile` prints
torch.profiler's table of one fused weighted step.

`--baseline-checkout DIR` also times the weighted step of another checkout of this repository (e.g. an earlier
commit via `git worktree add`), whose bench/bench_supernet.py answers `--mode weighted` with a JSON line holding
`step_ms`: child processes of it and of this checkout alternate, `--baseline-rounds` each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fbnet_core.arch import Architecture
from fbnet_core.blocks import CANDIDATES
from fbnet_core.space import SearchSpace, fbnet_space
from search_client.search.gumbel import sample_gumbel_noise
from search_client.search.supernet import Supernet
from search_client.search.torch_device import activation_layout
from search_client.space.model import build_model

TEMPERATURE = 5.0


@dataclass(frozen=True)
class Config:
    name: str
    resolution: int
    batch: int
    small_input: bool

    def space(self, num_classes: int) -> SearchSpace:
        return fbnet_space(self.resolution, 1.0, num_classes, 1984, self.small_input)


CONFIGS = {
    "224": Config("224x224, ImageNet strides, batch 8", 224, 8, small_input=False),
    "32": Config("32x32, small-input strides, batch 32", 32, 32, small_input=True),
}


class Plain(nn.Module):
    """A plain network with the supernet's call signature (no theta, no Gumbel weights)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(
        self, images: torch.Tensor, temperature: float, noise: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        return self.net(images), None


def drawn_blocks(noise: torch.Tensor) -> tuple[str, ...]:
    """The path single path draws from a uniform theta with this noise: its first sample's argmax per layer."""
    return tuple(CANDIDATES[index] for index in noise[0].argmax(-1).tolist())


CHANNELS_LAST = "_channels_last"  # suffix of a plain variant run in the channels-last layout


def plain_variants(name: str) -> list[str]:
    """A plain variant in both layouts: NCHW, then channels-last."""
    return [f"plain_{name}", f"plain_{name}{CHANNELS_LAST}"]


def variant_names() -> list[str]:
    return [
        "weighted",
        "weighted_reference",
        *(variant for name in CANDIDATES for variant in plain_variants(name)),
        "single_path",
        *plain_variants("drawn"),
    ]


def build_variant(variant: str, space: SearchSpace, noise: torch.Tensor) -> nn.Module:
    if variant.endswith(CHANNELS_LAST):
        return build_variant(variant.removesuffix(CHANNELS_LAST), space, noise).to(
            memory_format=torch.channels_last
        )
    cpu_layout = activation_layout(torch.device("cpu"))  # as the search moves its supernet to the CPU
    if variant == "weighted":
        return Supernet(space, "weighted").to(memory_format=cpu_layout)
    if variant == "weighted_reference":
        return Supernet(space, "weighted", reference=True)
    if variant == "single_path":
        return Supernet(space, "single_path").to(memory_format=cpu_layout)
    if variant == "plain_drawn":
        return Plain(build_model(Architecture(drawn_blocks(noise)), space))
    return Plain(build_model(Architecture((variant.removeprefix("plain_"),) * len(space.layers)), space))


class Runner:
    """One variant's model, optimizer and data: `step()` is one timed training step."""

    def __init__(self, variant: str, config: Config, num_classes: int) -> None:
        space = config.space(num_classes)
        generator = torch.Generator().manual_seed(0)
        self.noise = sample_gumbel_noise(
            config.batch, torch.zeros(len(space.layers), len(CANDIDATES)), generator
        )
        torch.manual_seed(0)
        self.model = build_variant(variant, space, self.noise)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.images = torch.randn(config.batch, 3, config.resolution, config.resolution, generator=generator)
        if variant.endswith(CHANNELS_LAST):
            self.images = self.images.contiguous(memory_format=torch.channels_last)
        self.labels = torch.randint(0, num_classes, (config.batch,), generator=generator)

    def step(self) -> float:
        started = time.perf_counter()
        logits, _ = self.model(self.images, TEMPERATURE, noise=self.noise)
        loss = F.cross_entropy(logits, self.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - started


def status_mib(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS: resident now; VmHWM: its peak).

    Not getrusage's ru_maxrss: Linux carries the parent's peak across fork and exec into it, so a child started
    by a process holding gigabytes would report the parent's peak rather than its own."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(variant: str, config: Config, num_classes: int) -> dict[str, float]:
    idle_mib = status_mib("VmRSS")
    runner = Runner(variant, config, num_classes)
    step_s = [
        runner.step() for _ in range(3)
    ]  # a warm-up step, then two: the baseline's child also times two
    peak_mib = status_mib("VmHWM") - idle_mib
    return {"peak_mib": peak_mib, "step_ms": 1000 * statistics.median(step_s[1:])}


def measure_memory(variant: str, config_key: str, args: argparse.Namespace) -> float:
    command = [
        sys.executable,
        __file__,
        "--threads",
        str(args.threads),
        "--num-classes",
        str(args.num_classes),
    ]
    command += ["--memory-child", f"{config_key}:{variant}"]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return float(json.loads(output.strip().splitlines()[-1])["peak_mib"])


def time_alternating(config: Config, args: argparse.Namespace) -> dict[str, float]:
    """Median step ms per variant over `args.rounds` rounds, each round one step of every variant in turn."""
    runners = {variant: Runner(variant, config, args.num_classes) for variant in variant_names()}
    step_ms: dict[str, list[float]] = {variant: [] for variant in runners}
    for round_index in range(args.warmup + args.rounds):
        for variant, runner in runners.items():
            elapsed_s = runner.step()
            if round_index >= args.warmup:
                step_ms[variant].append(1000 * elapsed_s)
    if args.profile:
        profile_step(runners["weighted"])
    return {variant: statistics.median(times) for variant, times in step_ms.items()}


def profile_step(runner: Runner) -> None:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        runner.step()
    print("torch.profiler, one fused weighted step:")
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def time_against_baseline(config_key: str, args: argparse.Namespace) -> tuple[float, float]:
    """(ours, baseline) weighted step ms at the 32 px configuration: medians of alternating child processes."""
    config = CONFIGS[config_key]
    common = ["--threads", str(args.threads), "--num-classes", str(args.num_classes)]
    old_args = [
        f"--resolution={config.resolution}",
        f"--batch={config.batch}",
        "--schedule=small-input" if config.small_input else "--schedule=imagenet",
        "--steps=2",
        "--warmup=1",
        "--mode=weighted",
        *common,
    ]
    ours_ms, baseline_ms = [], []
    for _ in range(args.baseline_rounds):
        ours = subprocess.run(
            [sys.executable, __file__, *common, "--memory-child", f"{config_key}:weighted"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        ours_ms.append(json.loads(ours.strip().splitlines()[-1])["step_ms"])
        environment = {**os.environ, "PYTHONPATH": args.baseline_checkout}
        baseline = subprocess.run(
            [sys.executable, os.path.join(args.baseline_checkout, "bench", "bench_supernet.py"), *old_args],
            check=True,
            capture_output=True,
            text=True,
            env=environment,
            cwd=args.baseline_checkout,
        ).stdout
        baseline_ms.append(json.loads(baseline.strip().splitlines()[-1])["step_ms"])
    return statistics.median(ours_ms), statistics.median(baseline_ms)


def report(config_key: str, args: argparse.Namespace) -> None:
    config = CONFIGS[config_key]
    print(f"== {config.name}, {args.threads} threads, torch {torch.__version__}, {args.rounds} rounds")
    step_ms = time_alternating(config, args)
    memory_variants = [variant for variant in args.memory_variants.split(",") if variant]
    peak_mib = {variant: measure_memory(variant, config_key, args) for variant in memory_variants}

    def line(label: str, variant: str) -> str:
        memory = f"   peak {peak_mib[variant]:6.0f} MiB" if variant in peak_mib else ""
        return f"  {label:<34}{step_ms[variant]:9.0f} ms/step{memory}"

    def plain_line(label: str, name: str) -> str:
        nchw, channels_last = (step_ms[variant] for variant in plain_variants(name))
        memory = "".join(
            f"   peak {peak_mib[variant]:6.0f} MiB" for variant in plain_variants(name) if variant in peak_mib
        )
        return (
            f"  {label:<34}{min(nchw, channels_last):9.0f} ms/step (NCHW {nchw:.0f}, channels-last "
            f"{channels_last:.0f}){memory}"
        )

    def plain_ms(name: str) -> float:
        return min(step_ms[variant] for variant in plain_variants(name))

    print(line("weighted (fused)", "weighted"))
    print(line("weighted (straightforward sum)", "weighted_reference"))
    for name in CANDIDATES:
        print(plain_line(f"plain network, {name} everywhere", name))
    floor_ms = sum(plain_ms(name) for name in CANDIDATES)
    print(f"  {'floor (sum of the nine)':<34}{floor_ms:9.0f} ms/step")
    print(
        f"  weighted / floor: fused {step_ms['weighted'] / floor_ms:.2f}x, "
        f"straightforward {step_ms['weighted_reference'] / floor_ms:.2f}x; "
        f"fused is {step_ms['weighted_reference'] / step_ms['weighted']:.2f}x as fast as straightforward"
    )
    path = "-".join(drawn_blocks(Runner("plain_skip", config, args.num_classes).noise))
    print(line("single path", "single_path"))
    print(plain_line("plain network of the drawn blocks", "drawn"))
    print(
        f"  single path is {plain_ms('drawn') / step_ms['single_path']:.2f}x as fast as the plain network "
        f"of its blocks ({path})"
    )
    if args.baseline_checkout and config_key in args.baseline_configs.split(","):
        ours_ms, baseline_ms = time_against_baseline(config_key, args)
        print(
            f"  weighted, this checkout {ours_ms:.0f} ms/step vs {args.baseline_checkout} {baseline_ms:.0f} "
            f"ms/step ({args.baseline_rounds} alternating child processes each): "
            f"{baseline_ms / ours_ms:.2f}x as fast"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--rounds", type=int, default=3, help="timed alternating rounds per configuration")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--num-classes", type=int, default=10)
    parser.add_argument("--configs", default="224,32", help="comma-separated, of: " + ",".join(CONFIGS))
    parser.add_argument(
        "--memory-variants",
        default="weighted,weighted_reference,single_path,plain_drawn",
        help=f"variants whose peak memory to measure ('' for none), of: {','.join(variant_names())}",
    )
    parser.add_argument(
        "--profile", action="store_true", help="torch.profiler table of one fused weighted step"
    )
    parser.add_argument(
        "--baseline-checkout", help="another checkout whose weighted step to time against ours"
    )
    parser.add_argument("--baseline-rounds", type=int, default=3)
    parser.add_argument("--baseline-configs", default="32", help="configurations timed against the baseline")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)  # CONFIG:VARIANT, in the child processes
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # each figure shows as soon as it is measured
    torch.set_num_threads(args.threads)
    if args.memory_child:
        config_key, variant = args.memory_child.split(":")
        print(json.dumps(memory_child(variant, CONFIGS[config_key], args.num_classes)))
        return
    for config_key in args.configs.split(","):
        report(config_key, args)


if __name__ == "__main__":
    main()
