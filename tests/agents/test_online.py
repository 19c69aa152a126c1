"""The online agent against real profiler servers (uvicorn on 127.0.0.1, SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from device_agents.backends.onnxruntime import OnnxRuntimeBackend
from device_agents.online import Agent, AgentSettings, ensure_registered
from device_agents.retry import RetryPolicy
from device_agents.state import AgentPaths, load_credentials
from device_agents.timing import TimingPolicy
from fbnet_core.client import ProfilerClient
from tests.agents.helpers import queue_ops, write_conv_onnx, write_runtime_broken_onnx

FAST = TimingPolicy(warmup_min_s=0.0, warmup_max_s=0.02, min_runs=10, min_s=0.0, max_s=0.05)
QUICK_RETRY = RetryPolicy(initial_s=0.2, max_delay_s=1.0)


def _ops(folder: Path, count: int, prefix: str) -> list[tuple[str, Path]]:
    ops = []
    for i in range(count):
        path = folder / f"{prefix}{i}.onnx"
        write_conv_onnx(path, channels=4 + i, size=8)
        ops.append((f"{prefix}.c{4 + i}", path))
    return ops


def _agent(server, name: str, state: Path, wrap=None, **settings) -> tuple[Agent, ProfilerClient, threading.Event]:
    backend = OnnxRuntimeBackend(threads=1)
    backend = wrap(backend) if wrap else backend
    agent_settings = AgentSettings(server.url, name, AgentPaths.for_agent(state, name), retry=QUICK_RETRY, **settings)
    stop = threading.Event()
    device = {**backend.describe_device(), "runtime": backend.runtime_info().__dict__}
    credentials = ensure_registered(agent_settings, server.enroll_token, device, stop)
    client = ProfilerClient(server.url, credentials.device_token)
    return Agent(client, backend, FAST, agent_settings, stop), client, stop


def test_protocol_register_lease_measure_report_and_fail_a_broken_op(live_server, unique_name, tmp_path):
    name = unique_name("cpu")
    agent, client, _ = _agent(live_server, name, tmp_path, once=True, post_batch=2)
    ops = _ops(tmp_path, 3, unique_name("conv"))
    broken = (unique_name("broken"), tmp_path / "broken.onnx")
    write_runtime_broken_onnx(broken[1])
    queue_ops(live_server, name, [*ops, broken])

    summary = agent.run()
    client.close()
    assert (summary.measured, summary.failed, summary.posted, summary.rejected) == (3, 1, 4, 0)
    device = live_server.client(live_server.admin_token).get_device(name)
    assert (device.coverage.measured, device.coverage.failed, device.coverage.queued) == (3, 1, 0)
    assert device.attributes["runtime"]["runtime"] == "onnxruntime"  # registered with its description
    lut = live_server.client(live_server.admin_token).get_lut(name)
    assert sorted(lut.entries) == sorted(key for key, _ in ops)
    assert all(entry["median_us"] > 0 for entry in lut.entries.values())

    paths = AgentPaths.for_agent(tmp_path, name)
    assert stat.S_IMODE(paths.credentials.stat().st_mode) == 0o600
    assert not paths.spool.exists()  # everything acknowledged
    assert len(list(paths.onnx_cache.glob("*.onnx"))) == 4  # each model downloaded once, by sha256

    # A restart reuses the saved token (no enroll token needed) and finds nothing left to do.
    saved = load_credentials(paths)
    again = ensure_registered(AgentSettings(live_server.url, name, paths), None, {}, threading.Event())
    assert again == saved


class StopsTheServerDuringTheLastOp:
    """Wraps the real backend: while the last queued op is being prepared, the server goes down for 2 s."""

    def __init__(self, inner: OnnxRuntimeBackend, server, spool: Path, ops: int) -> None:
        self._inner, self._server, self._spool, self._ops = inner, server, spool, ops
        self.prepared = 0
        self.spooled_during_outage: list[int] = []
        self.thread: threading.Thread | None = None

    def __getattr__(self, name: str):
        return getattr(self._inner, name)

    def prepare(self, op):
        self.prepared += 1
        if self.prepared == self._ops:
            self._server.stop()
            self.thread = threading.Thread(target=self._restart_later)
            self.thread.start()
        return self._inner.prepare(op)

    def _restart_later(self) -> None:
        time.sleep(2.0)  # the agent keeps retrying its next lease meanwhile
        self.spooled_during_outage.append(len(self._spool.read_text().splitlines()))
        self._server.start()


def test_results_are_spooled_while_the_server_is_down_and_posted_after_it_restarts(live_server_factory, tmp_path):
    server = live_server_factory("sqlite")
    spool = AgentPaths.for_agent(tmp_path, "spooler").spool
    wrappers: list[StopsTheServerDuringTheLastOp] = []

    def wrap(backend: OnnxRuntimeBackend) -> StopsTheServerDuringTheLastOp:
        wrappers.append(StopsTheServerDuringTheLastOp(backend, server, spool, ops=3))
        return wrappers[0]

    agent, client, _ = _agent(server, "spooler", tmp_path, wrap=wrap, once=True, post_batch=100)
    wrapper = wrappers[0]
    queue_ops(server, "spooler", _ops(tmp_path, 3, "conv"))
    summary = agent.run()
    wrapper.thread.join()
    client.close()
    assert wrapper.spooled_during_outage == [3]  # all three results were on disk while the server was down
    assert (summary.measured, summary.posted) == (3, 3)
    assert not spool.exists()  # acknowledged after the restart, then removed
    assert server.client(server.admin_token).get_device("spooler").coverage.measured == 3


def _start_agent_process(server, name: str, state: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PROFILER_STATE_DIR": str(state), "PROFILER_ENROLL_TOKEN": server.enroll_token}
    return subprocess.Popen(
        [sys.executable, "-m", "device_agents", "run", "--server", server.url, "--name", name,
         "--idle-poll-s", "0.2", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(condition, process: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
    """Generous: on a loaded 2-core machine an agent process can take tens of seconds just to start."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            _, stderr = process.communicate()
            raise AssertionError(f"condition not reached in {timeout_s} s; agent stderr:\n{stderr[-3000:]}")
        time.sleep(0.05)


def test_a_killed_agent_loses_only_its_task_which_its_lease_returns_to_the_queue(live_server_factory, tmp_path):
    server = live_server_factory("sqlite", lease_seconds=2)
    admin = server.client(server.admin_token)
    registered = server.client(server.enroll_token).register_device("victim", "linux-x86_64")
    paths = AgentPaths.for_agent(tmp_path, "victim")
    from device_agents.state import Credentials, save_credentials

    save_credentials(paths, Credentials(server.url, "victim", registered.token))
    queue_ops(server, "victim", _ops(tmp_path, 1, "slow"))
    # A 60 s cool-down before the op's runs: the task is surely in flight when the agent is killed.
    process = _start_agent_process(server, "victim", tmp_path, "--cooldown-s", "60")
    _wait_for(lambda: admin.get_device("victim").coverage.leased == 1, process)
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)

    agent, client, _ = _agent(server, "victim", tmp_path, once=True)
    deadline = time.monotonic() + 60
    while agent.run().measured == 0:  # the queue looks empty until the 2 s lease has run out
        assert time.monotonic() < deadline, "the killed agent's task never came back to the queue"
        time.sleep(0.5)
    summary = agent.summary
    client.close()
    assert summary.measured == 1
    coverage = admin.get_device("victim").coverage
    assert (coverage.measured, coverage.leased, coverage.failed) == (1, 0, 0)


def test_sigterm_finishes_the_current_op_posts_and_exits(live_server_factory, tmp_path):
    server = live_server_factory("sqlite")
    admin = server.client(server.admin_token)
    # Each op idles 3 s before its runs (a cool-down): long enough to see it leased and signal mid-op.
    process = _start_agent_process(server, "graceful", tmp_path, "--cooldown-s", "3")
    _wait_for(lambda: any(d.name == "graceful" for d in admin.list_devices()), process)
    queue_ops(server, "graceful", _ops(tmp_path, 3, "op"))
    _wait_for(lambda: admin.get_device("graceful").coverage.leased == 1, process)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert "SIGTERM: finishing the current op" in stderr
    assert "measured 1, failed 0, posted 1" in stdout
    coverage = admin.get_device("graceful").coverage
    assert (coverage.measured, coverage.leased, coverage.queued) == (1, 0, 2)  # nothing stranded in a lease


def test_upload_sends_offline_results_once(live_server, unique_name, tmp_path):
    name = unique_name("lab")
    ops = _ops(tmp_path, 2, unique_name("off"))
    from device_agents.manifest import sha256_of

    admin = live_server.client(live_server.admin_token)
    from fbnet_core.client import OpUpload

    admin.upload_ops([OpUpload(key, {"kind": "test_conv"}, path.read_bytes()) for key, path in ops])
    manifest = tmp_path / "ops.jsonl"
    manifest.write_text("".join(
        json.dumps({"key": key, "spec": {}, "file": path.name, "sha256": sha256_of(path)}) + "\n" for key, path in ops
    ))
    results = tmp_path / "results.jsonl"
    env = {**os.environ, "PROFILER_STATE_DIR": str(tmp_path / "state")}
    run = [sys.executable, "-m", "device_agents"]
    profile = subprocess.run([*run, "profile", "--ops", str(manifest), "--out", str(results), "--max-s", "0.05"],
                             capture_output=True, text=True, env=env, timeout=120)
    assert profile.returncode == 0, profile.stderr
    upload = [*run, "upload", str(results), "--server", live_server.url, "--name", name,
              "--enroll-token", live_server.enroll_token]
    first = subprocess.run(upload, capture_output=True, text=True, env=env, timeout=120)
    assert "accepted 2, duplicates 0" in first.stdout, first.stderr
    second = subprocess.run(upload, capture_output=True, text=True, env=env, timeout=120)
    assert "accepted 0, duplicates 2" in second.stdout, second.stderr
    assert sorted(admin.get_lut(name).entries) == sorted(key for key, _ in ops)




def test_an_unknown_device_token_stops_the_agent_with_a_one_line_error(live_server, unique_name, tmp_path):
    from device_agents.state import Credentials, save_credentials

    name = unique_name("stale")
    save_credentials(AgentPaths.for_agent(tmp_path, name), Credentials(live_server.url, name, "not-a-token-0123456789"))
    process = _start_agent_process(live_server, name, tmp_path, "--once")
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "the server refused this agent's token" in stderr and "Traceback" not in stderr


def test_results_the_server_refuses_are_set_aside_with_the_reason_and_the_rest_posted(live_server, unique_name,
                                                                                        tmp_path):
    from device_agents.spool import Spool

    name = unique_name("refused")
    agent, client, _ = _agent(live_server, name, tmp_path, once=True)
    paths = AgentPaths.for_agent(tmp_path, name)
    # Left in the spool by an earlier run: a result for a task this server never had (say, a reset database).
    Spool(paths.spool).add([{"task_id": 987654321, "result_id": "orphan-1", "error": "measured elsewhere"}])
    ops = _ops(tmp_path, 1, unique_name("ok"))
    queue_ops(live_server, name, ops)
    summary = agent.run()
    client.close()
    assert (summary.measured, summary.posted, summary.rejected) == (1, 1, 1)
    rejected = json.loads((paths.root / "rejected.jsonl").read_text())
    assert rejected["result_id"] == "orphan-1" and "unknown task 987654321" in rejected["rejected_reason"]
    assert not paths.spool.exists()
    assert live_server.client(live_server.admin_token).get_device(name).coverage.measured == 1


def test_the_enroll_token_defaults_to_the_dev_tokens_file(live_server, unique_name, tmp_path, monkeypatch):
    from fbnet_core.dev_tokens import write_dev_tokens

    monkeypatch.setenv("PROFILER_STATE_DIR", str(tmp_path))
    write_dev_tokens(live_server.url, live_server.admin_token, live_server.enroll_token)  # as `serve --dev` does
    name = unique_name("devmode")
    env = {key: value for key, value in os.environ.items() if key != "PROFILER_ENROLL_TOKEN"}
    process = subprocess.run(
        [sys.executable, "-m", "device_agents", "run", "--server", live_server.url, "--name", name, "--once"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert process.returncode == 0, process.stderr
    assert f"registered {name}" in process.stderr
    assert load_credentials(AgentPaths.for_agent(tmp_path, name)) is not None
