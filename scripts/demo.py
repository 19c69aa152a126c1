"""The main job, end to end on this machine, with the embedded default database (SQLite).

Starts a LUT server and an onnxruntime agent for this host, has the FBNet space (small-input variant, 16x16)
profiled, then runs two DNAS searches on scikit-learn's digits against that LUT, side by side, with the paper's
multiplicative loss and `dnas search`'s defaults: the latency-unaware baseline (`--alpha 0`, cross-entropy alone)
and the device-aware search; with `--target`, a third one for a latency budget (`--target-ms`, halfway between the
LUT's fastest architecture and where every search starts). It trains each chosen architecture from scratch, measures each whole
network on the same agent, and prints one table: predicted and measured latency, the LUT's error, top-1 and the
speed-up over the baseline. Every step is one of the documented commands (`profiler-server`, `device-agent`,
`dnas`), so each shows its own output; only the end-to-end measurement uses the Python API. State goes to .demo/
(SQLite database, tokens, logs, search outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT_S = 60.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".demo", help="wiped at start")
    parser.add_argument("--resolution", type=int, default=16)
    # Sized to finish within about 8 minutes on 2 cores: a supernet step costs about the width squared, and the
    # temperature schedule and theta's steps fit themselves to the epochs given.
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--head-channels", type=int, default=64)
    parser.add_argument("--search-epochs", type=int, default=4)
    parser.add_argument("--train-epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="agent intra-op threads (1 = paper-style LUT)")
    parser.add_argument(
        "--target",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also run a --target-ms search (a third search beside the two: about 3 minutes more on 2 cores)",
    )
    parser.add_argument(
        "--network-rounds", type=int, default=3, help="rounds in which the agent measures the whole networks"
    )
    parser.add_argument(
        "--keep-server", action="store_true", help="leave server and agent running at the end"
    )
    return parser.parse_args()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def run(command: list[str], env: dict[str, str]) -> None:
    """Run one documented command in the foreground, showing it and its own progress output."""
    print("$ " + " ".join(command), flush=True)
    completed = subprocess.run(command, env=env, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"demo: step failed (exit {completed.returncode}): {' '.join(command)}")


def run_side_by_side(commands: dict[str, list[str]], env: dict[str, str], logs: Path) -> dict[str, str]:
    """Run documented commands at once (the machine's cores share them), each logging to logs/NAME.log; their
    outputs, once all have finished."""
    logs.mkdir(parents=True, exist_ok=True)
    running = {}
    for name, command in commands.items():
        print("$ " + " ".join(command) + f"  > {logs / name}.log 2>&1 &", flush=True)
        with (logs / f"{name}.log").open("wb") as log:
            running[name] = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    for name, process in running.items():
        if process.wait() != 0:
            tail = (logs / f"{name}.log").read_text()[-2000:]
            raise SystemExit(f"demo: {name} failed (exit {process.returncode}):\n{tail}")
    return {name: (logs / f"{name}.log").read_text() for name in commands}


def result_lines(output: str) -> list[str]:
    """The lines a command prints when it is done (its progress bars and epoch lines left out)."""
    keep = ("epoch", "settings:", "LUT:", "argmax", "predicted", "within the budget", "top-1")
    return [line for line in output.splitlines() if line.startswith(keep) and "━" not in line]


@contextmanager
def background(command: list[str], env: dict[str, str], log_path: Path, keep: bool) -> Iterator[None]:
    print("$ " + " ".join(command) + f"  > {log_path} 2>&1 &", flush=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        if not keep and process.poll() is None:
            # SIGTERM lets the agent finish its op and post; the server shuts down cleanly.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_until(url: str, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"demo: {what} did not come up within {timeout_s:.0f} s ({url})")


def dev_admin_token(server: str, state: Path) -> str:
    """The admin token `serve --dev` generated, read the way every CLI of the project reads it."""
    os.environ["PROFILER_STATE_DIR"] = str(state)
    from fbnet_core.dev_tokens import read_dev_tokens

    tokens = read_dev_tokens(server)
    if tokens is None:
        raise SystemExit(f"demo: the server wrote no dev tokens for {server} under {state}")
    return tokens.admin_token


def wait_for_device(server: str, device: str, admin_token: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {admin_token}"}
    while time.monotonic() < deadline:
        if httpx.get(f"{server}/devices/{device}", headers=headers, timeout=2.0).status_code == 200:
            return
        time.sleep(0.5)
    raise SystemExit(f"demo: the agent did not register {device!r} within {timeout_s:.0f} s")


@dataclass(frozen=True)
class Searched:
    """One search of the demo and what became of its architecture."""

    name: str
    label: str
    arch_file: Path
    train_dir: Path


def budget_target_ms(lut_file: Path, space_flags: dict[str, str]) -> tuple[float, float, float]:
    """(fastest, uniform, target): the LUT's fastest architecture, the expected latency every search starts from
    (theta = 0: each layer's candidates alike) and the demo's budget halfway between them, in ms."""
    from fbnet_core.lut_costs import LutCosts
    from fbnet_core.network_fit import fit_network_costs
    from fbnet_core.space import fbnet_space
    from search_client.lut.latency import latency_table_for_space

    space = fbnet_space(
        int(space_flags["--resolution"]), float(space_flags["--width"]), 10, int(space_flags["--head-channels"]),
        small_input=True,
    )  # fmt: skip
    costs = fit_network_costs(LutCosts.from_body(json.loads(lut_file.read_text())), space)
    table = latency_table_for_space(space, costs)
    uniform_ms = float(table.block_ms.mean(dim=1).sum()) + table.fixed_ms
    return table.min_ms(), uniform_ms, round((table.min_ms() + uniform_ms) / 2, 3)


def measure_end_to_end(
    server: str, admin_token: str, device: str, searched: list[Searched], rounds: int
) -> dict[str, tuple[float, float]]:
    """Each searched network as one `network` op, measured whole by the agent in `rounds` rounds (median):
    name -> (predicted_us, measured_us)."""
    from fbnet_core.client import ProfilerClient
    from fbnet_core.formats.architecture_file import load_architecture
    from fbnet_core.keys import make_op, network_spec
    from search_client.validation.validate import ValidationModel, measure_and_compare

    models = []
    for run in searched:
        loaded = load_architecture(run.arch_file)
        network = make_op(network_spec(loaded.arch, loaded.params))
        models.append(ValidationModel(run.name, "searched", network, loaded.arch, loaded.params))
    with ProfilerClient(server, admin_token) as client:
        points = measure_and_compare(client, device, models, timeout_s=600.0, rounds=rounds)
    return {point.name: (point.predicted_us or 0.0, point.measured_us) for point in points}


def print_table(device: str, searched: list[Searched], latency_us: dict[str, tuple[float, float]]) -> None:
    base_measured_us = latency_us[searched[0].name][1]
    base_predicted_us = latency_us[searched[0].name][0]
    rows = [("search", "predicted", "measured", "LUT error", "top-1", "speed-up (predicted, measured)")]
    for run in searched:
        predicted_us, measured_us = latency_us[run.name]
        top1 = json.loads((run.train_dir / "train_result.json").read_text())["top1"]
        rows.append((
            run.label,
            f"{predicted_us / 1000:.3f} ms",
            f"{measured_us / 1000:.3f} ms",
            f"{100 * (predicted_us - measured_us) / measured_us:+.1f} %",
            f"{top1:.1%}",
            f"{base_predicted_us / predicted_us:.2f}x, {base_measured_us / measured_us:.2f}x",
        ))  # fmt: skip
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print(f"device {device}; measured = whole network on the device, median of its rounds")
    for row in rows:
        print("  ".join(cell.ljust(width) if i == 0 else cell.rjust(width) for i, (cell, width) in
                        enumerate(zip(row, widths, strict=True))))  # fmt: skip
    for run in searched:
        print(f"{run.label}: {json.loads(run.arch_file.read_text())['arch']}")


def main() -> None:
    args = parse_args()
    state = args.state_dir.resolve()
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    port = free_port()
    server = f"http://127.0.0.1:{port}"
    device = f"{socket.gethostname().split('.')[0][:40]}-ort-{args.threads}t"
    env = {
        **os.environ,
        "PROFILER_STATE_DIR": str(state),
        "PROFILER_DATABASE_URL": f"sqlite:///{state / 'lut.sqlite3'}",
        "FBNET_LUT_CACHE": str(state / "cache"),
    }
    # The LUT is requested for exactly the space the searches build (digits: 10 classes).
    space = {
        "--resolution": str(args.resolution),
        "--width": str(args.width),
        "--head-channels": str(args.head_channels),
    }
    space_flags = [*(item for pair in space.items() for item in pair), "--small-input"]
    started = time.monotonic()

    banner(f"1/7 LUT server on {server} (SQLite: {state / 'lut.sqlite3'})")
    serve = [str(BIN / "profiler-server"), "serve", "--dev", "--host", "127.0.0.1", "--port", str(port)]
    with background(serve, env, state / "server.log", args.keep_server):
        wait_until(f"{server}/healthz", "the server", SERVER_START_TIMEOUT_S)
        admin_token = dev_admin_token(server, state)

        banner(f"2/7 device agent for this host: {device} (onnxruntime CPU, {args.threads} thread(s))")
        agent = [
            str(BIN / "device-agent"), "run", "--server", server, "--device", device,
            "--threads", str(args.threads), "--cpu-affinity", "0", "--state-dir", str(state / "agent"),
        ]  # fmt: skip
        with background(agent, env, state / "agent.log", args.keep_server):
            wait_for_device(server, device, admin_token, SERVER_START_TIMEOUT_S)

            banner("3/7 profile the FBNet space on this device (every candidate block at every layer shape)")
            run([str(BIN / "dnas"), "lut", "request", "--server", server, "--device", device,
                 *space_flags, "--num-classes", "10", "--wait"], env)  # fmt: skip
            lut_file = state / "lut.json"
            run([str(BIN / "dnas"), "lut", "pull", "--server", server, "--device", device,
                 "-o", str(lut_file)], env)  # fmt: skip
            fastest_ms, uniform_ms, target_ms = budget_target_ms(lut_file, space)

            banner(
                "4/7 DNAS searches on digits with this device's LUT, side by side (the paper's loss, defaults)"
            )
            print(f"the LUT's fastest architecture: {fastest_ms:.3f} ms; every search starts at {uniform_ms:.3f} ms"
                  + (f"; the budget: {target_ms:.3f} ms, halfway" if args.target else ""))  # fmt: skip
            search = [str(BIN / "dnas"), "search", "--server", server, "--device", device, "--data", "digits",
                      *space_flags, "--epochs", str(args.search_epochs), "--threads", "1"]  # fmt: skip
            searched = [
                Searched("unaware", "latency-unaware (--alpha 0)", state / "unaware" / "arch_argmax.json",
                         state / "unaware" / "trained"),
                Searched("aware", "device-aware (defaults)", state / "aware" / "arch_argmax.json",
                         state / "aware" / "trained"),
            ]  # fmt: skip
            commands = {
                "unaware": [*search, "--alpha", "0", "--out", str(state / "unaware")],
                "aware": [*search, "--out", str(state / "aware")],
            }
            if args.target:
                searched.append(
                    Searched(
                        "target",
                        f"budget (--target-ms {target_ms:g})",
                        state / "target" / "arch_target.json",
                        state / "target" / "trained",
                    )
                )
                commands["target"] = [
                    *search,
                    "--target-ms",
                    f"{target_ms:g}",
                    "--out",
                    str(state / "target"),
                ]
            outputs = run_side_by_side(commands, env, state / "logs")
            for name, output in outputs.items():
                print(f"--- {name}")
                print("\n".join(result_lines(output)))

            banner("5/7 train each chosen architecture from scratch, side by side")
            outputs = run_side_by_side(
                {run_.name: [str(BIN / "dnas"), "train", "--arch", str(run_.arch_file), "--data", "digits",
                             "--epochs", str(args.train_epochs), "--threads", "1", "--out", str(run_.train_dir)]
                 for run_ in searched},
                env, state / "logs-train",
            )  # fmt: skip
            for name, output in outputs.items():
                print(f"--- {name}: " + " ".join(result_lines(output)[-1:]))

            banner(f"6/7 measure each whole network on the device ({args.network_rounds} rounds)")
            latency_us = measure_end_to_end(server, admin_token, device, searched, args.network_rounds)

    banner(f"7/7 result ({time.monotonic() - started:.0f} s)")
    print_table(device, searched, latency_us)
    if args.keep_server:
        print(f"server still running: {server} (dashboard at {server}/)")


if __name__ == "__main__":
    main()
