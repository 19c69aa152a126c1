"""Architecture files: one network of the space, as `dnas search` writes them and `dnas train/export --arch` read them.

{"format_version": 1, "blocks": [22 block names], "space": {SpaceParams fields}}, plus, from a search, "arch" (the
compact string form) and "predicted_latency_ms" (the LUT's prediction), and from a search with a latency budget
"budget": {"target_ms", "landed_pct", "in_budget_window", "log_probability"}. Without "space" (a hand-written list
of blocks) the file has the ImageNet FBNet space's defaults, and commands let their space options say otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    budget: dict[str, Any] | None = None
    space_given: bool = True  # False: the file names no space, and `params` are the defaults


def save_architecture(
    path: Path,
    arch: Architecture,
    params: SpaceParams,
    predicted_latency_ms: float | None = None,
    budget: Mapping[str, Any] | None = None,
) -> None:
    body = arch.to_dict(params)
    if predicted_latency_ms is not None:
        body.update(arch=arch.to_string(), predicted_latency_ms=predicted_latency_ms)
    if budget is not None:
        body["budget"] = dict(budget)
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
    budget = data.get("budget")
    return ArchitectureFile(
        arch,
        params,
        float(predicted) if isinstance(predicted, int | float) else None,
        budget if isinstance(budget, dict) else None,
        space_given="space" in data,
    )
