"""Benchmark: does the LUT's sum of blocks predict whole networks on this machine? (MAPE, share within 10 %, Kendall tau)

End to end, nothing mocked: a real `profiler-server serve --dev` (SQLite, temp folder, pinned to --server-cpu),
a real `device-agent run` (onnxruntime CPU, or --backend executorch | litert; 1 thread, pinned to --agent-cpu), and `dnas validate --calibrate`
(pinned to --server-cpu, so exporting never competes with a measurement). The validation set is FBNet-A/B/C,
MobileNetV2 1.0 and --n seeded random architectures; every block they use and every whole network is measured
by the same agent with the same timing engine, and the LUT's medians are compared. --skewed N adds N networks
skewed toward cheap blocks (skips, expansion 1) and N toward expensive ones (expansion 6): the regions a
latency-aware search ends in. Below 100 px the space is the small-input one (--width, --head-channels,
--num-classes as `dnas search` takes them) and has no zoo networks.

    .venv/bin/python bench/bench_fidelity.py [--n 30] [--skewed 15] [--resolution 224] [--seed 0] [--rounds 1]
                                             [--width 1.0] [--head-channels 1984] [--num-classes 1000]
                                             [--agent-realtime-priority 1] [--speed-reference fbnet_a|none]
                                             [--agent-timing OPTIONS] [--precision fp32|int8]
                                             [--backend onnxruntime|executorch|litert]
                                             [--timing-lock /tmp/timing.lock] [--out DIR]

Prints the figures against the goals (MAPE <= 5 %, >= 95 % within +-10 %, Kendall tau >= 0.9) for the LUT's
prediction (the runtime's per-invocation overhead counted once per network, as the agent measures it by default),
per kind of network, for the raw sum of medians beside it, and for the calibrated prediction on held-out networks;
writes validation.json, scatter.png and the LUT (lut.json) to --out. Then
(--noise-floor, the default) the agent measures the whole networks a second time, and the first measurement is
scored as a prediction of the second with the same metrics: the floor under any LUT's figures on this machine.

`--timing-lock` holds an flock on that file from the moment every op and network is compiled and queued until the
last re-measurement: compiling (tens of minutes for .pte and .tflite networks at 224) runs outside it, and the
agent starts measuring only once the lock is held, so no other timing job that takes the lock runs beside it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_stack import (  # noqa: E402
    Stack,
    add_agent_arguments,
    agent_arguments,
    exit_on_sigterm,
    speed_reference_arguments,
)
from shared_machine import timing_lock  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fbnet_core.fidelity import summarize  # noqa: E402
from fbnet_core.formats.validation_file import VALIDATION_FILE_NAME, read_validation_file  # noqa: E402
from fbnet_core.space import space_params  # noqa: E402
from search_client.validation.validate import measure_rounds  # noqa: E402

# The device per agent backend (with --precision int8: cpu-ort-t1-int8); each op and network is compiled for the
# backend's runtime (ONNX, ExecuTorch .pte, LiteRT .tflite) by `dnas validate`, as for any device of that format.
DEVICES = {"onnxruntime": "cpu-ort-t1", "executorch": "cpu-et-t1", "litert": "cpu-litert-t1"}
REMEASURE_TIMEOUT_S = 600.0
QUEUE_POLL_S = 2.0  # how often the bench looks whether `dnas validate` has queued its ops yet
# `dnas validate --timeout-s` with --timing-lock: the agent may wait for the lock for as long as another job holds it.
LOCKED_VALIDATE_TIMEOUT_S = 4 * 3600.0
GOAL_MAPE_PCT = 5.0
GOAL_WITHIN_10_PCT = 95.0
GOAL_KENDALL_TAU = 0.9


def _verdict(summary: dict[str, float | None]) -> str:
    tau = summary["kendall_tau"]
    checks = [
        ("MAPE", f"{summary['mape_pct']:.2f} %", summary["mape_pct"] <= GOAL_MAPE_PCT),
        ("within 10 %", f"{summary['within_10_pct']:.0f} %", summary["within_10_pct"] >= GOAL_WITHIN_10_PCT),
        ("Kendall tau", "n/a" if tau is None else f"{tau:.3f}", tau is not None and tau >= GOAL_KENDALL_TAU),
    ]
    return ", ".join(f"{name} {value} ({'meets' if ok else 'misses'} goal)" for name, value, ok in checks)


def wait_until_queued(stack: Stack, device: str, validate: subprocess.Popen[bytes]) -> None:
    """Return once `dnas validate` has compiled its ops and queued them on `device` (its agent not yet running)."""
    with stack.admin() as admin:
        while admin.get_device(device).coverage.queued == 0:
            if validate.poll() is not None:
                raise SystemExit(f"dnas validate exited with code {validate.returncode} before queueing its ops")
            time.sleep(QUEUE_POLL_S)


def remeasure_networks(stack: Stack, device: str, keys: list[str], rounds: int) -> dict[str, float]:
    """The whole networks measured again by the same agent, `rounds` times (as `dnas validate --rounds` did the
    first time): each network's median over those rounds."""
    with stack.admin() as admin:
        round_us = measure_rounds(admin, device, keys, rounds, REMEASURE_TIMEOUT_S)
    return {key: statistics.median(values[1:]) for key, values in round_us.items()}


def noise_floor_line(points: list[dict[str, Any]], second_us: dict[str, float], rounds: int) -> str:
    """The first measurement of each network taken as a prediction of the second: no LUT can do better."""
    first = [point["measured_us"] for point in points]
    again = [second_us[point["key"]] for point in points]
    floor = summarize(first, again)
    tau = "n/a" if floor.kendall_tau is None else f"{floor.kendall_tau:.3f}"
    return (
        f"noise floor, the same {floor.count} networks measured again ({rounds} round(s) each time): "
        f"first vs second MAPE {floor.mape_pct:.2f} %, "
        f"within 10 % {floor.within_10_pct:.0f} %, Kendall tau {tau}, mean signed error "
        f"{floor.mean_signed_error_pct:+.2f} %"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=30, help="random architectures besides the zoo")
    parser.add_argument(
        "--skewed",
        type=int,
        default=15,
        help="networks skewed toward cheap blocks, and as many toward expensive ones",
    )
    parser.add_argument("--resolution", type=int, default=224)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--head-channels", type=int, default=1984)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="dnas validate --rounds: whole networks measured this many times, round after round (medians)",
    )  # fmt: skip
    add_agent_arguments(parser)
    parser.add_argument(
        "--noise-floor", action=argparse.BooleanOptionalAction, default=True,
        help="measure the whole networks a second time and print how well the first measurement predicts it",
    )  # fmt: skip
    parser.add_argument(
        "--speed-reference", default=None,
        help="zoo model the agent times every run against (device-agent --speed-reference; 'none': off), compiled "
             "for the backend's runtime and, below 100 px, built in the bench's small-input space, so that it lasts "
             "about as long as the networks measured; default: fbnet_a (a shared machine's speed drifts between "
             "the LUT's measurement and the networks')",
    )  # fmt: skip
    parser.add_argument(
        "--precision", choices=("fp32", "int8"), default="fp32",
        help="the agent's --precision (int8: every op and network quantised by the agent, device_agents/quantize.py)",
    )  # fmt: skip
    parser.add_argument(
        "--backend", choices=tuple(DEVICES), default="onnxruntime",
        help="the agent's runtime; ExecuTorch and LiteRT measure files compiled for them (LiteRT needs the "
             "converter: scripts/setup-litert-converter.sh)",
    )  # fmt: skip
    parser.add_argument(
        "--timing-lock", type=Path, default=None,
        help="hold an flock on this file while the agent measures (compiling runs outside it)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="keep the server's database and logs here")
    parser.add_argument("--out", type=Path, default=None, help="copy validation.json and scatter.png here")
    args = parser.parse_args()
    if args.speed_reference is None:
        args.speed_reference = "fbnet_a"
    exit_on_sigterm()

    device = DEVICES[args.backend] if args.precision == "fp32" else f"{DEVICES[args.backend]}-{args.precision}"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-fidelity-"))
    stack = Stack(workdir, server_cpus=(args.server_cpu,))
    started = time.perf_counter()
    try:
        stack.start_server()
        agent_args = ["--backend", args.backend, "--precision", args.precision, *agent_arguments(args)]
        space = space_params(args.resolution, args.width, args.num_classes, args.head_channels)
        agent_args += speed_reference_arguments(stack, args.speed_reference, args.backend, space, args.server_cpu)
        # Registered first, by an agent that measures nothing yet (its queue is empty): `dnas validate` compiles for
        # the device's format, and the measuring agent starts only when the timing lock is held.
        with timing_lock(args.timing_lock):  # a speed reference calibrates at the agent's first start
            stack.drain(device, ["--threads", "1", "--cpu-affinity", str(args.agent_cpu), *agent_args])
        out = workdir / "validation"
        validate = stack.dnas_in_background(
            "validate", "--server", stack.url, "--device", device, "--n", str(args.n),
            "--skewed", str(args.skewed), "--resolution", str(args.resolution), "--width", str(args.width),
            "--head-channels", str(args.head_channels), "--num-classes", str(args.num_classes),
            "--seed", str(args.seed), "--rounds", str(args.rounds),
            "--calibrate", "--out", str(out),
            *(["--timeout-s", str(LOCKED_VALIDATE_TIMEOUT_S)] if args.timing_lock else []),
            cpus=(args.server_cpu,),
        )  # fmt: skip
        wait_until_queued(stack, device, validate)
        with timing_lock(args.timing_lock):
            agent = stack.start_agent(device, threads=1, cpus=str(args.agent_cpu), agent_args=agent_args)
            if validate.wait() != 0:
                raise SystemExit(f"dnas validate failed with exit code {validate.returncode}")
            document = read_validation_file(out / VALIDATION_FILE_NAME)
            with stack.admin() as admin:
                lut_entries = admin.get_lut(device).entries
            predicted = [point for point in document["points"] if point["predicted_us"] is not None]
            second_us = (
                remeasure_networks(stack, device, [point["key"] for point in predicted], args.rounds)
                if args.noise_floor
                else None
            )
            stack.stop(agent)
    finally:
        stack.close()
    elapsed_s = time.perf_counter() - started
    summary = document["summary"]
    print(
        f"\nfidelity of {device}, {args.resolution}x{args.resolution}, seed {args.seed}, {elapsed_s:.0f} s end to end"
    )
    print(f"LUT prediction, all {summary['raw']['count']} networks: {_verdict(summary['raw'])}")
    for kind, figures in summary["raw_by_kind"].items():
        print(f"LUT prediction, {figures['count']} {kind}: {_verdict(figures)}")
    if summary["plain_sum"] is not None:
        print(
            f"raw sum of medians, all {summary['plain_sum']['count']} networks: {_verdict(summary['plain_sum'])}"
        )
        for kind, figures in summary["plain_sum_by_kind"].items():
            print(f"raw sum of medians, {figures['count']} {kind}: {_verdict(figures)}")
    if summary["calibrated_holdout"] is not None:
        print(
            f"LUT prediction, {summary['raw_holdout']['count']} held out: {_verdict(summary['raw_holdout'])}"
        )
        print(f"calibrated, same held out: {_verdict(summary['calibrated_holdout'])}")
    if second_us is not None:
        print(noise_floor_line(predicted, second_us, args.rounds))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("validation.json", "scatter.png"):
            shutil.copy(out / name, args.out / name)
        # The LUT itself (medians and overheads of every block and whole network), so that another cost model
        # can be scored against the same measurements later.
        (args.out / "lut.json").write_text(json.dumps({"device": device, "entries": lut_entries}, indent=1))
        print(f"copied validation.json and scatter.png to {args.out}, the LUT to {args.out / 'lut.json'}")


if __name__ == "__main__":
    main()
