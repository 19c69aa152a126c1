"""The torch backend on CPU, rebuilding real ops from their specs. (Its CUDA path needs a GPU: none here.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from device_agents.backends.base import OpInput
from device_agents.errors import BackendUnavailableError
from device_agents.manifest import sha256_of
from device_agents.measure import measure_op

BLOCK_SPEC = {"kind": "block", "batch": 1, "dtype": "float32", "input_shape": [1, 16, 8, 8],
              "block": "k3_e3", "out_channels": 16, "stride": 1}


@pytest.fixture
def onnx_file(tmp_path: Path, conv_onnx) -> tuple[Path, str]:
    return conv_onnx  # the torch backend rebuilds from the spec; the file only proves which op was asked


def test_torch_cpu_measures_a_block_rebuilt_from_its_spec(onnx_file, fast_policy):
    from device_agents.backends.torch import TorchBackend

    path, _ = onnx_file
    backend = TorchBackend(device="cpu", threads=1)
    record = measure_op(backend, OpInput("blk.k3_e3", path, sha256_of(path), BLOCK_SPEC), fast_policy)
    assert not record.is_failure, record
    assert len(record.samples_us) >= fast_policy.min_runs and min(record.samples_us) > 0
    runtime = record.runtime
    assert runtime["runtime"] == "torch" and runtime["runtime_version"] == torch.__version__
    assert runtime["execution_provider"] == "cpu" and runtime["graph_optimization"] == "eager"


def test_torch_spec_that_cannot_be_built_is_a_failed_task(onnx_file, fast_policy):
    from device_agents.backends.torch import TorchBackend

    path, _ = onnx_file
    bad = {**BLOCK_SPEC, "block": "k7_e9"}
    record = measure_op(TorchBackend(), OpInput("blk.bad", path, sha256_of(path), bad), fast_policy)
    assert record.is_failure and "cannot rebuild blk.bad" in record.error


def test_torch_cuda_is_refused_clearly_where_there_is_no_gpu():
    from device_agents.backends.torch import TorchBackend

    if torch.cuda.is_available():  # on a GPU host the same call must succeed instead
        assert TorchBackend(device="cuda").runtime_info().extra["timer"] == "cuda_events"
        return
    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        TorchBackend(device="cuda")
    with pytest.raises(BackendUnavailableError, match="CUDA graphs need a CUDA device"):
        TorchBackend(device="cpu", cuda_graphs=True)
