"""`device-agent` stops with one line on an error that retrying cannot fix (a URL without scheme, a server nobody
listens on for a one-off run, a refused token), and Ctrl-C ends a run quietly with exit 130. Real server."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler_server.local_server import free_port
from tests.cli_process import assert_one_line_error, error_lines, interrupt_when, run, start


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"PROFILER_STATE_DIR": str(tmp_path / "state"), "PROFILER_ENROLL_TOKEN": ""}


def test_a_server_url_without_its_scheme_stops_a_run_at_once(env):
    result = run("device-agent", "run", "--server", "127.0.0.1:8000", "--name", "x", "--once", env=env)
    assert_one_line_error(result, "--server '127.0.0.1:8000'", "http://")


def test_a_one_off_run_against_a_server_nobody_listens_on_stops(env):
    url = f"http://127.0.0.1:{free_port()}"
    result = run("device-agent", "run", "--server", url, "--name", "x", "--once", "--enroll-token", "e" * 20,
                 env=env)
    assert_one_line_error(result, f"cannot reach {url}: ", "Connection refused")


def test_upload_to_a_server_nobody_listens_on_is_one_line(tmp_path, env):
    results = tmp_path / "results.jsonl"
    results.write_text('{"format_version": 1, "result_id": "r", "key": "k", "onnx_sha256": "0", "samples_us": [1.0],'
                       ' "runtime": {"extra": {}}}\n')
    url = f"http://127.0.0.1:{free_port()}"
    result = run("device-agent", "upload", str(results), "--server", url, "--name", "x", "--enroll-token", "e" * 20,
                 env=env)
    assert_one_line_error(result, f"cannot reach {url}: ")


@pytest.mark.parametrize(
    ("token", "expected"),
    [("not-the-enroll-token", "registration refused: 401: unknown token"), (None, "registration refused: 403:")],
)
def test_a_refused_registration_stops_the_agent(live_server, unique_name, env, token, expected):
    given = token or live_server.admin_token  # the admin token may not register devices
    result = run("device-agent", "run", "--server", live_server.url, "--name", unique_name("refused"),
                 "--enroll-token", given, env=env)
    assert_one_line_error(result, expected)


def test_ctrl_c_stops_a_run_after_posting_with_exit_130(live_server, unique_name, env):
    name = unique_name("interrupted")
    process = start("device-agent", "run", "--server", live_server.url, "--name", name, "--idle-poll-s", "0.2",
                    "--enroll-token", live_server.enroll_token, env=env)
    stdout, stderr = interrupt_when(process, f"registered {name}")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "SIGINT: finishing the current op" in stderr and error_lines(stderr)[-1] == "device-agent: interrupted"
    assert "measured 0, failed 0, posted 0" in stdout
