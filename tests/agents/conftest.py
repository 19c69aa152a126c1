"""Fixtures for the agent tests: real ONNX files on disk and a fast timing policy."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.agents.helpers import write_conv_onnx


@pytest.fixture
def conv_onnx(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "conv.onnx"
    return path, write_conv_onnx(path)


@pytest.fixture
def corrupt_onnx(tmp_path: Path) -> tuple[Path, str]:
    """Not a model at all: what a truncated download or a wrong file looks like to the runtime."""
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"this is not an ONNX protobuf \x00\x01\x02")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fast_policy():
    from device_agents.timing import TimingPolicy

    return TimingPolicy(warmup_min_s=0.0, warmup_max_s=0.05, min_runs=10, min_s=0.0, max_s=0.1)
