"""`device-agent profile` end to end (real CLI process, real ONNX files): resumable, failures recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.agents.helpers import write_conv_onnx, write_manifest

FAST = ["--max-s", "0.05", "--warmup-max-s", "0.02"]


def _agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "device_agents", *args], capture_output=True, text=True,
                          timeout=120, check=False)


def test_profile_measures_a_manifest_records_failures_and_resumes(tmp_path: Path):
    good = [(f"conv.c{c}", tmp_path / f"conv{c}.onnx") for c in (4, 8)]
    entries = [(key, path, write_conv_onnx(path, channels=int(key[6:]))) for key, path in good]
    corrupt = tmp_path / "bad.onnx"
    corrupt.write_bytes(b"garbage")
    import hashlib

    entries.append(("bad", corrupt, hashlib.sha256(b"garbage").hexdigest()))
    manifest = write_manifest(tmp_path, entries)
    out = tmp_path / "results.jsonl"

    first = _agent("profile", "--ops", str(manifest), "--out", str(out), "--cpu-affinity", "0", *FAST)
    assert first.returncode == 1, first.stderr  # one op failed: the exit status says so
    assert "measured 2, failed 1, skipped 0" in first.stdout
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["key"] for r in records] == ["conv.c4", "conv.c8", "bad"]
    assert all(r["samples_us"] and r["runtime"]["cpu_affinity"] == [0] for r in records[:2])
    assert "onnxruntime could not load bad.onnx" in records[2]["error"]

    second = _agent("profile", "--ops", str(manifest), "--out", str(out), *FAST)
    assert "measured 0, failed 1, skipped 2" in second.stdout  # only the failed op is tried again
    assert len(out.read_text().splitlines()) == 4


def test_profile_rejects_a_manifest_line_without_its_fields(tmp_path: Path):
    manifest = tmp_path / "ops.jsonl"
    manifest.write_text(json.dumps({"key": "k", "file": "k.onnx"}) + "\n")
    result = _agent("profile", "--ops", str(manifest), "--out", str(tmp_path / "r.jsonl"))
    assert result.returncode == 2
    assert "ops.jsonl:1: missing field(s) spec, sha256" in result.stderr
    assert "Traceback" not in result.stderr


def test_profile_names_a_missing_manifest(tmp_path: Path):
    result = _agent("profile", "--ops", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "r.jsonl"))
    assert result.returncode == 2
    assert "nope.jsonl: no such file" in result.stderr and "Traceback" not in result.stderr


def test_profile_under_realtime_priority_records_the_policy_or_refuses_in_one_line(tmp_path: Path):
    path = tmp_path / "conv.onnx"
    manifest = write_manifest(tmp_path, [("conv.c4", path, write_conv_onnx(path, channels=4))])
    out = tmp_path / "results.jsonl"
    result = _agent("profile", "--ops", str(manifest), "--out", str(out), "--cpu-affinity", "0",
                    "--realtime-priority", "1", *FAST)
    if result.returncode == 2:  # a host without CAP_SYS_NICE: one line that says what is needed
        assert "CAP_SYS_NICE" in result.stderr and "Traceback" not in result.stderr
        return
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["runtime"]["extra"]["scheduler"] == {"policy": "SCHED_FIFO", "priority": 1}


def test_profile_without_realtime_priority_records_the_default_policy(tmp_path: Path):
    path = tmp_path / "conv.onnx"
    manifest = write_manifest(tmp_path, [("conv.c4", path, write_conv_onnx(path, channels=4))])
    out = tmp_path / "results.jsonl"
    result = _agent("profile", "--ops", str(manifest), "--out", str(out), *FAST)
    assert result.returncode == 0, result.stderr
    assert json.loads(out.read_text())["runtime"]["extra"]["scheduler"] == {"policy": "SCHED_OTHER", "priority": 0}


def test_profile_with_a_speed_reference_records_it_and_keeps_its_calibration(tmp_path: Path):
    op = tmp_path / "conv.onnx"
    manifest = write_manifest(tmp_path, [("conv.c8", op, write_conv_onnx(op, channels=8))])
    reference = tmp_path / "reference.onnx"
    write_conv_onnx(reference, channels=16, size=32, seed=3)
    out, state = tmp_path / "results.jsonl", tmp_path / "state"
    done = _agent("profile", "--ops", str(manifest), "--out", str(out), "--speed-reference", str(reference),
                  "--state-dir", str(state), *FAST)  # fmt: skip
    assert done.returncode == 0, done.stderr
    (record,) = [json.loads(line) for line in out.read_text().splitlines()]
    recorded = record["runtime"]["extra"]["speed_reference"]
    (calibration,) = (state / "speed_reference").glob("*.json")
    assert recorded["nominal_us"] == json.loads(calibration.read_text())["nominal_us"]
    assert recorded["calibration_file"] == calibration.name and recorded["repeats"] >= 1


def test_profile_refuses_a_speed_reference_on_a_backend_that_cannot_run_it(tmp_path: Path):
    op = tmp_path / "conv.onnx"
    manifest = write_manifest(tmp_path, [("conv.c8", op, write_conv_onnx(op, channels=8))])
    done = _agent("profile", "--ops", str(manifest), "--out", str(tmp_path / "r.jsonl"), "--backend", "torch",
                  "--speed-reference", str(op), "--state-dir", str(tmp_path / "state"))  # fmt: skip
    assert done.returncode == 2
    assert "device-agent: --speed-reference needs a backend that runs the reference in its own process" in done.stderr
    assert "Traceback" not in done.stderr
