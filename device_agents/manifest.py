"""ops.jsonl, the agent's offline input (written by `dnas export-ops`; format in docs/contracts.md)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from device_agents.backends.base import OpInput
from device_agents.errors import ManifestError, OpFailedError
from device_agents.jsonl import read_records


def manifest_line(key: str, spec: dict[str, Any], file_name: str, sha256: str) -> str:
    """One line of ops.jsonl: the op's key and spec, its ONNX file (relative to the manifest) and its sha256."""
    return json.dumps({"key": key, "spec": spec, "file": file_name, "sha256": sha256}, sort_keys=True)


def read_ops(manifest: Path) -> list[OpInput]:
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no such file (write one with `dnas export-ops --out DIR`)")
    try:
        records = read_records(manifest)
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read {manifest}: {exc}") from exc
    ops: list[OpInput] = []
    for number, record in enumerate(records, start=1):
        missing = [field for field in ("key", "spec", "file", "sha256") if field not in record]
        if missing:
            raise ManifestError(f"{manifest}:{number}: missing field(s) {', '.join(missing)}")
        if not isinstance(record["spec"], dict):
            raise ManifestError(f"{manifest}:{number}: field 'spec' must be a JSON object")
        ops.append(
            OpInput(
                key=str(record["key"]),
                onnx_path=manifest.parent / str(record["file"]),
                onnx_sha256=str(record["sha256"]),
                spec=record["spec"],
            )
        )
    return ops


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
