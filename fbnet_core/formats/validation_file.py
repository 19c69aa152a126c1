"""validation.json: one `dnas validate` run - its settings, every network measured and the fidelity figures.

{"format_version": 1, "device", "space", "space_params", "label", "resolution", "seed", "rounds", "statistic",
"points": [...], "summary": {"raw", "calibration", "raw_holdout", "calibrated_holdout", "raw_by_kind", "plain_sum",
"plain_sum_by_kind"}}; a point is a network with its predicted latency (and the plain sum of medians,
`predicted_raw_us`) and its measured latency (docs/validation.md), each summary a `FidelitySummary.to_json()`.
Fields a file lacks (written before they existed) are read as absent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fbnet_core.errors import FormatError
from fbnet_core.formats.version import check_version, read_json_file, versioned

VALIDATION_FILE_NAME = "validation.json"
VALIDATION_FILE_VERSION = 1


def write_validation_file(path: Path, document: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(versioned(document, VALIDATION_FILE_VERSION), indent=1) + "\n")


def read_validation_file(path: Path) -> dict[str, Any]:
    """The run's document (without its `format_version`)."""
    document = read_json_file(path, "validation run")
    if not isinstance(document, dict) or not isinstance(document.get("points"), list):
        raise FormatError(f"{path} is not a validation run: expected a JSON object with a 'points' list")
    return check_version(document, VALIDATION_FILE_VERSION, str(path))
