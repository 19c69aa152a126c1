"""results.jsonl: measurement records, one per line (written by `device-agent profile`, read by its next run and
by `device-agent upload`). A line is a `MeasurementRecord` as JSON with {"format_version": 1} in front.

Appended record by record and fsynced (see jsonl.py), so a profile that crashes resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from fbnet_core.formats.jsonl import append_records, read_records
from fbnet_core.formats.version import check_version, versioned
from fbnet_core.measurement import MeasurementRecord

RESULTS_VERSION = 1


def append_results(path: Path, records: Iterable[MeasurementRecord]) -> None:
    append_records(path, [versioned(record.to_json(), RESULTS_VERSION) for record in records])


def read_results(path: Path) -> list[MeasurementRecord]:
    """Every record of the file (none when it does not exist yet); a line that is not one is a FormatError."""
    records = []
    for number, line in enumerate(read_records(path), start=1):
        what = f"{path}: record {number}"
        records.append(MeasurementRecord.from_json(check_version(line, RESULTS_VERSION, what), what))
    return records
