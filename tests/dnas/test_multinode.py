"""Two "nodes" on this machine: two `torchrun --nnodes 2` launches of a real `dnas search`, joined over TCP through
--master-addr/--master-port, give the same search as one `torchrun --nproc-per-node 2` launch (same seed, same
global batch, gloo on CPU). Rank r runs the same code with the same data shard in both layouts, so they must
agree exactly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from search_client.search.loop import ARGMAX_NAME, CHECKPOINT_NAME, HISTORY_NAME, SAMPLES_DIR
from tests.dnas.test_distributed import free_port
from tests.dnas.test_search_resume import CONFIG, lut_us

TIMEOUT_S = 240  # about 30 s on an idle 2-core machine; generous for a loaded CI runner
DNAS = str(Path(sys.executable).with_name("dnas"))


def search_args(lut: Path, out: Path) -> list[str]:
    return [
        DNAS, "search", "--lut", str(lut), "--data", CONFIG.data, "--resolution", str(CONFIG.resolution),
        "--width", str(CONFIG.width), "--head-channels", str(CONFIG.head_channels), "--epochs", str(CONFIG.epochs),
        "--batch-size", str(CONFIG.batch_size), "--max-train-samples", str(CONFIG.max_train_samples),
        "--samples", "2", "--threads", "1", "--out", str(out),
    ]  # fmt: skip


def launch(torchrun_args: list[str], lut: Path, out: Path) -> subprocess.Popen[str]:
    # Own session: a failed test kills the launcher and its workers as one process group.
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", *torchrun_args, *search_args(lut, out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )


def wait_all(launches: list[subprocess.Popen[str]]) -> None:
    """Wait for every launch; on a failure or the timeout, kill all of them and show their output."""
    outputs = []
    try:
        for process in launches:
            outputs.append(process.communicate(timeout=TIMEOUT_S)[0])
            assert process.returncode == 0, "\n".join(outputs)
    finally:
        for process in launches:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def model_state(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / CHECKPOINT_NAME, map_location="cpu", weights_only=True)["model"]


def test_two_nodes_equal_one_node_with_two_processes(tmp_path: Path) -> None:
    lut = tmp_path / "lut.json"
    entries = {key: {"median_us": median_us} for key, median_us in lut_us(CONFIG).items()}
    lut.write_text(json.dumps({"device": "d", "entries": entries}))
    nodes = f"--nnodes 2 --nproc-per-node 1 --master-addr 127.0.0.1 --master-port {free_port()}".split()
    one_node = f"--nproc-per-node 2 --master-port {free_port()}".split()
    wait_all(
        [
            launch([*nodes, "--node-rank", "0"], lut, tmp_path / "node0"),
            launch([*nodes, "--node-rank", "1"], lut, tmp_path / "node1"),
            launch(one_node, lut, tmp_path / "single"),
        ]
    )

    # Rank 0 (on node 0) writes the outputs; node 1 writes none.
    assert not (tmp_path / "node1" / CHECKPOINT_NAME).exists()
    multi, single = tmp_path / "node0", tmp_path / "single"
    for name in (HISTORY_NAME, ARGMAX_NAME, f"{SAMPLES_DIR}/arch_00.json", f"{SAMPLES_DIR}/arch_01.json"):
        assert (multi / name).read_text() == (single / name).read_text(), name
    history = json.loads((multi / HISTORY_NAME).read_text())["epochs"]
    assert history[-1]["trained_theta"] and any(value != 0.0 for row in history[-1]["theta"] for value in row)
    multi_state, single_state = model_state(multi), model_state(single)
    assert multi_state.keys() == single_state.keys()
    assert all(torch.equal(multi_state[name], single_state[name]) for name in multi_state)
