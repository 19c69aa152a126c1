"""The path a user types, command by command, against a real server and a real `device-agent run` process
(onnxruntime on this CPU): `dnas lut request --wait` -> `dnas search` (default loss) -> `dnas validate` ->
`dnas train` -> `dnas export`, each given only the same space options, or `--space NAME`. No extra flag is
needed for the LUT, the data set and the space to agree.

Each command runs as the installed entry point in its own process, the server URL and admin token in the
environment (PROFILER_URL, PROFILER_ADMIN_TOKEN) as a user's shell would hold them. Only what keeps the run
short is added (one epoch, a few hundred samples, one torch thread); no option that names the space.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime
import pytest

BIN = Path(sys.executable).parent
# Speed only: one epoch on 160 digits, one path per step, one pass over the theta split, one torch thread.
SHORT_SEARCH = [
    "--epochs", "1", "--batch-size", "16", "--max-train-samples", "160", "--theta-passes", "1",
    "--mode", "single_path", "--samples", "1", "--threads", "1",
]  # fmt: skip
SHORT_TRAIN = ["--epochs", "1", "--threads", "1"]


class User:
    """Runs the CLIs as a user's shell would: their own processes, the server in the environment."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.env = env
        self.cwd = cwd

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / tool), *args], capture_output=True, text=True, env=self.env, cwd=self.cwd, timeout=600
        )

    def ok(self, *args: str) -> str:
        result = self.run("dnas", *args)
        assert result.returncode == 0, f"dnas {' '.join(args)}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    def fails(self, *args: str) -> str:
        """The one line a failing command prints (exit 2, no traceback)."""
        result = self.run("dnas", *args)
        assert result.returncode == 2, f"dnas {' '.join(args)}\n{result.stdout}\n{result.stderr}"
        assert "Traceback" not in result.stderr
        (line,) = result.stderr.strip().splitlines()
        return line


@pytest.fixture
def user(live_server_factory, tmp_path: Path) -> Iterator[tuple[User, str]]:
    """A fresh server, a `device-agent run` process for device `cpu-user` polling it, and the user's shell."""
    server = live_server_factory("sqlite")
    device = "cpu-user"
    env = {
        **os.environ,
        "PROFILER_URL": server.url,
        "PROFILER_ADMIN_TOKEN": server.admin_token,
        "PROFILER_ENROLL_TOKEN": server.enroll_token,
        "PROFILER_STATE_DIR": str(tmp_path / "agent"),
        "FBNET_LUT_CACHE": str(tmp_path / "lut-cache"),
        "COLUMNS": "100",
    }
    log = (tmp_path / "agent.log").open("w")
    agent = subprocess.Popen(
        [
            str(BIN / "device-agent"),
            "run",
            "--device",
            device,
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
        stderr=log,
    )
    admin = server.client(server.admin_token)
    deadline = time.monotonic() + 60
    while device not in {registered.name for registered in admin.list_devices()}:
        assert agent.poll() is None, (tmp_path / "agent.log").read_text()
        assert time.monotonic() < deadline, "the agent did not register"
        time.sleep(0.1)
    yield User(env, tmp_path), device
    agent.send_signal(signal.SIGTERM)
    agent.wait(timeout=30)
    log.close()


def _onnx_logits(path: Path, resolution: int) -> tuple[int, ...]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"input": np.zeros((1, 3, resolution, resolution), dtype=np.float32)})
    return logits.shape


@pytest.mark.parametrize(
    ("resolution", "validated"),
    [
        (32, ["random_000", "random_001"]),  # a small-input space: no ImageNet zoo
        # ImageNet strides (width 0.25 keeps it fast): the zoo's FBNets, rebuilt in this narrow 10-class space,
        # each predicted from the space's own LUT (no width-1.0 block needed); MobileNetV2 has no place in it.
        (224, ["fbnet_a", "fbnet_b", "fbnet_c", "random_000", "random_001"]),
    ],
)
def test_the_flags_alone_carry_the_space_from_lut_request_to_export(
    user, tmp_path: Path, resolution: int, validated: list[str]
) -> None:
    shell, device = user
    space = ["--resolution", str(resolution), "--width", "0.25", "--head-channels", "64"]
    small_input = resolution < 100
    name = f"fbnet-r{resolution}-w0.25-c10-h64" + ("-small" if small_input else "")
    requested = shell.ok("lut", "request", "--device", device, *space, "--wait")
    assert f"LUT complete for space {name}" in requested

    shell.ok("search", "--device", device, *space, *SHORT_SEARCH, "--out", "s")
    arch = tmp_path / "s" / "arch_argmax.json"
    searched = json.loads(arch.read_text())
    assert searched["space"] == {
        "resolution": resolution, "width": 0.25, "num_classes": 10, "head_channels": 64, "small_input": small_input
    }  # fmt: skip

    shell.ok("validate", "--device", device, *space, "--n", "2", "--out", "v")
    document = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert document["space"] == name
    assert document["space_params"] == searched["space"]
    points = {point["name"]: point for point in document["points"]}
    assert sorted(points) == validated
    assert all(point["predicted_us"] is not None for point in points.values())

    shell.ok("train", "--arch", str(arch), *space, *SHORT_TRAIN, "--out", "t")
    shell.ok("export", "--arch", str(arch), *space, "--weights", "t/model.pt", "--out", "m.onnx")
    assert _onnx_logits(tmp_path / "m.onnx", resolution) == (1, 10)


def test_a_named_space_travels_by_name_at_16(user, tmp_path: Path) -> None:
    shell, device = user
    space = ["--resolution", "16", "--width", "0.25", "--head-channels", "64"]
    shell.ok("lut", "request", "--device", device, "--space", "tiny16", *space, "--wait")

    shell.ok("search", "--device", device, "--space", "tiny16", *SHORT_SEARCH, "--out", "s")
    arch = tmp_path / "s" / "arch_argmax.json"
    shell.ok("validate", "--device", device, "--space", "tiny16", "--n", "2", "--out", "v")
    document = json.loads((tmp_path / "v" / "validation.json").read_text())
    assert document["space"] == "tiny16" and document["space_params"]["resolution"] == 16
    shell.ok("train", "--arch", str(arch), "--space", "tiny16", *SHORT_TRAIN, "--out", "t")
    shell.ok("export", "--arch", str(arch), "--space", "tiny16", "--weights", "t/model.pt", "--out", "m.onnx")
    assert _onnx_logits(tmp_path / "m.onnx", 16) == (1, 10)

    # A flag that contradicts the named space, and a name the server does not know: one line each.
    line = shell.fails("search", "--device", device, "--space", "tiny16", "--width", "0.5", "--out", "x")
    assert "--space tiny16 has width=0.25, but --width 0.5 was given" in line
    line = shell.fails("validate", "--device", device, "--space", "nosuch", "--out", "x")
    assert "the server has no space 'nosuch'" in line
    # An architecture searched in another space is refused by name of the field.
    line = shell.fails("export", "--arch", str(arch), "--resolution", "32", "--out", "x.onnx")
    assert "was searched for resolution=16" in line

    # A LUT measured for 1000 classes does not fit a search on digits (10): one line names the field.
    shell.ok("lut", "request", "--device", device, *space, "--num-classes", "1000", "--wait")
    shell.ok("lut", "pull", "--device", device, "--out", "lut.json")
    lut = json.loads((tmp_path / "lut.json").read_text())
    del lut["entries"]["poolfc.c64.o10.h2w2"]  # as if only the 1000-class space had been requested
    (tmp_path / "lut1000.json").write_text(json.dumps(lut))
    line = shell.fails("search", "--lut", "lut1000.json", *space, *SHORT_SEARCH, "--out", "x")
    assert "the LUT was measured for num_classes=1000, this space needs 10" in line
    assert "1 LUT entries missing: poolfc.c64.o10.h2w2" in line
    line = shell.fails(
        "search", "--lut", "lut.json", *space, "--num-classes", "1000", *SHORT_SEARCH, "--out", "x"
    )
    assert "the space has num_classes=1000, the data set digits has 10" in line
