"""Append-only JSON Lines files that survive a crash: each record is fsynced before the call returns.

A crash can leave at most one partial last line; readers skip it (that record was never acknowledged, so
nothing that was reported as saved is lost). Rewrites go through a temporary file and an atomic rename.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fbnet_core.errors import FormatError


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_torn_tail(path: Path) -> None:
    """Cut a partial last line (a crash mid-append) so the next record starts on a line of its own."""
    with path.open("rb+") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return
        handle.seek(0)
        content = handle.read()
        handle.truncate(content.rfind(b"\n") + 1)


def append_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    lines = "".join(json.dumps(record, separators=(",", ":")) + "\n" for record in records)
    if not lines:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    if not created:
        _drop_torn_tail(path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(lines)
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        _fsync_dir(path.parent)


def read_records(path: Path) -> list[dict[str, Any]]:
    """All complete records; a torn last line (crash mid-append) is ignored, a torn middle line is an error."""
    if not path.exists():
        return []
    records: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if number == len(lines) and not line.endswith("\n"):
                break
            raise FormatError(f"{path}:{number}: not a JSON object ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise FormatError(f"{path}:{number}: not a JSON object")
        records.append(record)
    return records


def rewrite_records(path: Path, records: Iterable[dict[str, Any]]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)
