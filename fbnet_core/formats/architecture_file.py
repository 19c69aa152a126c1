"""Architecture files: one network of the space, as `dnas search` writes them and `dnas train/export --arch` read them.

{"format_version": 1, "blocks": [22 block names], "space": {SpaceParams fields}}, plus, from a search, "arch" (the
compact string form) and "predicted_latency_ms" (the LUT's sum). Without "space" the file means the ImageNet
FBNet space's defaults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from fbnet_core.arch import Architecture
from fbnet_core.errors import InvalidArchitectureError, InvalidSpaceError
from fbnet_core.formats.version import check_version, versioned
from fbnet_core.space import SpaceParams, space_params_from_dict

ARCHITECTURE_FILE_VERSION = 1


@dataclass(frozen=True)
class ArchitectureFile:
    arch: Architecture
    params: SpaceParams
    predicted_latency_ms: float | None = None


def save_architecture(
    path: Path, arch: Architecture, params: SpaceParams, predicted_latency_ms: float | None = None
) -> None:
    body = arch.to_dict(params)
    if predicted_latency_ms is not None:
        body.update(arch=arch.to_string(), predicted_latency_ms=predicted_latency_ms)
    path.write_text(json.dumps(versioned(body, ARCHITECTURE_FILE_VERSION), indent=2) + "\n")


def load_architecture(path: Path) -> ArchitectureFile:
    """Read an architecture file; the space parameters default to the ImageNet FBNet space when absent."""
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidArchitectureError(f"cannot read architecture file {path}: {exc}") from exc
    if isinstance(data, dict):
        data = check_version(data, ARCHITECTURE_FILE_VERSION, str(path))
    arch = Architecture.from_dict(data)
    try:
        params = space_params_from_dict(data.get("space", {}))
    except InvalidSpaceError as exc:
        raise InvalidArchitectureError(f"{path}: {exc}") from exc
    predicted = data.get("predicted_latency_ms")
    return ArchitectureFile(arch, params, float(predicted) if isinstance(predicted, int | float) else None)
