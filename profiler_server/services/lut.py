"""The LUT of a device: per op key, statistics of the latest measurement, with provenance.

Reads use a plain Core connection (no ORM session): the 304 path is a third of the cost that way.
Every change to a device's LUT bumps `devices.lut_version` (in the ingest transaction), so the version is the
ETag, and a rendered LUT can be cached in memory per (device, version) safely even with several server replicas:
the version is always known first (services/lut_versions.py says how it stays current without a round trip).
"""

from __future__ import annotations

import csv
import hashlib
import io
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select

from db.models import Device, LutEntry, Measurement, Op
from profiler_server.errors import NotFound

CSV_COLUMNS = (
    "key",
    "median_us",
    "p10_us",
    "p90_us",
    "mean_us",
    "std_us",
    "iqr_us",
    "min_us",
    "max_us",
    "cv",
    "n",
    "unstable",
    "measured_at",
    "result_id",
    "runtime",
    "runtime_version",
    "execution_provider",
    "threads",
    "agent_version",
    "overhead_us",
)


@dataclass(frozen=True, slots=True)
class LutVersion:
    device_id: int
    device_name: str
    version: int


# Keys per IN (...) list: under every backend's bound-parameter limit.
MEDIANS_CHUNK = 5_000
# Built once: constructing a select costs more than running it on the 304 path.
VERSION_QUERY = select(Device.id, Device.lut_version).where(Device.name == bindparam("device_name"))


def lut_version(conn: Connection, device_name: str) -> LutVersion:
    return version_from_row(conn.execute(VERSION_QUERY, {"device_name": device_name}).first(), device_name)


def version_from_row(row: Any, device_name: str) -> LutVersion:
    """A row of VERSION_QUERY (id, lut_version); None: the device is unknown (404)."""
    if row is None:
        raise NotFound(f"unknown device {device_name!r}", field="device")
    return LutVersion(row[0], device_name, row[1])


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def load_entries(conn: Connection, device_id: int) -> dict[str, dict[str, Any]]:
    m = Measurement
    rows = conn.execute(
        select(
            Op.key,
            m.median_us,
            m.p10_us,
            m.p90_us,
            m.mean_us,
            m.std_us,
            m.iqr_us,
            m.min_us,
            m.max_us,
            m.cv,
            m.n,
            m.unstable,
            m.measured_at,
            m.result_id,
            m.runtime_name,
            m.runtime_version,
            m.execution_provider,
            m.threads,
            m.agent_version,
            m.runtime,
        )  # fmt: skip
        .select_from(LutEntry)
        .join(m, m.id == LutEntry.measurement_id)
        .join(Op, Op.id == LutEntry.op_id)
        .where(LutEntry.device_id == device_id)
        .order_by(Op.key)
    )
    entries: dict[str, dict[str, Any]] = {}
    for r in rows:
        entries[r[0]] = {
            "median_us": r[1],
            "p10_us": r[2],
            "p90_us": r[3],
            "mean_us": r[4],
            "std_us": r[5],
            "iqr_us": r[6],
            "min_us": r[7],
            "max_us": r[8],
            "cv": r[9],
            "n": r[10],
            "unstable": r[11],
            "measured_at": _iso(r[12]),
            "result_id": r[13],
            "provenance": {
                "runtime": r[14],
                "runtime_version": r[15],
                "execution_provider": r[16],
                "threads": r[17],
                "agent_version": r[18],
            },
            "invocation_overhead": invocation_overhead(r[19]),
        }
    return entries


OVERHEAD_FIELDS = ("us", "input_us", "output_us")
OPTIONAL_OVERHEAD_FIELDS = ("fixed_us",)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def invocation_overhead(runtime: Any) -> dict[str, float] | None:
    """The per-invocation overhead the agent measured with the op (`runtime.extra.invocation_overhead`), as the
    LUT serves it: the op's share, each side's and the fixed part, in us; None where the agent measured none. Its
    method and probes stay in the measurement's provenance (GET /measurements/{result_id})."""
    extra = runtime.get("extra") if isinstance(runtime, dict) else None
    overhead = extra.get("invocation_overhead") if isinstance(extra, dict) else None
    if not isinstance(overhead, dict) or not all(_number(overhead.get(field)) for field in OVERHEAD_FIELDS):
        return None  # an agent's malformed figure is not served as a cost
    fields = [*OVERHEAD_FIELDS, *(field for field in OPTIONAL_OVERHEAD_FIELDS if _number(overhead.get(field)))]
    return {field: float(overhead[field]) for field in fields}


def medians_us(conn: Connection, device_id: int, keys: list[str]) -> dict[str, float]:
    """`median_us` of the device's entries among `keys` (e.g. one search space's): a read bounded by the keys,
    whatever the LUT's size."""
    found: dict[str, float] = {}
    for start in range(0, len(keys), MEDIANS_CHUNK):
        rows = conn.execute(
            select(Op.key, Measurement.median_us)
            .select_from(LutEntry)
            .join(Measurement, Measurement.id == LutEntry.measurement_id)
            .join(Op, Op.id == LutEntry.op_id)
            .where(LutEntry.device_id == device_id, Op.key.in_(keys[start : start + MEDIANS_CHUNK]))
        )
        found.update((key, median_us) for key, median_us in rows)
    return found


def _csv_value(value: Any) -> Any:
    # Lower-case booleans, as JSON and most CSV readers (pandas, R) spell them.
    return ("true" if value else "false") if isinstance(value, bool) else value


@dataclass(slots=True)
class RenderedLut:
    version: LutVersion
    entries: dict[str, dict[str, Any]]
    full_json: bytes | None = field(default=None)
    full_csv: bytes | None = field(default=None)

    def json_bytes(self, keys: list[str] | None) -> bytes:
        if keys is None:
            if self.full_json is None:
                self.full_json = self._render_json(self.entries, None)
            return self.full_json
        return self._render_json({k: self.entries[k] for k in keys if k in self.entries}, keys)

    def csv_bytes(self, keys: list[str] | None) -> bytes:
        if keys is None:
            if self.full_csv is None:
                self.full_csv = self._render_csv(self.entries)
            return self.full_csv
        return self._render_csv({k: self.entries[k] for k in keys if k in self.entries})

    def _render_json(self, entries: dict[str, dict[str, Any]], keys: list[str] | None) -> bytes:
        body: dict[str, Any] = {
            "device": self.version.device_name,
            "lut_version": self.version.version,
            "count": len(entries),
            "entries": entries,
        }
        if keys is not None:
            body["missing"] = [k for k in keys if k not in self.entries]
        return orjson.dumps(body)

    @staticmethod
    def _render_csv(entries: dict[str, dict[str, Any]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for key, e in entries.items():
            p = e["provenance"]
            writer.writerow(
                [key] + [_csv_value(e[c]) for c in CSV_COLUMNS[1:14]]
                + [p["runtime"], p["runtime_version"], p["execution_provider"], p["threads"], p["agent_version"]]
                + [(e["invocation_overhead"] or {}).get("us")]
            )  # fmt: skip
        return out.getvalue().encode()


class LutCache:
    """Rendered LUTs by (device id, LUT version); a small LRU, safe across threads."""

    def __init__(self, max_devices: int = 32) -> None:
        self._lock = threading.Lock()
        self._items: OrderedDict[int, RenderedLut] = OrderedDict()
        self._max_devices = max_devices

    def rendered_bytes(self, version: LutVersion, as_csv: bool) -> bytes | None:
        """The whole LUT's bytes if they are already rendered for this version, without touching the database."""
        with self._lock:
            cached = self._items.get(version.device_id)
        if cached is None or cached.version != version:
            return None
        return cached.full_csv if as_csv else cached.full_json  # None until first rendered

    def cached(self, version: LutVersion) -> RenderedLut | None:
        """The LUT rendered for exactly this version, if it is in memory (no database, nothing rendered)."""
        with self._lock:
            cached = self._items.get(version.device_id)
        return cached if cached is not None and cached.version == version else None

    def get(self, conn: Connection, version: LutVersion) -> RenderedLut:
        with self._lock:
            cached = self._items.get(version.device_id)
            if cached is not None and cached.version == version:
                self._items.move_to_end(version.device_id)
                return cached
        rendered = RenderedLut(version, load_entries(conn, version.device_id))
        with self._lock:
            self._items[version.device_id] = rendered
            self._items.move_to_end(version.device_id)
            while len(self._items) > self._max_devices:
                self._items.popitem(last=False)
        return rendered


def etag(version: LutVersion, keys: list[str] | None, media: str) -> str:
    """Strong ETag of one representation: device, LUT version, key filter and media type."""
    variant = hashlib.sha256(f"{media}|{','.join(keys) if keys is not None else '*'}".encode()).hexdigest()[
        :16
    ]
    return f'"lut-{version.device_id}-{version.version}-{variant}"'


def matches(if_none_match: str | None, current: str) -> bool:
    if not if_none_match:
        return False
    candidates = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in candidates or current in candidates
