"""The main job, end to end on this machine, with the embedded default database (SQLite).

Starts a LUT server and an onnxruntime agent for this host, has the FBNet space (small-input variant, 16x16)
profiled, runs a short DNAS search on scikit-learn's digits against that LUT, trains the chosen architecture
briefly, measures it end to end on the same agent and prints the result. Every step is one of the documented
commands (`profiler-server`, `device-agent`, `dnas`), so each shows its own progress; only the final end-to-end
measurement uses the Python API. State goes to .demo/ (SQLite database, tokens, logs, search outputs).
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT_S = 60.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, default=ROOT / ".demo", help="wiped at start")
    parser.add_argument("--resolution", type=int, default=16)
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--head-channels", type=int, default=128)
    parser.add_argument(
        "--lambda-per-ms", type=float, default=1.0, help="additive latency loss weight (1/ms)"
    )
    parser.add_argument("--search-epochs", type=int, default=6)
    parser.add_argument("--train-epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=1, help="agent intra-op threads (1 = paper-style LUT)")
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


def measure_end_to_end(server: str, admin_token: str, device: str, arch_path: Path) -> tuple[float, float]:
    """The searched network as one `network` op, measured whole by the agent: (predicted_us, measured_us)."""
    from fbnet_core.client import ProfilerClient
    from fbnet_core.formats.architecture_file import load_architecture
    from fbnet_core.keys import make_op, network_spec
    from search_client.validation.validate import ValidationModel, measure_and_compare

    loaded = load_architecture(arch_path)
    network = make_op(network_spec(loaded.arch, loaded.params))
    model = ValidationModel("searched", "searched", network, loaded.arch, loaded.params)
    with ProfilerClient(server, admin_token) as client:
        (point,) = measure_and_compare(client, device, [model], timeout_s=600.0)
    assert point.predicted_us is not None  # a network of the space always has a prediction
    return point.predicted_us, point.measured_us


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
    # The LUT is requested for exactly the space the search builds (digits: 10 classes).
    space_flags = [
        "--resolution", str(args.resolution), "--width", str(args.width),
        "--head-channels", str(args.head_channels), "--small-input",
    ]  # fmt: skip
    started = time.monotonic()

    banner(f"1/6 LUT server on {server} (SQLite: {state / 'lut.sqlite3'})")
    serve = [str(BIN / "profiler-server"), "serve", "--dev", "--host", "127.0.0.1", "--port", str(port)]
    with background(serve, env, state / "server.log", args.keep_server):
        wait_until(f"{server}/healthz", "the server", SERVER_START_TIMEOUT_S)
        admin_token = dev_admin_token(server, state)

        banner(f"2/6 device agent for this host: {device} (onnxruntime CPU, {args.threads} thread(s))")
        agent = [
            str(BIN / "device-agent"), "run", "--server", server, "--name", device,
            "--threads", str(args.threads), "--cpu-affinity", "0", "--state-dir", str(state / "agent"),
        ]  # fmt: skip
        with background(agent, env, state / "agent.log", args.keep_server):
            wait_for_device(server, device, admin_token, SERVER_START_TIMEOUT_S)

            banner("3/6 profile the FBNet space on this device (every candidate block at every layer shape)")
            run([str(BIN / "dnas"), "lut", "request", "--server", server, "--device", device,
                 *space_flags, "--num-classes", "10", "--wait"], env)  # fmt: skip

            banner("4/6 DNAS search on digits with this device's LUT")
            search_dir = state / "search"
            run([str(BIN / "dnas"), "search", "--server", server, "--device", device, "--data", "digits",
                 *space_flags,
                 "--epochs", str(args.search_epochs), "--mode", "weighted",
                 # The additive form CE + lambda * LAT_ms: on digits the paper's CE * a * log(LAT)^b fades
                 # with the cross-entropy within a few epochs (docs/search.md, RQ2).
                 "--latency-loss", "additive", "--lambda-per-ms", str(args.lambda_per_ms),
                 "--out", str(search_dir)],
                env)  # fmt: skip

            banner("5/6 train the chosen architecture from scratch")
            train_dir = state / "train"
            run([str(BIN / "dnas"), "train", "--arch", str(search_dir / "arch_argmax.json"), "--data", "digits",
                 "--epochs", str(args.train_epochs), "--out", str(train_dir)], env)  # fmt: skip

            banner("6/6 measure the chosen architecture end to end on the device")
            predicted_us, measured_us = measure_end_to_end(
                server, admin_token, device, search_dir / "arch_argmax.json"
            )

    from fbnet_core.formats.architecture_file import load_architecture

    chosen = load_architecture(search_dir / "arch_argmax.json")
    top1 = json.loads((train_dir / "train_result.json").read_text())["top1"]
    error_pct = 100.0 * (predicted_us - measured_us) / measured_us
    banner(f"result ({time.monotonic() - started:.0f} s)")
    print(f"device:              {device}")
    print(f"architecture:        {chosen.arch}")
    print(f"predicted latency:   {predicted_us / 1000:.3f} ms (sum of the LUT's blocks)")
    print(
        f"measured latency:    {measured_us / 1000:.3f} ms (whole network, end to end; LUT error {error_pct:+.1f}%)"
    )
    print(f"top-1 on digits:     {top1:.1%} (after {args.train_epochs} epochs from scratch)")
    if args.keep_server:
        print(f"server still running: {server} (dashboard at {server}/)")


if __name__ == "__main__":
    main()
