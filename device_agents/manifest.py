"""The agent's side of ops.jsonl (fbnet_core/formats/ops_manifest.py): the ops to measure, and their files' checks."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from device_agents.backends.base import OpInput
from device_agents.errors import ManifestError, OpFailedError
from fbnet_core.formats.ops_manifest import read_manifest
from fbnet_core.model_formats import DEFAULT_FORMAT, FORMAT_SUFFIX


def read_ops(manifest: Path, model_format: str = DEFAULT_FORMAT) -> list[OpInput]:
    """The manifest's ops, each with its ONNX file and, for a backend of another format, its file in that one."""
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no such file (write one with `dnas export-ops --out DIR`)")
    ops = []
    for entry in read_manifest(manifest):
        op = OpInput(key=entry.key, onnx_path=manifest.parent / entry.file, onnx_sha256=entry.sha256, spec=entry.spec)
        if model_format != DEFAULT_FORMAT:
            if model_format not in entry.models:
                raise ManifestError(
                    f"{manifest}: op {entry.key} has no {FORMAT_SUFFIX[model_format]} file; write them with "
                    f"`dnas export-ops --format {model_format}`"
                )
            file, sha256 = entry.models[model_format]
            op = replace(op, model_path=manifest.parent / file, model_sha256=sha256)
        ops.append(op)
    return ops


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_files(op: OpInput) -> None:
    """Each file given must be the one the key names: a stale or damaged copy would put a wrong figure in the LUT."""
    for path, expected in ((op.onnx_path, op.onnx_sha256), (op.model_path, op.model_sha256)):
        if path is None or expected is None:
            continue
        try:
            actual = sha256_of(path)
        except OSError as exc:
            raise OpFailedError(f"cannot read {path}: {exc.strerror or exc}") from exc
        if actual != expected:
            raise OpFailedError(f"{path.name}: sha256 {actual[:12]}... does not match {expected[:12]}...")
