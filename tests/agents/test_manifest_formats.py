"""ops.jsonl for a backend of another format: each op's file in that format, or a one-line error naming the command."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from device_agents.errors import ManifestError
from device_agents.manifest import read_ops
from fbnet_core.formats.ops_manifest import ManifestEntry, write_manifest


def test_a_pte_backend_reads_the_pte_files_the_manifest_names(tmp_path: Path):
    (tmp_path / "a.onnx").write_bytes(b"onnx")
    (tmp_path / "a.pte").write_bytes(b"pte")
    sha = {name: hashlib.sha256((tmp_path / name).read_bytes()).hexdigest() for name in ("a.onnx", "a.pte")}
    write_manifest(tmp_path / "ops.jsonl", [ManifestEntry("a", {}, "a.onnx", sha["a.onnx"], {"pte": ("a.pte", sha["a.pte"])})])
    (op,) = read_ops(tmp_path / "ops.jsonl", "pte")
    assert (op.onnx_path, op.onnx_sha256) == (tmp_path / "a.onnx", sha["a.onnx"])
    assert (op.model_path, op.model_sha256) == (tmp_path / "a.pte", sha["a.pte"])
    (onnx_only,) = read_ops(tmp_path / "ops.jsonl")
    assert onnx_only.model_path is None


def test_a_manifest_without_the_backends_format_says_how_to_write_it(tmp_path: Path):
    write_manifest(tmp_path / "ops.jsonl", [ManifestEntry("a", {}, "a.onnx", "0" * 64)])
    with pytest.raises(ManifestError, match=r"op a has no \.tflite file; write them with `dnas export-ops --format tflite`"):
        read_ops(tmp_path / "ops.jsonl", "tflite")
