"""The executorch and litert backends on this host, with the real runtimes, on files compiled from the same op spec
(tests/search_space/data/), and an ExecuTorch device end to end against a real server."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from device_agents.backends import BackendOptions, load_backend
from device_agents.backends.base import OpInput
from device_agents.errors import BackendUnavailableError
from device_agents.measure import measure_op
from device_agents.online import Agent, AgentSettings, ensure_registered
from device_agents.state import AgentPaths
from device_agents.timing import TimingPolicy
from fbnet_core.client import OpUpload, ProfilerClient
from fbnet_core.keys import ops_for_space
from fbnet_core.space import fbnet_space
from search_client.space.export import export_onnx

DATA = Path(__file__).parents[1] / "search_space" / "data"
KEY = "blk.k3_e6.c16.o16.s1.h32w32"
SPEC = {op.key: op for op in ops_for_space(fbnet_space(resolution=32, small_input=True, num_classes=10))}[KEY].spec
FAST = TimingPolicy(warmup_min_s=0.0, warmup_max_s=0.05, min_runs=10, min_s=0.0, max_s=0.1)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def compiled_op(model_format: str) -> OpInput:
    path = DATA / f"{KEY}.{model_format}"
    return OpInput(KEY, None, hashlib.sha256(export_onnx(SPEC)).hexdigest(), SPEC, path, _sha256(path))


@pytest.mark.parametrize(
    ("backend_name", "model_format", "version_package", "delegate"),
    [("executorch", "pte", "executorch", "XnnpackBackend"), ("litert", "tflite", "ai-edge-litert", "XNNPACK")],
)
def test_a_compiled_op_is_timed_with_its_runtimes_provenance(backend_name, model_format, version_package, delegate):
    import importlib.metadata

    chosen = load_backend(backend_name, BackendOptions(threads=1))
    assert chosen.model_format == model_format
    record = measure_op(chosen, compiled_op(model_format), FAST)
    assert not record.is_failure, record.error
    assert len(record.samples_us) >= 10 and min(record.samples_us) > 0
    runtime = record.runtime
    assert runtime["runtime"] == backend_name
    assert runtime["runtime_version"] == importlib.metadata.version(version_package)
    assert runtime["execution_provider"] == delegate and runtime["threads"] == 1
    assert runtime["extra"]["model_format"] == model_format


def test_a_file_that_does_not_match_its_sha256_is_a_failed_op(tmp_path):
    damaged = tmp_path / "damaged.pte"
    damaged.write_bytes((DATA / f"{KEY}.pte").read_bytes()[:-7])
    op = OpInput(KEY, None, "0" * 64, SPEC, damaged, _sha256(DATA / f"{KEY}.pte"))
    record = measure_op(load_backend("executorch", BackendOptions(threads=1)), op, FAST)
    assert record.is_failure and "does not match" in record.error


def test_an_op_without_a_file_in_the_backends_format_is_a_failed_op():
    record = measure_op(load_backend("litert", BackendOptions(threads=1)), compiled_op("pte"), FAST)
    assert record.is_failure and "LiteRT could not load" in record.error
    missing = OpInput(KEY, None, "0" * 64, SPEC)
    record = measure_op(load_backend("litert", BackendOptions(threads=1)), missing, FAST)
    assert record.is_failure and "no .tflite file was given" in record.error


def test_executorch_runs_torchs_intra_op_pool_at_the_agents_thread_count():
    """The runtime takes torch tensors: with torch's default pool (a thread per core) a run whose input torch
    splits waits for a second thread, milliseconds on a busy machine. A fresh process, as an agent is."""
    code = (
        "import torch\n"
        "from device_agents.backends import BackendOptions, load_backend\n"
        "backend = load_backend('executorch', BackendOptions(threads=1))\n"
        "print(torch.get_num_threads(), backend.runtime_info().extra['torch_threads'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]


def test_executorch_refuses_a_second_thread_count_in_one_process_instead_of_aborting():
    load_backend("executorch", BackendOptions(threads=1))
    with pytest.raises(BackendUnavailableError, match="already has 1 threads in this process"):
        load_backend("executorch", BackendOptions(threads=2))


def test_an_executorch_device_registers_its_format_is_leased_pte_files_and_fills_its_lut(
    live_server, unique_name, tmp_path
):
    admin = live_server.client(live_server.admin_token)
    onnx = export_onnx(SPEC)
    pte = (DATA / f"{KEY}.pte").read_bytes()
    admin.upload_ops([OpUpload(KEY, SPEC, onnx, {"pte": pte})])

    backend = load_backend("executorch", BackendOptions(threads=1))
    name = unique_name("pixel-et")
    settings = AgentSettings(live_server.url, name, AgentPaths.for_agent(tmp_path, name), once=True)
    stop = threading.Event()
    info = backend.runtime_info()
    device = {**backend.describe_device(), "runtime": info.__dict__}
    credentials = ensure_registered(settings, live_server.enroll_token, device, stop, info.runtime,
                                    backend.model_format)  # fmt: skip
    assert (admin.get_device(name).runtime, admin.get_device(name).format) == ("executorch", "pte")
    assert admin.create_jobs(name, [KEY]).queued == 1
    with ProfilerClient(live_server.url, credentials.device_token) as client:
        summary = Agent(client, backend, FAST, settings, stop).run()
    assert (summary.measured, summary.failed, summary.posted) == (1, 0, 1)
    entry = admin.get_lut(name).entries[KEY]
    assert entry["median_us"] > 0
    assert entry["provenance"]["runtime"] == "executorch"
    # The agent downloaded the .pte (by its sha256), never the ONNX file.
    cached = sorted(path.name for path in settings.paths.onnx_cache.iterdir())
    assert cached == [f"{hashlib.sha256(pte).hexdigest()}.pte"]


def _profile_offline_with_executorch(tmp_path):
    """ops.jsonl with the op's .onnx and .pte, profiled by `device-agent profile --backend executorch`."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    onnx = export_onnx(SPEC)
    (tmp_path / f"{KEY}.onnx").write_bytes(onnx)
    shutil.copy(DATA / f"{KEY}.pte", tmp_path / f"{KEY}.pte")
    line = {"format_version": 1, "key": KEY, "spec": SPEC, "file": f"{KEY}.onnx",
            "sha256": hashlib.sha256(onnx).hexdigest(),
            "models": {"pte": {"file": f"{KEY}.pte", "sha256": _sha256(DATA / f"{KEY}.pte")}}}  # fmt: skip
    (tmp_path / "ops.jsonl").write_text(json.dumps(line) + "\n")
    results = tmp_path / "results.jsonl"
    env = {**os.environ, "PROFILER_STATE_DIR": str(tmp_path / "state")}
    run = [sys.executable, "-m", "device_agents"]
    profile = subprocess.run([*run, "profile", "--ops", str(tmp_path / "ops.jsonl"), "--out", str(results),
                              "--backend", "executorch", "--max-s", "0.05", "--no-invocation-overhead"],
                             capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert profile.returncode == 0, profile.stderr
    assert json.loads(results.read_text())["runtime"]["runtime"] == "executorch"
    return onnx, results, env, run


def test_offline_profile_with_executorch_then_upload_registers_the_device_as_executorch(
    live_server, unique_name, tmp_path
):
    import subprocess

    onnx, results, env, run = _profile_offline_with_executorch(tmp_path)
    admin = live_server.client(live_server.admin_token)
    admin.upload_ops([OpUpload(KEY, SPEC, onnx, {"pte": (DATA / f"{KEY}.pte").read_bytes()})])
    name = unique_name("lab-et")
    upload = subprocess.run([*run, "upload", str(results), "--server", live_server.url, "--name", name,
                             "--enroll-token", live_server.enroll_token],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert "accepted 1, duplicates 0" in upload.stdout, upload.stderr
    device = admin.get_device(name)
    assert (device.runtime, device.format) == ("executorch", "pte")
    assert list(admin.get_lut(name).entries) == [KEY]


def test_upload_to_a_server_without_the_op_registers_it_with_the_pte_file_the_device_ran(
    backend, live_server_factory, tmp_path
):
    import subprocess

    from fbnet_core.client import NotFoundError

    server = live_server_factory(backend)
    _onnx, results, env, run = _profile_offline_with_executorch(tmp_path)
    admin = server.client(server.admin_token)
    with pytest.raises(NotFoundError):
        admin.get_op(KEY)
    upload = subprocess.run([*run, "upload", str(results), "--server", server.url, "--device", "lab-et-fresh",
                             "--enroll-token", server.enroll_token, "--admin-token", server.admin_token],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert "accepted 1, duplicates 0" in upload.stdout, upload.stderr
    assert set(admin.get_op(KEY)["formats"]) == {"onnx", "pte"}
    assert admin.get_op_model(KEY, "pte") == (DATA / f"{KEY}.pte").read_bytes()
