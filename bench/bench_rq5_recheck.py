"""Re-measure an RQ5 result: the two searched networks on both devices, in alternating rounds, with the agent.

`bench_rq5.py` measures each whole network once per device. When the two architectures are close, one
measurement on a shared machine cannot tell them apart; this script takes its rq5.json, rebuilds the two
searched networks, and measures both on both devices in --rounds alternating rounds, each round a real
`device-agent profile` per device (onnxruntime devices only; the same threads and CPUs as in rq5.json), with
`--speed-reference` (a zoo model, default FBNet-A) and SCHED_FIFO so the machine's speed phases cancel. Prints
every round's ratio (other device's architecture / own architecture, > 1: the own one is faster), their median,
and the ratio of each network's fastest round. Rounds alternate the order of the two networks.

    .venv/bin/python bench/bench_rq5_recheck.py --rq5-json DIR/rq5.json [--rounds 5] [--speed-reference fbnet_a]
        [--realtime-priority 1] [--timing-lock /tmp/timing.lock]
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from shared_machine import timing_lock  # noqa: E402  (bench/ is not a package)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fbnet_core.arch import Architecture  # noqa: E402
from fbnet_core.formats.ops_manifest import ManifestEntry, manifest_line  # noqa: E402
from fbnet_core.keys import make_op, network_spec  # noqa: E402
from search_client.search.loop import SearchConfig  # noqa: E402
from search_client.space.export import export_onnx, sha256_hex  # noqa: E402

NUM_CLASSES = 10  # digits, as bench_rq5.py


def write_manifests(rq5: dict, folder: Path) -> dict[str, str]:
    """ops.jsonl with the two searched networks, and ops-reversed.jsonl with them the other way round (rounds
    alternate the order, so a drift of the machine's speed favours neither); returns network name -> op key."""
    args = rq5["args"]
    config = SearchConfig(
        data="digits", resolution=int(args["resolution"]), width=float(args["width"]),
        head_channels=int(args["head_channels"]), small_input=True,
    )  # fmt: skip
    params = config.space(NUM_CLASSES).params
    keys, lines = {}, []
    for name, text in rq5["architectures"].items():
        if not name.startswith("searched_"):
            continue
        op = make_op(network_spec(Architecture.from_string(text), params))
        data = export_onnx(op.spec)
        (folder / f"{name}.onnx").write_bytes(data)
        lines.append(manifest_line(ManifestEntry(op.key, op.spec, f"{name}.onnx", sha256_hex(data))))
        keys[name] = op.key
    (folder / "ops.jsonl").write_text("\n".join(lines) + "\n")
    (folder / "ops-reversed.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    return keys


def profile_round(device_args: str, manifest: Path, extra: list[str], out: Path) -> dict[str, float]:
    """One `device-agent profile` of both networks with this device's settings; key -> median us."""
    command = [
        sys.executable, "-m", "device_agents", "profile", "--ops", str(manifest), "--out", str(out),
        *shlex.split(device_args), *extra,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"device-agent profile failed: {done.stderr[-2000:]}")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return {record["key"]: statistics.median(record["samples_us"]) for record in records}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rq5-json", type=Path, required=True, help="rq5.json written by bench_rq5.py")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--speed-reference", default="fbnet_a", help="zoo model as the agent's reference; 'none': off"
    )
    parser.add_argument(
        "--realtime-priority", type=int, default=1, help="the agent's SCHED_FIFO priority (0: off)"
    )
    parser.add_argument(
        "--timing-lock", type=Path, default=None, help="hold an flock on this file while measuring"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rq5 = json.loads(args.rq5_json.read_text())
    devices: dict[str, str] = rq5["devices"]
    if args.speed_reference != "none" and any("--backend" in shlex.split(a) for a in devices.values()):
        parser.error("the speed reference works with onnxruntime devices only: use --speed-reference none")
    with tempfile.TemporaryDirectory(prefix="rq5-recheck-") as tmp:
        folder = Path(tmp)
        keys = write_manifests(rq5, folder)
        extra = ["--realtime-priority", str(args.realtime_priority), "--state-dir", str(folder / "state")]
        if args.speed_reference != "none":
            reference = folder / f"{args.speed_reference}.onnx"
            subprocess.run(
                [sys.executable, "-c", "from search_client.commands.cli import main; main()", "export", "--model",
                 args.speed_reference, "-o", str(reference)], check=True, capture_output=True,
            )  # fmt: skip
            extra += ["--speed-reference", str(reference)]
        ratios: dict[str, list[float]] = {device: [] for device in devices}
        own_us: dict[str, list[float]] = {device: [] for device in devices}
        other_us: dict[str, list[float]] = {device: [] for device in devices}
        with timing_lock(args.timing_lock):
            for round_index in range(args.rounds):
                line = []
                for device, device_args in devices.items():
                    out = folder / f"round{round_index}-{device}.jsonl"
                    manifest = folder / ("ops.jsonl" if round_index % 2 == 0 else "ops-reversed.jsonl")
                    medians = profile_round(device_args, manifest, extra, out)
                    own = medians[keys[f"searched_{device}"]]
                    (other,) = [medians[key] for name, key in keys.items() if name != f"searched_{device}"]
                    ratios[device].append(other / own)
                    own_us[device].append(own)
                    other_us[device].append(other)
                    line.append(f"{device}: own {own:.1f} us, other {other:.1f} us, ratio {other / own:.3f}")
                print(f"round {round_index + 1}: " + "; ".join(line), flush=True)
    for device, values in ratios.items():
        wins = sum(value > 1 for value in values)
        print(
            f"on {device}: other / own median {statistics.median(values):.3f}x "
            f"(min {min(values):.3f}, max {max(values):.3f}; own faster in {wins} of {len(values)} rounds)"
        )
        # A slow phase of the machine only ever adds time: each network's fastest round is its least disturbed.
        own, other = min(own_us[device]), min(other_us[device])
        print(f"on {device}: fastest round of each, own {own:.1f} us, other {other:.1f} us: {other / own:.3f}x")


if __name__ == "__main__":
    main()
