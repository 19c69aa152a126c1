"""A throw-away stack for the validation benchmarks: a real `profiler-server serve --dev` on SQLite in a temp
folder, real `device-agent run` processes, and the `dnas` CLI, driven the way a user would drive them.

`serve --dev` writes the admin and enroll tokens into `$PROFILER_STATE_DIR/dev-tokens.json`; the agents and
`dnas` read them from there, so no token appears on a command line. The server is pinned to one CPU, agents
to the CPUs they measure on.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fbnet_core.client import ProfilerClient
from fbnet_core.dev_tokens import read_dev_tokens
from fbnet_core.model_formats import FORMAT_SUFFIX, RUNTIME_FORMAT
from fbnet_core.space import SMALL_INPUT_BELOW_PX, SpaceParams

# Generous: on a machine shared by many jobs, importing the server's and the agent's packages on one pinned core
# took over a minute.
PORT_FILE = "server.port"
START_TIMEOUT_S = 300.0


def _free_port(preferred: int = 0) -> int:
    """`preferred` if it is free, else any free port."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def exit_on_sigterm() -> None:
    """SIGTERM ends the benchmark through its `finally` blocks, so no server or agent outlives it."""
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))


def add_agent_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every bench that starts a Stack and an agent takes: where the agent and the server run, the
    agent's scheduling and its extra timing options."""
    parser.add_argument("--agent-cpu", type=int, default=0, help="the CPU the agent measures on")
    parser.add_argument("--server-cpu", type=int, default=1, help="the server's (and exporter's) CPU")
    parser.add_argument(
        "--agent-realtime-priority", type=int, default=1,
        help="the agent measures under SCHED_FIFO at this priority (0: the OS default policy); on a shared "
             "machine other users' jobs otherwise preempt most timed runs (docs/validation.md)",
    )  # fmt: skip
    parser.add_argument(
        "--agent-timing", default="",
        help="extra timing options for the agent, e.g. '--max-s 2 --target-ci 0.005' (default: the agent's own)",
    )  # fmt: skip


def agent_arguments(args: argparse.Namespace) -> list[str]:
    """`device-agent run` options from add_agent_arguments' values (the CPU goes to Stack.start_agent)."""
    return ["--realtime-priority", str(args.agent_realtime_priority), *args.agent_timing.split()]


def pinned(cpus: Sequence[int]) -> list[str]:
    """`taskset` prefix: keeps the server and the exporter off the CPU an agent measures on."""
    return ["taskset", "-c", ",".join(str(cpu) for cpu in cpus)]


def _dnas_command(args: Sequence[str], cpus: Sequence[int] | None) -> list[str]:
    prefix = pinned(cpus) if cpus else []
    return [*prefix, sys.executable, "-c", "from search_client.commands.cli import main; main()", *args]


@dataclass
class Stack:
    workdir: Path
    server_cpus: Sequence[int] = (1,)
    url: str = ""
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PROFILER_STATE_DIR": str(self.workdir / "state"),
            "PROFILER_DATABASE_URL": f"sqlite:///{self.workdir / 'lut.sqlite3'}",
            "FBNET_LUT_CACHE": str(self.workdir / "lut-cache"),
        }

    def _spawn(self, command: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = (self.workdir / log_name).open("ab")
        process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self._processes.append(process)
        return process

    def start_server(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # A workdir used again keeps its port: its agents' saved credentials name the server's address, so a
        # re-run finds the LUT already measured there instead of measuring it again.
        port_file = self.workdir / PORT_FILE
        port = _free_port(int(port_file.read_text()) if port_file.exists() else 0)
        port_file.write_text(str(port))
        self.url = f"http://127.0.0.1:{port}"
        command = [*pinned(self.server_cpus), sys.executable, "-m", "profiler_server.cli", "serve", "--dev"]
        server = self._spawn([*command, "--port", str(port), "--log-level", "warning"], "server.log")
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise SystemExit(f"server exited: {(self.workdir / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self.url
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("server did not become healthy")

    def admin(self) -> ProfilerClient:
        os.environ["PROFILER_STATE_DIR"] = self.env["PROFILER_STATE_DIR"]  # read_dev_tokens reads it
        tokens = read_dev_tokens(self.url)
        if tokens is None:
            raise SystemExit("serve --dev wrote no tokens")
        return ProfilerClient(self.url, tokens.admin_token)

    def start_agent(
        self, name: str, threads: int, cpus: str, once: bool = False, agent_args: Sequence[str] = ()
    ) -> subprocess.Popen[bytes]:
        """`device-agent run` for `name` (plus `agent_args`, e.g. timing options); returns once it is registered."""
        command = [sys.executable, "-m", "device_agents", "run", "--server", self.url, "--name", name,
                   "--threads", str(threads), "--cpu-affinity", cpus, "--idle-poll-s", "0.5", *agent_args]  # fmt: skip
        agent = self._spawn([*command, *(["--once"] if once else [])], f"agent-{name}.log")
        with self.admin() as admin:
            deadline = time.monotonic() + START_TIMEOUT_S
            while name not in {device.name for device in admin.list_devices()}:
                if agent.poll() is not None and agent.returncode != 0:
                    raise SystemExit(
                        f"agent {name} exited: {(self.workdir / f'agent-{name}.log').read_text()}"
                    )
                if time.monotonic() > deadline:
                    raise SystemExit(f"agent {name} did not register")
                time.sleep(0.2)
        return agent

    def drain(self, name: str, agent_args: Sequence[str]) -> None:
        """`device-agent run --once AGENT_ARGS` for `name` to completion: registers it if needed, measures its
        queue. `agent_args` choose the backend and its settings, e.g. ("--threads", "1", "--cpu-affinity", "0")."""
        command = [sys.executable, "-m", "device_agents", "run", "--server", self.url, "--name", name, "--once",
                   *agent_args]  # fmt: skip
        with (self.workdir / f"agent-{name}.log").open("ab") as log:
            done = subprocess.run(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if done.returncode != 0:
            raise SystemExit(
                f"agent {name} failed: {(self.workdir / f'agent-{name}.log').read_text()[-2000:]}"
            )

    def dnas(self, *args: str, cpus: Sequence[int] | None = None) -> subprocess.CompletedProcess[str]:
        """Run `dnas ARGS` (pinned to `cpus` if given); its output streams to the terminal and is returned."""
        result = subprocess.run(_dnas_command(args, cpus), env=self.env, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(result.stdout)
        if result.returncode != 0:
            raise SystemExit(f"dnas {' '.join(args[:1])} failed with exit code {result.returncode}")
        return result

    def dnas_in_background(self, *args: str, cpus: Sequence[int] | None = None) -> subprocess.Popen[bytes]:
        """Start `dnas ARGS` (pinned to `cpus` if given), its output streaming to the terminal; stopped on close."""
        process = subprocess.Popen(_dnas_command(args, cpus), env=self.env)
        self._processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def close(self) -> None:
        for process in reversed(self._processes):
            self.stop(process)


def speed_reference_arguments(stack: Stack, model: str, runtime: str, params: SpaceParams, cpu: int) -> list[str]:
    """`device-agent run` options that pair every timed run with the zoo `model` ('none': no options), compiled for
    `runtime`. Below 100 px it is built in the measured space `params`: at 224 px it would last hundreds of times as
    long as the op paired with it."""
    if model == "none":
        return []
    model_format = RUNTIME_FORMAT[runtime]
    reference = stack.workdir / f"speed-reference-{model}{FORMAT_SUFFIX[model_format]}"
    in_space = [] if params.resolution >= SMALL_INPUT_BELOW_PX else [
        "--resolution", str(params.resolution), "--width", str(params.width),
        "--head-channels", str(params.head_channels), "--num-classes", str(params.num_classes),
    ]  # fmt: skip
    stack.dnas("export", "--model", model, *in_space, "--format", model_format, "-o", str(reference), cpus=(cpu,))
    return ["--speed-reference", str(reference)]
