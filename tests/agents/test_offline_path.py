"""The offline path as README shows it, each step a real command: `dnas export-ops` -> `device-agent profile`
(onnxruntime, this host) -> `device-agent upload` to a server that has never seen the ops -> `dnas lut pull` ->
`dnas search` on that LUT. Real server (SQLite and PostgreSQL), real ONNX files, real measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fbnet_core.network_fit import lut_ops
from fbnet_core.space import fbnet_space
from tests.cli_process import assert_one_line_error, run

# A small space (16 px, a quarter of the width, a narrow head) keeps the ~100 measured ops to seconds.
SPACE_ARGS = ["--resolution", "16", "--width", "0.25", "--head-channels", "64", "--num-classes", "10", "--small-input"]
SPACE = fbnet_space(16, 0.25, 10, 64, small_input=True)
FAST = ["--max-s", "0.05", "--warmup-max-s", "0.02", "--no-invocation-overhead"]


@pytest.fixture
def measured(tmp_path: Path) -> tuple[Path, Path]:
    """ops/ from `dnas export-ops` and results.jsonl from `device-agent profile` (measured once per test)."""
    ops = tmp_path / "ops"
    exported = run("dnas", "export-ops", *SPACE_ARGS, "--out", str(ops))
    assert exported.returncode == 0, exported.stderr
    results = tmp_path / "results.jsonl"
    profiled = run("device-agent", "profile", "--ops", str(ops / "ops.jsonl"), "--out", str(results), *FAST,
                   env={"PROFILER_STATE_DIR": str(tmp_path / "state")})
    assert profiled.returncode == 0, profiled.stderr
    return ops, results


def test_export_profile_upload_to_a_fresh_server_pull_and_search(backend, live_server_factory, measured, tmp_path):
    server = live_server_factory(backend)
    _, results = measured
    env = {"PROFILER_STATE_DIR": str(tmp_path / "state"), "PROFILER_ENROLL_TOKEN": server.enroll_token,
           "PROFILER_ADMIN_TOKEN": server.admin_token}
    needed = len(lut_ops(SPACE))  # the space's ops and the whole networks that fit the LUT's prediction

    uploaded = run("device-agent", "upload", str(results), "--server", server.url, "--name", "lab-cpu", env=env)
    assert uploaded.returncode == 0, uploaded.stderr
    assert f"registered {needed} ops the server did not have" in uploaded.stdout
    assert f"accepted {needed}, duplicates 0" in uploaded.stdout
    # Again: nothing left to register, every result already stored.
    again = run("device-agent", "upload", str(results), "--server", server.url, "--name", "lab-cpu", env=env)
    assert "registered" not in again.stdout and f"accepted 0, duplicates {needed}" in again.stdout, again.stderr

    lut = tmp_path / "lut" / "lut.json"  # a folder that does not exist yet
    pulled = run("dnas", "lut", "pull", "--device", "lab-cpu", "-o", str(lut), "--server", server.url,
                 "--cache-dir", str(tmp_path / "cache"), env=env)
    assert pulled.returncode == 0, pulled.stderr
    entries = json.loads(lut.read_text())["entries"]
    assert sorted(entries) == sorted(op.key for op in lut_ops(SPACE))
    # The measurements are this host's, stored without the path of the ops.jsonl they came from.
    some = server.client(server.admin_token).get_measurement(next(iter(entries.values()))["result_id"])
    assert some["runtime"]["runtime"] == "onnxruntime" and "ops_manifest" not in some["runtime"]["extra"]

    searched = run("dnas", "search", "--lut", str(lut), "--data", "digits", *SPACE_ARGS[:6], "--small-input",
                   "--epochs", "1", "--batch-size", "16", "--max-train-samples", "160", "--theta-passes", "1",
                   "--samples", "0", "--threads", "1", "--out", str(tmp_path / "search"), env=env, timeout=900)
    assert searched.returncode == 0, searched.stderr
    assert "argmax architecture:" in searched.stdout
    # Profiled with --no-invocation-overhead: one invocation cost per op, fitted on the whole networks, said so.
    assert "LUT: invocation cost " in searched.stdout and "the agent measured no overhead" in searched.stdout


def test_upload_without_the_admin_token_says_what_to_set(backend, live_server_factory, measured, tmp_path):
    server = live_server_factory(backend)  # a fresh server: it lacks the ops, whatever other tests uploaded
    _, results = measured
    env = {"PROFILER_STATE_DIR": str(tmp_path / "state"), "PROFILER_ENROLL_TOKEN": server.enroll_token}
    result = run("device-agent", "upload", str(results), "--server", server.url, "--name", "lab-cpu", env=env)
    assert_one_line_error(result, "needs the admin token", "PROFILER_ADMIN_TOKEN")


def test_upload_without_the_ops_folder_names_the_command_to_run(live_server, measured, tmp_path, unique_name):
    ops, results = measured
    (ops / "ops.jsonl").rename(tmp_path / "elsewhere.jsonl")  # results carried to a machine without ops/
    env = {"PROFILER_STATE_DIR": str(tmp_path / "state"), "PROFILER_ENROLL_TOKEN": live_server.enroll_token,
           "PROFILER_ADMIN_TOKEN": live_server.admin_token}
    name = unique_name("lab")
    result = run("device-agent", "upload", str(results), "--server", live_server.url, "--name", name, env=env)
    assert_one_line_error(result, "the server has no op", f"device-agent upload {results} --ops DIR/ops.jsonl")
    # Given --ops, the same upload goes through.
    (tmp_path / "elsewhere.jsonl").rename(ops / "ops.jsonl")
    given = run("device-agent", "upload", str(results), "--server", live_server.url, "--name", name,
                "--ops", str(ops / "ops.jsonl"), env=env)
    assert given.returncode == 0 and "accepted" in given.stdout, given.stderr
