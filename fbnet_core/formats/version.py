"""The `format_version` field every file format carries, and the one rule for reading it.

A reader takes a file whose version it knows, and refuses any other with one line that says so. Files written
before the field existed have no `format_version`: they are read as version 1, the format they already have.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fbnet_core.errors import FormatError, UnknownFormatVersionError

FORMAT_VERSION_FIELD = "format_version"
# What a file without the field is: every format's version 1 is the shape its files had before the field.
UNVERSIONED = 1


def versioned(body: Mapping[str, Any], version: int) -> dict[str, Any]:
    """`body` with its format's version first (the first thing a reader, or a person, looks at)."""
    return {FORMAT_VERSION_FIELD: version, **{key: value for key, value in body.items() if key != FORMAT_VERSION_FIELD}}


def check_version(body: Mapping[str, Any], version: int, what: str) -> dict[str, Any]:
    """`body` without its `format_version`, which must be `version`; `what` names the file (and line) in the error."""
    found = body.get(FORMAT_VERSION_FIELD, UNVERSIONED)
    if found != version or isinstance(found, bool):
        raise UnknownFormatVersionError(
            f"{what}: format_version {found!r} is not one this fbnet-lut reads (it reads version {version}); "
            "write the file again with this version, or upgrade fbnet-lut"
        )
    return {key: value for key, value in body.items() if key != FORMAT_VERSION_FIELD}


def read_json_file(path: Path, what: str, error: type[FormatError] = FormatError) -> Any:
    """The JSON value in `path`; a file that cannot be read or parsed is `error`, naming it as `what`."""
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise error(f"cannot read {what} {path}: {exc}") from exc
