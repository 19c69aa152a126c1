"""Results waiting for the server: written to disk (fsynced) before any post, removed only once acknowledged.

An agent killed at any point loses no measured result: on restart it posts what the spool still holds (the
server stores each result_id once, so a result posted twice is counted as a duplicate, not stored twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fbnet_core.formats.jsonl import append_records, read_records, rewrite_records


class Spool:
    def __init__(self, path: Path) -> None:
        self._path = path

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        append_records(self._path, records)

    def pending(self) -> list[dict[str, Any]]:
        return read_records(self._path)

    def acknowledge(self, result_ids: set[str]) -> None:
        remaining = [record for record in self.pending() if record["result_id"] not in result_ids]
        if remaining:
            rewrite_records(self._path, remaining)
        else:
            self._path.unlink(missing_ok=True)
