"""The agent's side of ops.jsonl (fbnet_core/formats/ops_manifest.py): the ops to measure, and their files' checks."""

from __future__ import annotations

import hashlib
from pathlib import Path

from device_agents.backends.base import OpInput
from device_agents.errors import ManifestError, OpFailedError
from fbnet_core.formats.ops_manifest import read_manifest


def read_ops(manifest: Path) -> list[OpInput]:
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no such file (write one with `dnas export-ops --out DIR`)")
    return [
        OpInput(key=entry.key, onnx_path=manifest.parent / entry.file, onnx_sha256=entry.sha256, spec=entry.spec)
        for entry in read_manifest(manifest)
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_onnx(op: OpInput) -> None:
    """The file must be the one the key names: a stale or damaged copy would put a wrong figure in the LUT."""
    try:
        actual = sha256_of(op.onnx_path)
    except OSError as exc:
        raise OpFailedError(f"cannot read {op.onnx_path}: {exc.strerror or exc}") from exc
    if actual != op.onnx_sha256:
        raise OpFailedError(f"{op.onnx_path.name}: sha256 {actual[:12]}... does not match {op.onnx_sha256[:12]}...")
