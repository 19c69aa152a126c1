"""A LUT file: a device's `GET /lut/{device}` body, as `dnas lut pull -o` writes it and `dnas search --lut` reads it.

{"format_version": 1, "server", "device", "lut_version", "etag", "fetched_at", "entries": {key: entry}}; each entry
has the statistics of docs/protocol.md (`median_us` is the one a search sums). The pulled-LUT cache holds the same
files. A saved `GET /lut/{device}` body (no `format_version`, no `server`) is a version-1 LUT file too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fbnet_core.errors import LutFormatError
from fbnet_core.formats.version import check_version, read_json_file, versioned

LUT_FILE_VERSION = 1


def write_lut_file(path: Path, body: Mapping[str, Any]) -> None:
    """Written to a temporary file and renamed into place: a reader never sees half a LUT."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(versioned(body, LUT_FILE_VERSION), indent=1))
    os.replace(temporary, path)


def read_lut_file(path: Path) -> dict[str, Any]:
    """The LUT body (without its `format_version`)."""
    body = read_json_file(path, "LUT file", LutFormatError)
    if not isinstance(body, dict) or not isinstance(body.get("entries"), dict):
        raise LutFormatError(f"{path} is not a LUT: expected a JSON object with an 'entries' object")
    return check_version(body, LUT_FILE_VERSION, str(path))


def median_us_by_key(lut_body: Mapping[str, object]) -> dict[str, float]:
    """The `median_us` of each entry of a LUT body (the statistic the search uses end to end)."""
    entries = lut_body.get("entries")
    if not isinstance(entries, Mapping):
        raise LutFormatError("the LUT has no 'entries' object (expected a GET /lut/{device} body)")
    try:
        return {str(key): float(entry["median_us"]) for key, entry in entries.items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise LutFormatError(f"a LUT entry has no numeric 'median_us': {exc}") from exc
