"""ops.jsonl: the ops to measure offline, one per line (written by `dnas export-ops`, read by `device-agent profile`).

A line: {"format_version": 1, "key", "spec", "file", "sha256"[, "models"]}; `file` is the op's ONNX file, relative
to the manifest's folder, and `sha256` that file's digest; `models` (optional) names the op compiled for other
runtimes: {format: {"file", "sha256"}} (fbnet_core.model_formats), for agents whose backend loads that format.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fbnet_core.errors import FormatError
from fbnet_core.formats.jsonl import read_records
from fbnet_core.formats.version import check_version, versioned

OPS_MANIFEST_NAME = "ops.jsonl"
OPS_MANIFEST_VERSION = 1
_FIELDS = ("key", "spec", "file", "sha256")


@dataclass(frozen=True)
class ManifestEntry:
    key: str
    spec: dict[str, Any]
    file: str
    sha256: str
    # {format: (file, sha256)} of the op's files in formats other than ONNX.
    models: dict[str, tuple[str, str]] = field(default_factory=dict)


def manifest_line(entry: ManifestEntry) -> str:
    body: dict[str, Any] = {"key": entry.key, "spec": entry.spec, "file": entry.file, "sha256": entry.sha256}
    if entry.models:
        body["models"] = {fmt: {"file": file, "sha256": sha} for fmt, (file, sha) in sorted(entry.models.items())}
    return json.dumps(versioned(body, OPS_MANIFEST_VERSION), sort_keys=True)


def write_manifest(path: Path, entries: Iterable[ManifestEntry]) -> None:
    path.write_text("".join(manifest_line(entry) + "\n" for entry in entries))


def read_manifest(path: Path) -> list[ManifestEntry]:
    """Every entry of the manifest; a line that is not an entry is a FormatError naming it."""
    try:
        records = read_records(path)
    except OSError as exc:
        raise FormatError(f"cannot read {path}: {exc.strerror or exc}") from exc
    entries: list[ManifestEntry] = []
    for number, record in enumerate(records, start=1):
        body = check_version(record, OPS_MANIFEST_VERSION, f"{path}:{number}")
        missing = [field for field in _FIELDS if field not in body]
        if missing:
            raise FormatError(f"{path}:{number}: missing field(s) {', '.join(missing)}")
        if not isinstance(body["spec"], dict):
            raise FormatError(f"{path}:{number}: field 'spec' must be a JSON object")
        entries.append(ManifestEntry(str(body["key"]), body["spec"], str(body["file"]), str(body["sha256"]),
                                     _models(body.get("models", {}), f"{path}:{number}")))
    return entries


def _models(value: object, where: str) -> dict[str, tuple[str, str]]:
    if not isinstance(value, dict) or not all(
        isinstance(item, dict) and isinstance(item.get("file"), str) and isinstance(item.get("sha256"), str)
        for item in value.values()
    ):
        raise FormatError(f'{where}: field \'models\' must map formats to {{"file": ..., "sha256": ...}}')
    return {str(fmt): (item["file"], item["sha256"]) for fmt, item in value.items()}
