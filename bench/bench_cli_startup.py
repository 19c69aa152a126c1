"""Wall time of `dnas --help` (and `dnas search --help`) against `python -c pass`, measured in the same run.

    flock /tmp/timing.lock .venv/bin/python bench/bench_cli_startup.py [--runs 9]

Prints the median of several runs of each, in seconds, and the ratio to the bare interpreter (the machine is
shared and noisy; the ratio and the baseline come from the same run). Goal: `dnas --help` below 1 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

DNAS = str(Path(sys.executable).parent / "dnas")
COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "dnas --help": [DNAS, "--help"],
    "dnas search --help": [DNAS, "search", "--help"],
    "dnas lut request --help": [DNAS, "lut", "request", "--help"],
}


def wall_s(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="runs of each command (median reported)")
    args = parser.parse_args()
    for command in COMMANDS.values():
        wall_s(command)  # warm the page cache
    medians: dict[str, float] = {}
    # Interleaved, so a burst of load on the machine hits every command alike.
    samples: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.runs):
        for name, command in COMMANDS.items():
            samples[name].append(wall_s(command))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians["python -c pass"]
    print(f"{'command':<26} {'median s':>9} {'x python -c pass':>17}   ({args.runs} runs each)")
    for name, median in medians.items():
        print(f"{name:<26} {median:>9.3f} {median / baseline:>17.1f}")


if __name__ == "__main__":
    main()
