"""`dnas validate` end to end: a real server, a real device-agent process, real ONNX files and onnxruntime.

A tiny resolution (32x32) and short per-op timing keep it quick; the figures are not the point here, the
plumbing is: every number in validation.json must be what the server's LUT says.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time

import pytest

from fbnet_core.lut_costs import LutCosts
from fbnet_core.network_fit import fit_network_costs
from fbnet_core.predict import predict_latency_us
from fbnet_core.space import build_space
from search_client.validation.validate import validation_models

RESOLUTION = 32
RANDOM_NETWORKS = 4
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _dnas(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from search_client.commands.cli import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)


@pytest.fixture
def agent(live_server_factory, tmp_path):
    """A live server and a `device-agent run` process for device `cpu-validate` that polls it until stopped."""
    server = live_server_factory("sqlite")
    name = "cpu-validate"
    env = {
        **os.environ,
        "PROFILER_ENROLL_TOKEN": server.enroll_token,
        "PROFILER_STATE_DIR": str(tmp_path / "agent"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "device_agents",
            "run",
            "--server",
            server.url,
            "--name",
            name,
            "--threads",
            "1",
            "--max-s",
            "0.05",
            "--warmup-max-s",
            "0.02",
            "--idle-poll-s",
            "0.2",
        ],  # fmt: skip
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "agent.log").open("w"),
    )
    admin = server.client(server.admin_token)
    deadline = time.monotonic() + 60
    while name not in {device.name for device in admin.list_devices()}:
        assert process.poll() is None, (tmp_path / "agent.log").read_text()
        assert time.monotonic() < deadline, "the agent did not register"
        time.sleep(0.1)
    yield server, name
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def test_validate_measures_the_networks_and_reports_what_the_lut_says(agent, tmp_path):
    server, device = agent
    out = tmp_path / "out"
    result = _dnas(
        "validate", "--server", server.url, "--token", server.admin_token, "--device", device,
        "--n", str(RANDOM_NETWORKS), "--resolution", str(RESOLUTION), "--imagenet-strides", "--num-classes", "1000",
        "--calibrate", "--seed", "3", "--poll-s", "0.3", "--timeout-s", "180", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "MAPE" in result.stdout and "Kendall tau" in result.stdout
    assert "calibrated, held out" in result.stdout
    document = json.loads((out / "validation.json").read_text())
    assert (out / "scatter.png").read_bytes().startswith(PNG_MAGIC)
    assert document["device"] == device and document["resolution"] == RESOLUTION
    assert document["space"] == "fbnet-r32-w1.0-c1000-h1984"  # the space's name, its parameters beside it
    assert document["space_params"]["num_classes"] == 1000 and document["space_params"]["small_input"] is False

    # Recompute every figure from the server's LUT: the CLI must have reported exactly that.
    models = validation_models(RANDOM_NETWORKS, seed=3, resolution=RESOLUTION)
    unfitted = LutCosts.from_entries(server.client(server.admin_token).get_lut(device).entries)
    assert unfitted.overhead_once  # the agent measured the per-invocation overhead of every op, by default
    # The five whole networks that fit the prediction were measured with the set, never as points of it.
    lut = fit_network_costs(unfitted, build_space(models[-1].params))
    assert "fitted on 5 whole networks" in lut.fit_source
    assert lut.summary_line() in result.stdout
    points = {point["name"]: point for point in document["points"]}
    assert list(points) == [model.name for model in models]
    for model in models:
        point = points[model.name]
        assert point["key"] == model.network.key
        assert point["measured_us"] == pytest.approx(lut.median_us[model.network.key])
        if model.arch is None:
            assert point["predicted_us"] is None and point["split"] is None
        else:
            space = build_space(model.params)
            assert point["predicted_us"] == pytest.approx(predict_latency_us(lut, model.arch, space))
            assert point["predicted_raw_us"] == pytest.approx(
                predict_latency_us(lut.raw(), model.arch, space)
            )
            # the fixed cost counted once, not per op (the fitted scale may put the prediction above either)
            assert predict_latency_us(unfitted, model.arch, space) < point["predicted_raw_us"]
    fit = {name for name, point in points.items() if point["split"] == "fit"}
    holdout = {name for name, point in points.items() if point["split"] == "holdout"}
    assert len(fit) == RANDOM_NETWORKS // 2 and not fit & holdout
    assert all(name.startswith("random_") for name in fit)
    summary = document["summary"]
    assert summary["raw"]["count"] == len(models) - 1  # MobileNetV2 has no prediction
    assert summary["calibration"]["fit_count"] == len(fit)
    assert summary["calibrated_holdout"]["count"] == len(holdout)

    # The server kept the run under the space and computed the same raw figures itself.
    assert "stored on the server as validation run" in result.stdout
    (stored,) = server.client(server.admin_token).get_validations(device)
    assert stored["space"] == "fbnet-r32-w1.0-c1000-h1984" and stored["label"] == document["label"]
    assert {point["name"] for point in stored["points"]} == {
        n for n, p in points.items() if p["predicted_us"]
    }
    assert stored["summary"]["all"]["n"] == summary["raw"]["count"]
    assert stored["summary"]["all"]["mape_pct"] == pytest.approx(summary["raw"]["mape_pct"])
    assert stored["summary"]["all"]["kendall_tau"] == pytest.approx(summary["raw"]["kendall_tau"])
    assert stored["summary"]["holdout"]["n"] == len(holdout)
    # The calibration is stored with its held-out figures (the server cannot recompute a per-kind one).
    assert stored["calibration"] == {
        **summary["calibration"],
        "calibrated_holdout": summary["calibrated_holdout"],
    }


def test_validate_in_rounds_takes_each_networks_median_over_new_results(agent, tmp_path):
    server, device = agent
    out = tmp_path / "out"
    result = _dnas(
        "validate", "--server", server.url, "--token", server.admin_token, "--device", device,
        "--n", "2", "--resolution", str(RESOLUTION), "--rounds", "3", "--no-post",
        "--poll-s", "0.3", "--timeout-s", "180", "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "measured in 3 rounds" in result.stdout
    assert "round 2 of 3" in result.stderr and "round 3 of 3" in result.stderr
    document = json.loads((out / "validation.json").read_text())
    assert document["rounds"] == 3 and document["label"].endswith("-rounds3")
    admin = server.client(server.admin_token)
    entries = admin.get_lut(device).entries
    for point in document["points"]:
        assert len(point["round_us"]) == 3
        assert point["measured_us"] == pytest.approx(statistics.median(point["round_us"]))
        # The LUT holds the last round's result.
        entry = entries[point["key"]]
        assert point["round_us"][-1] == pytest.approx(entry["median_us"])
        assert admin.get_measurement(entry["result_id"])["key"] == point["key"]
        assert len(set(point["round_us"])) > 1  # new measurements, not one result read three times


BAD_INPUTS = [
    (["--device", "no-such-device", "--n", "1", "--resolution", "32"], "unknown device 'no-such-device'"),
    (["--device", "x", "--resolution", "33"], "resolution 33"),
    (["--device", "x", "--n", "2", "--resolution", "32", "--calibrate"], "on each side"),
    (["--device", "x", "--n", "4", "--calibrate", "--fit-fraction", "1.5"], "between 0 and 1"),
]


def test_bad_input_is_a_one_line_error(live_server_factory):
    # In-process (Typer's runner): the same CLI without paying a torch import per case.
    from typer.testing import CliRunner

    from search_client.commands.cli import app

    server = live_server_factory("sqlite")
    for args, message in BAD_INPUTS:
        result = CliRunner().invoke(
            app, ["validate", "--server", server.url, "--token", server.admin_token, *args]
        )
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
