"""Every `dnas` error a user can run into is one line on stderr with a non-zero exit, never a traceback; Ctrl-C
is one line and exit 130. Each command runs as a user types it (a child process), against a real server."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from profiler_server.local_server import free_port
from tests.cli_process import assert_one_line_error, error_lines, interrupt_when, run, start

SPACE_ARGS = ["--resolution", "16", "--width", "0.25", "--head-channels", "64", "--num-classes", "10", "--small-input"]


@pytest.fixture
def no_dev_tokens(tmp_path: Path) -> dict[str, str]:
    """An environment without dev tokens, admin token or server URL: only what the command line gives."""
    return {"PROFILER_STATE_DIR": str(tmp_path / "state"), "PROFILER_ADMIN_TOKEN": "", "PROFILER_URL": "",
            "FBNET_LUT_CACHE": str(tmp_path / "cache")}


@pytest.mark.parametrize("command", [["lut", "pull", "-o", "x.json"], ["lut", "request", *SPACE_ARGS]])
def test_a_server_nobody_listens_on_is_cannot_reach_not_a_missing_token(command, no_dev_tokens):
    url = f"http://127.0.0.1:{free_port()}"
    result = run("dnas", *command, "--device", "d", "--server", url, env=no_dev_tokens)
    assert_one_line_error(result, f"cannot reach {url}: ", "Connection refused")


def test_a_server_url_without_its_scheme_is_refused_at_once(no_dev_tokens):
    result = run("dnas", "lut", "pull", "--device", "d", "-o", "x.json", "--server", "127.0.0.1:8000",
                 "--token", "t", env=no_dev_tokens)
    assert_one_line_error(result, "--server '127.0.0.1:8000'", "http://")


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (["--resolution", "0"], "resolution must be a positive integer, got 0"),
        (["--resolution", "-32"], "resolution must be a positive integer, got -32"),
        (["--width", "-1"], "width must be a positive number, got -1.0"),
        (["--head-channels", "0"], "head_channels must be at least 1"),
        (["--resolution", "20"], "resolution 20 is not a multiple of 8"),
    ],
)
def test_an_impossible_space_is_one_line_before_anything_loads(space, message, tmp_path, no_dev_tokens):
    lut = tmp_path / "no-such-lut.json"  # never read: the space is refused first
    result = run("dnas", "search", "--lut", str(lut), *space, "--out", str(tmp_path / "o"), env=no_dev_tokens)
    assert_one_line_error(result, message)


def test_an_impossible_space_in_lut_request_is_one_line(no_dev_tokens):
    result = run("dnas", "lut", "request", "--device", "d", "--resolution", "0", env=no_dev_tokens)
    assert_one_line_error(result, "resolution must be a positive integer, got 0")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host can train on CUDA")
@pytest.mark.parametrize("command", ["train", "search"])
def test_cuda_without_cuda_is_one_line(command, tmp_path, no_dev_tokens):
    expected = "CUDA is not available in this torch build" if torch.version.cuda is None else "no GPU is visible"
    target = ["--arch", str(tmp_path / "arch.json")] if command == "train" else [
        "--lut", str(tmp_path / "lut.json"), "--out", str(tmp_path / "o")]
    result = run("dnas", command, *target, "--torch-device", "cuda", env=no_dev_tokens)
    assert_one_line_error(result, f"--torch-device cuda: {expected}")


def test_an_unknown_torch_device_is_one_line(tmp_path, no_dev_tokens):
    result = run("dnas", "train", "--arch", str(tmp_path / "arch.json"), "--torch-device", "gpu", env=no_dev_tokens)
    assert_one_line_error(result, "--torch-device 'gpu'")


def test_lut_pull_creates_the_output_folder_and_a_path_under_a_file_is_one_line(live_server, unique_name, tmp_path,
                                                                                 no_dev_tokens):
    device = unique_name("pull")
    with live_server.client(live_server.enroll_token) as enroll:
        enroll.register_device(device, "linux")
    auth = ["--server", live_server.url, "--token", live_server.admin_token]
    target = tmp_path / "missing" / "dir" / "x.json"
    pulled = run("dnas", "lut", "pull", "--device", device, "-o", str(target), *auth, env=no_dev_tokens)
    assert pulled.returncode == 0 and target.is_file(), pulled.stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    result = run("dnas", "lut", "pull", "--device", device, "-o", str(a_file / "x.json"), *auth, env=no_dev_tokens)
    assert_one_line_error(result, str(a_file))


def test_wait_without_an_agent_says_so_and_prints_plain_progress_when_piped(live_server, unique_name,
                                                                             no_dev_tokens):
    device = unique_name("nobody")
    with live_server.client(live_server.enroll_token) as enroll:
        enroll.register_device(device, "linux")
    result = run("dnas", "lut", "request", "--device", device, *SPACE_ARGS, "--server", live_server.url,
                 "--token", live_server.admin_token, "--wait", "--poll-s", "0.3", "--timeout-s", "4",
                 "--agent-silence-s", "1", env=no_dev_tokens)
    lines = error_lines(result.stderr)
    assert "Traceback" not in result.stderr and result.returncode == 2
    assert any(line.startswith("measured 0/") for line in lines), lines  # not a TTY: plain lines, not a bar
    (silence,) = [line for line in lines if line.startswith("no agent has polled")]  # said once, then waits on
    assert f"for device {device} in the last" in silence
    assert f"start one with: device-agent run --server {live_server.url} --device {device}" in silence
    assert lines[-1].startswith("dnas: timed out; ")


def test_an_unregistered_device_is_one_line_naming_the_agent_to_start(live_server, unique_name, no_dev_tokens):
    device = unique_name("unregistered")
    result = run("dnas", "lut", "request", "--device", device, *SPACE_ARGS, "--server", live_server.url,
                 "--token", live_server.admin_token, env=no_dev_tokens)
    assert_one_line_error(result, f"unknown device {device!r}: no agent has registered it",
                          f"device-agent run --server {live_server.url} --device {device}")


def test_wait_waits_for_an_agent_that_has_not_registered_the_device_yet(live_server, unique_name, no_dev_tokens):
    """The README's path: the agent is started in the background and `lut request --wait` typed at once."""
    device = unique_name("late")
    process = start("dnas", "lut", "request", "--device", device, *SPACE_ARGS, "--server", live_server.url,
                    "--token", live_server.admin_token, "--wait", "--poll-s", "0.3", "--timeout-s", "60",
                    env=no_dev_tokens)
    assert process.stderr is not None and process.stdout is not None
    waiting = process.stderr.readline()
    assert waiting.startswith(f"{device}: not registered yet; waiting for its agent"), waiting
    with live_server.client(live_server.enroll_token) as enroll:
        enroll.register_device(device, "linux")  # as its agent does when it starts
    queued = process.stdout.readline()  # then the request goes on as usual
    assert f"{device}: space " in queued and "queued" in queued, queued
    process.kill()
    process.wait()


def test_ctrl_c_during_wait_is_one_line_and_exit_130(live_server, unique_name, no_dev_tokens):
    device = unique_name("waiting")
    with live_server.client(live_server.enroll_token) as enroll:
        enroll.register_device(device, "linux")
    process = start("dnas", "lut", "request", "--device", device, *SPACE_ARGS, "--server", live_server.url,
                    "--token", live_server.admin_token, "--wait", "--poll-s", "0.3", env=no_dev_tokens)
    _, stderr = interrupt_when(process, "measured 0/")
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and error_lines(stderr)[-1] == "dnas: interrupted"
