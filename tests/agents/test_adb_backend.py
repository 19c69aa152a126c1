"""The adb backend. No phone exists here: `adb` is a MOCK (a small script that logs its arguments and replays
real captured outputs of onnxruntime_perf_test and benchmark_model, see data/README.md). The parsers are
tested on those captured texts directly."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from device_agents.backends.adb import AdbBackend, cpu_mask, parse_sensor_lines
from device_agents.backends.base import OpInput
from device_agents.backends.tool_output import (
    parse_executor_runner,
    parse_ort_perf_test,
    parse_tflite_benchmark_model,
)
from device_agents.errors import BackendUnavailableError, OpFailedError
from device_agents.measure import measure_op
from device_agents.timing import TimingPolicy

DATA = Path(__file__).parent / "data"

MOCK_ADB = r'''#!{python}
"""MOCK adb: logs argv, answers like a phone; the benchmark binary's output is a captured file."""
import json, os, sys
args = sys.argv[1:]
with open(os.environ["MOCK_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:2] == ["-s", "R58M123"]:
    args = args[2:]
if args == ["get-state"]:
    print(os.environ.get("MOCK_ADB_STATE", "device"))
elif args[0] == "push":
    print(f"{{args[1]}}: 1 file pushed, 0 skipped.")
elif args[0] == "shell":
    command = args[1]
    if command.startswith("taskset"):
        sys.stdout.write(open(os.environ["MOCK_ADB_TOOL_OUTPUT"]).read())
        sys.exit(int(os.environ.get("MOCK_ADB_TOOL_EXIT", "0")))
    elif command.startswith("getprop"):
        props = {{"ro.product.manufacturer": "samsung", "ro.product.model": "SM-G950F",
                  "ro.build.version.release": "9", "ro.board.platform": "universal8895",
                  "ro.product.cpu.abi": "arm64-v8a"}}
        print(props.get(command.split()[1], ""))
    elif command == "nproc":
        print(8)
    elif command.startswith("for z in"):
        print("T battery 31000\nT cpu-0-0-us 45200\nF cpu0 1690000 schedutil\nF cpu4 2314000 performance")
'''


@pytest.fixture
def mock_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    script = tmp_path / "adb"
    script.write_text(MOCK_ADB.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "adb.log"
    monkeypatch.setenv("MOCK_ADB_LOG", str(log))
    monkeypatch.setenv("MOCK_ADB_TOOL_OUTPUT", str(DATA / "ort_perf_test_android_acl.txt"))
    binary = tmp_path / "onnxruntime_perf_test"
    binary.write_bytes(b"\x7fELF pretend aarch64 binary")

    def calls() -> list[list[str]]:
        return [json.loads(line) for line in log.read_text().splitlines()]

    return script, binary, calls


ADB_POLICY = TimingPolicy(warmup_min_runs=1, warmup_window=1, warmup_min_s=0.0, min_runs=6, min_s=0.0, max_s=5.0)


def _op(tmp_path: Path, suffix: str = ".onnx") -> OpInput:
    """The op's ONNX file, and for another suffix its file in that format too (as a manifest or the server gives)."""
    import hashlib

    model = tmp_path / "blk.onnx"
    model.write_bytes(b"model bytes")
    op = OpInput("blk", model, hashlib.sha256(b"model bytes").hexdigest(), {})
    if suffix == ".onnx":
        return op
    compiled = model.with_suffix(suffix)
    compiled.write_bytes(f"{suffix} bytes".encode())
    return OpInput(op.key, model, op.onnx_sha256, {}, compiled, hashlib.sha256(compiled.read_bytes()).hexdigest())


def test_mock_adb_pushes_once_pins_with_taskset_and_reports_the_tool_mean_in_us(mock_adb, tmp_path):
    adb, binary, calls = mock_adb
    backend = AdbBackend("onnxruntime_perf_test", binary, cpus=[4, 5, 6, 7], serial="R58M123",
                         runs_per_invocation=10, adb=str(adb))
    op = _op(tmp_path)
    record = measure_op(backend, op, ADB_POLICY)
    assert not record.is_failure, record
    assert set(record.samples_us) == {144871.0}  # 144.871 ms per the captured output
    runtime = record.runtime
    assert runtime["cpu_affinity"] == [4, 5, 6, 7] and runtime["threads"] == 1
    assert runtime["runtime_version"].startswith("binary-sha256:")
    assert runtime["temperatures_c"] == {"battery": 31.0, "cpu-0-0-us": 45.2}  # the phone's, not the host's
    assert runtime["cpu_freq_mhz"] == {"cpu0": 1690.0, "cpu4": 2314.0}
    log = calls()
    assert all(call[:2] == ["-s", "R58M123"] for call in log)
    pushes = [call[3:] for call in log if call[2] == "push"]
    remote_model = f"/data/local/tmp/fbnet-lut/{op.onnx_sha256}.onnx"
    assert pushes == [[str(binary), "/data/local/tmp/fbnet-lut/onnxruntime_perf_test"], [str(op.onnx_path), remote_model]]
    runs = [call[3] for call in log if call[2] == "shell" and call[3].startswith("taskset")]
    assert runs[0] == ("taskset f0 /data/local/tmp/fbnet-lut/onnxruntime_perf_test -e cpu -I -m times -r 10 "
                       f"-x 1 -y 1 {remote_model}")
    assert len(runs) == 1 + runtime["warmup_runs"] + runtime["timed_runs"]  # prepare's check run + engine runs


def test_mock_adb_benchmark_model_runs_the_ops_tflite_file(mock_adb, tmp_path, monkeypatch):
    adb, binary, calls = mock_adb
    monkeypatch.setenv("MOCK_ADB_TOOL_OUTPUT", str(DATA / "tflite_benchmark_model_android.txt"))
    backend = AdbBackend("benchmark_model", binary, cpus=[0], threads=4, adb=str(adb))
    record = measure_op(backend, _op(tmp_path, ".tflite"), ADB_POLICY)
    assert set(record.samples_us) == {33209.4}
    command = next(call[1] for call in calls() if call[0] == "shell" and call[1].startswith("taskset"))
    assert "--graph=/data/local/tmp/fbnet-lut/" in command and "--num_threads=4" in command
    assert record.runtime["runtime"] == "litert" and record.runtime["execution_provider"] == "XNNPACK"
    assert record.runtime["extra"]["model_format"] == "tflite"


def test_mock_adb_benchmark_model_without_a_tflite_is_a_failed_task(mock_adb, tmp_path):
    adb, binary, _ = mock_adb
    backend = AdbBackend("benchmark_model", binary, cpus=[0], adb=str(adb))
    record = measure_op(backend, _op(tmp_path), ADB_POLICY)
    assert record.is_failure and "blk: no .tflite file was given for this op" in record.error


def test_mock_adb_unparsable_output_is_a_failed_task_carrying_the_output(mock_adb, tmp_path, monkeypatch):
    adb, binary, _ = mock_adb
    monkeypatch.setenv("MOCK_ADB_TOOL_OUTPUT", str(DATA / "tflite_benchmark_model_failed.txt"))
    backend = AdbBackend("benchmark_model", binary, cpus=[0], adb=str(adb))
    record = measure_op(backend, _op(tmp_path, ".tflite"), ADB_POLICY)
    assert record.is_failure
    assert "expected one 'Inference timings in us' line" in record.error
    assert "Benchmarking failed." in record.error  # the tool's own words reach the server
    assert record.samples_us is None


def test_mock_adb_tool_exit_status_is_a_failed_task(mock_adb, tmp_path, monkeypatch):
    adb, binary, _ = mock_adb
    monkeypatch.setenv("MOCK_ADB_TOOL_EXIT", "139")
    backend = AdbBackend("onnxruntime_perf_test", binary, cpus=[0], adb=str(adb))
    record = measure_op(backend, _op(tmp_path), ADB_POLICY)
    assert record.is_failure and "exited with 139" in record.error


def test_mock_adb_offline_phone_is_refused_at_start(mock_adb, monkeypatch):
    adb, binary, _ = mock_adb
    monkeypatch.setenv("MOCK_ADB_STATE", "offline")
    with pytest.raises(BackendUnavailableError, match="'offline'"):
        AdbBackend("onnxruntime_perf_test", binary, cpus=[0], adb=str(adb))


def test_mock_adb_describes_the_phone(mock_adb):
    adb, binary, _ = mock_adb
    description = AdbBackend("onnxruntime_perf_test", binary, cpus=[0], adb=str(adb)).describe_device()
    assert description["hostname"] == "samsung SM-G950F" and description["os"] == "Android 9"
    assert description["cpu_model"] == "universal8895" and description["cpu_cores"] == 8
    assert description["platform"] == "android-arm64-v8a"


def test_parse_captured_onnxruntime_perf_test_outputs():
    reading = parse_ort_perf_test((DATA / "ort_perf_test_android_acl.txt").read_text())
    assert (reading.mean_us, reading.runs) == (144871.0, 10)
    reading = parse_ort_perf_test((DATA / "ort_perf_test_percentiles.txt").read_text())
    assert (reading.mean_us, reading.runs) == (58805.3, 1000)
    assert reading.details["p50_us"] == pytest.approx(58710.8)


def test_parse_captured_benchmark_model_output_reads_the_timed_block_not_the_warmup():
    reading = parse_tflite_benchmark_model((DATA / "tflite_benchmark_model_android.txt").read_text())
    assert (reading.mean_us, reading.runs) == (33209.4, 50)
    assert reading.details["std_us"] == 450.0 and reading.details["first_us"] == 32891.0


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "found no"),
        ("Total inference requests: 10\nAverage inference time cost: 0 ms\n", "not a positive latency"),
        ("Total inference requests: 10\nAverage inference time cost: nan ms\n", "found no"),
        ("Total inference requests: 10\nAverage inference time cost: 1.5 s\n", "found no"),  # wrong unit
        ("Total inference requests: 0\nAverage inference time cost: 1.5 ms\n", "no timed runs"),
    ],
)
def test_parse_perf_test_fails_loudly_never_zero(text, problem):
    with pytest.raises(OpFailedError, match=problem):
        parse_ort_perf_test(text)


def test_cpu_masks_and_phone_sensor_lines():
    assert cpu_mask([4, 5, 6, 7]) == "f0" and cpu_mask([0]) == "1" and cpu_mask([0, 9]) == "201"
    readings = parse_sensor_lines("T battery 31000\nT bogus \nF cpu0  \nF cpu7 2457600 schedutil\n")
    assert readings.temperatures_c == {"battery": 31.0}
    assert readings.cpu_freq_mhz == {"cpu7": 2457.6} and readings.cpu_governors == {"cpu7": "schedutil"}




def test_mock_adb_profile_from_the_command_line_records_the_phone_as_the_device(mock_adb, tmp_path):
    import subprocess

    adb, binary, _ = mock_adb
    op = _op(tmp_path)
    manifest = tmp_path / "ops.jsonl"
    manifest.write_text(json.dumps({"key": op.key, "spec": {}, "file": op.onnx_path.name, "sha256": op.onnx_sha256}))
    out = tmp_path / "results.jsonl"
    env = {**os.environ, "PATH": f"{adb.parent}{os.pathsep}{os.environ['PATH']}"}  # the mock is `adb` on PATH
    result = subprocess.run(
        [sys.executable, "-m", "device_agents", "profile", "--ops", str(manifest), "--out", str(out),
         "--backend", "adb", "--adb-binary", str(binary), "--cpu-affinity", "4-7", "--adb-runs", "20",
         "--max-s", "0.5", "--warmup-max-s", "0"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert set(record["samples_us"]) == {144871.0}
    assert record["runtime"]["extra"]["runs_per_sample"] == 20
    assert record["runtime"]["extra"]["device"]["platform"] == "android-arm64-v8a"  # what `upload` registers


def test_mock_adb_executor_runner_runs_the_ops_pte_file_on_output_composed_in_its_format(
    mock_adb, tmp_path, monkeypatch
):
    """fake adb replays text composed from executor_runner's format strings (data/README.md: not a capture)."""
    adb, binary, calls = mock_adb
    monkeypatch.setenv("MOCK_ADB_TOOL_OUTPUT", str(DATA / "executor_runner_composed.txt"))
    backend = AdbBackend("executor_runner", binary, cpus=[4, 5], threads=2, runs_per_invocation=5, adb=str(adb))
    op = _op(tmp_path, ".pte")
    record = measure_op(backend, op, ADB_POLICY)
    assert not record.is_failure, record.error
    assert record.samples_us == pytest.approx([411.0] * len(record.samples_us))  # runs 2..6: the cold first left out
    pushes = [call[2] for call in calls() if call[0] == "push"]
    assert pushes[-1] == f"/data/local/tmp/fbnet-lut/{op.model_sha256}.pte"
    command = next(call[1] for call in calls() if call[0] == "shell" and call[1].startswith("taskset"))
    assert command == (f"taskset 30 /data/local/tmp/fbnet-lut/executor_runner --model_path={pushes[-1]} "
                       "--num_executions=6 --cpu_threads=2")  # fmt: skip
    runtime = record.runtime
    assert (runtime["runtime"], runtime["execution_provider"], runtime["threads"]) == ("executorch", "XnnpackBackend", 2)
    assert runtime["extra"]["benchmark_tool"] == "executor_runner" and runtime["extra"]["model_format"] == "pte"


def test_parse_executor_runner_output_composed_in_its_format_leaves_the_cold_first_run_out():
    reading = parse_executor_runner((DATA / "executor_runner_composed.txt").read_text())
    assert reading.runs == 5
    assert reading.mean_us == pytest.approx((412 + 408 + 415 + 409 + 411) / 5)
    assert reading.details == {"first_us": pytest.approx(1094.0), "min_us": pytest.approx(408.0),
                               "max_us": pytest.approx(415.0), "total_ms": 3.149}  # fmt: skip


def test_parse_executor_runner_without_its_log_lines_names_the_build_flags():
    with pytest.raises(OpFailedError, match="EXECUTORCH_ENABLE_LOGGING=ON"):
        parse_executor_runner((DATA / "executor_runner_no_logging.txt").read_text())


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda text: text.replace("Iteration 4 of 6: 0.415000 ms\n", ""), "expected 'Iteration 1..6 of 6' lines"),
        (lambda text: text.replace("in 3.149000 ms", "in 31.49000 ms"), "the runs add up to 3.149 ms"),
        (lambda text: text.replace("Iteration 3 of 6: 0.408000", "Iteration 3 of 6: 0.000000"), "not a positive"),
        (lambda text: text + text, "expected one 'Model executed successfully"),
    ],
)
def test_parse_executor_runner_fails_loudly_never_zero(edit, problem):
    text = edit((DATA / "executor_runner_composed.txt").read_text())
    with pytest.raises(OpFailedError, match=problem):
        parse_executor_runner(text)
